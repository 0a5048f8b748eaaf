"""PyJWT peer for crates/cli/tests/cross_impl.rs.

Reads a JSON list of jobs on stdin and writes a JSON list of results (same
order) on stdout. Jobs:

  {"op": "verify", "token", "jwks", "alg", "iss", "aud"}
      -> {"ok": true, "header", "claims"} or {"ok": false, "error"}
  {"op": "mint", "alg", "kid", "payloads": [...]}
      -> {"jwks", "spki_pem" (null for HS*), "tokens": [...]}

A job that cannot even be attempted (bad input) makes the whole run fail.
"""

import json
import secrets
import sys

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from jwt.algorithms import get_default_algorithms

CURVES = {"ES256": ec.SECP256R1, "ES384": ec.SECP384R1, "ES512": ec.SECP521R1}


def select_jwk(jwks, header):
    keys = jwks["keys"]
    kid = header.get("kid")
    if kid is not None:
        keys = [k for k in keys if k.get("kid") == kid]
    if len(keys) != 1:
        raise LookupError(f"{len(keys)} keys match kid {kid!r}")
    return keys[0]


def verify(job):
    try:
        header = jwt.get_unverified_header(job["token"])
        key = jwt.PyJWK(select_jwk(job["jwks"], header), algorithm=job["alg"])
        claims = jwt.decode(
            job["token"],
            key,
            algorithms=[job["alg"]],
            audience=job["aud"],
            issuer=job["iss"],
            options={"require": ["exp", "iat", "iss", "sub", "aud"]},
        )
        return {"ok": True, "header": header, "claims": claims}
    except Exception as e:  # noqa: BLE001 - the error is the answer
        return {"ok": False, "error": f"{type(e).__name__}: {e}"}


def generate(alg):
    if alg.startswith("HS"):
        return secrets.token_bytes(64)
    if alg[:2] in ("RS", "PS"):
        return rsa.generate_private_key(public_exponent=65537, key_size=2048)
    if alg in CURVES:
        return ec.generate_private_key(CURVES[alg]())
    if alg == "EdDSA":
        return ed25519.Ed25519PrivateKey.generate()
    raise ValueError(f"unknown alg {alg}")


def mint(job):
    alg = job["alg"]
    impl = get_default_algorithms()[alg]
    private = generate(alg)
    if isinstance(private, bytes):
        public_jwk = impl.to_jwk(private, as_dict=True)
        spki_pem = None
    else:
        public = private.public_key()
        public_jwk = impl.to_jwk(public, as_dict=True)
        spki_pem = public.public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        ).decode()
    public_jwk.update({"kid": job["kid"], "alg": alg, "use": "sig"})
    tokens = [
        jwt.encode(p, private, algorithm=alg, headers={"kid": job["kid"]})
        for p in job["payloads"]
    ]
    return {"jwks": {"keys": [public_jwk]}, "spki_pem": spki_pem, "tokens": tokens}


def main():
    jobs = json.load(sys.stdin)
    ops = {"verify": verify, "mint": mint}
    json.dump([ops[j["op"]](j) for j in jobs], sys.stdout)


if __name__ == "__main__":
    main()
