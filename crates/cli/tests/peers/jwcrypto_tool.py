"""jwcrypto peer for crates/cli/tests/cross_impl.rs.

Reads a JSON list of jobs on stdin and writes a JSON list of results (same
order) on stdout. Jobs:

  {"op": "verify", "token", "jwks", "alg", "iss", "aud"}
      -> {"ok": true, "header", "claims"} or {"ok": false, "error"}
  {"op": "mint", "alg", "payloads": [...]}
      -> {"jwks", "spki_pem" (null for HS*), "tokens": [...]}
         (the kid is the RFC 7638 thumbprint, as jwcrypto computes it)
  {"op": "thumbprint", "pem"}
      -> {"thumbprint", "public_jwk", "spki_pem"}

A job that cannot even be attempted (bad input) makes the whole run fail.
"""

import json
import sys

from jwcrypto import jwk, jwt

GENERATE = {
    "RS": {"kty": "RSA", "size": 2048},
    "PS": {"kty": "RSA", "size": 2048},
    "ES256": {"kty": "EC", "crv": "P-256"},
    "ES384": {"kty": "EC", "crv": "P-384"},
    "ES512": {"kty": "EC", "crv": "P-521"},
    "EdDSA": {"kty": "OKP", "crv": "Ed25519"},
    "Ed25519": {"kty": "OKP", "crv": "Ed25519"},
    "HS": {"kty": "oct", "size": 512},
}


def verify(job):
    try:
        keys = jwk.JWKSet.from_json(json.dumps(job["jwks"]))
        token = jwt.JWT(
            jwt=job["token"],
            key=keys,
            algs=[job["alg"]],
            check_claims={
                "iss": job["iss"],
                "aud": job["aud"],
                "exp": None,
                "iat": None,
                "sub": None,
            },
        )
        return {
            "ok": True,
            "header": json.loads(token.header),
            "claims": json.loads(token.claims),
        }
    except Exception as e:  # noqa: BLE001 - the error is the answer
        return {"ok": False, "error": f"{type(e).__name__}: {e}"}


def mint(job):
    alg = job["alg"]
    params = GENERATE.get(alg) or GENERATE[alg[:2]]
    key = jwk.JWK.generate(**params)
    kid = key.thumbprint()
    if params["kty"] == "oct":
        public = key.export(as_dict=True)
        spki_pem = None
    else:
        public = key.export_public(as_dict=True)
        spki_pem = key.export_to_pem(private_key=False).decode()
    public.update({"kid": kid, "alg": alg, "use": "sig"})
    tokens = []
    for payload in job["payloads"]:
        token = jwt.JWT(header={"alg": alg, "kid": kid}, claims=payload)
        token.make_signed_token(key)
        tokens.append(token.serialize())
    return {"jwks": {"keys": [public]}, "spki_pem": spki_pem, "tokens": tokens}


def thumbprint(job):
    key = jwk.JWK.from_pem(job["pem"].encode())
    return {
        "thumbprint": key.thumbprint(),
        "public_jwk": key.export_public(as_dict=True),
        "spki_pem": key.export_to_pem(private_key=False).decode(),
    }


def main():
    jobs = json.load(sys.stdin)
    ops = {"verify": verify, "mint": mint, "thumbprint": thumbprint}
    json.dump([ops[j["op"]](j) for j in jobs], sys.stdout)


if __name__ == "__main__":
    main()
