#!/usr/bin/env python3
"""Keys and tokens for bench/run's scenario 8 (many issuers), PyJWT + cryptography.

    issuers.py --dir target/bench/issuers --providers 500 --sets 1,50,500 --count 10000

Makes (once; kept between runs) --providers RSA-2048 keys, one per issuer
`https://tenant-NNN.bench.invalid/`, in DIR/keys.json ([{"issuer", "kid", "jwk"}], public
JWKs only; the private keys in DIR/keys/NNN.pem), and for each N of --sets a file
DIR/tokens-N.txt of --count RS256 tokens spread evenly over the first N issuers (token j
from issuer j mod N). Each line is `TOKEN /tNNN/api`: the path of that tenant's rule,
which bench/lib/rotate.lua appends to the request path. Claims as mint.py's. Key
generation and signing are split over every core.
"""

import argparse
import base64
import json
import os
import sys
import time
from concurrent.futures import ProcessPoolExecutor

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

AUDIENCE = "bench-api"


def issuer(i):
    return f"https://tenant-{i:03d}.bench.invalid/"


def _b64(n):
    return base64.urlsafe_b64encode(n.to_bytes((n.bit_length() + 7) // 8, "big")).rstrip(b"=").decode()


def _keygen(job):
    d, i = job
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    with open(os.path.join(d, "keys", f"{i:03d}.pem"), "wb") as f:
        f.write(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                  serialization.NoEncryption()))
    pub = key.public_key().public_numbers()
    kid = f"tenant-{i:03d}"
    return {"issuer": issuer(i), "kid": kid,
            "jwk": {"kty": "RSA", "kid": kid, "alg": "RS256", "use": "sig", "n": _b64(pub.n), "e": _b64(pub.e)}}


_keys = {}


def _init(d, n):
    for i in range(n):
        with open(os.path.join(d, "keys", f"{i:03d}.pem"), "rb") as f:
            # Our own keys, made above: skip the (slow) RSA consistency check on load.
            _keys[i] = serialization.load_pem_private_key(f.read(), None, unsafe_skip_rsa_key_validation=True)


def _mint(job):
    n, start, count, now, ttl = job
    out = []
    for j in range(start, start + count):
        i = j % n
        claims = {
            "iss": issuer(i),
            "sub": f"user-{j:06d}",
            "aud": [AUDIENCE, "account"],
            "exp": now + ttl,
            "iat": now - 60,
            "nbf": now - 60,
            "jti": f"bench-tenant-{n}-{j:07d}",
            "azp": "web-shop",
            "scope": "openid profile email orders:read orders:write",
            "email": f"user-{j:06d}@example.com",
            "email_verified": True,
            "realm_access": {"roles": ["customer", "offline_access"]},
        }
        tok = jwt.encode(claims, _keys[i], algorithm="RS256", headers={"kid": f"tenant-{i:03d}", "typ": "JWT"})
        out.append(f"{tok} /t{i:03d}/api")
    return out


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--dir", required=True)
    p.add_argument("--providers", type=int, required=True)
    p.add_argument("--sets", required=True, help="comma-separated N")
    p.add_argument("--count", type=int, required=True)
    p.add_argument("--ttl", type=int, default=14 * 86400)
    a = p.parse_args()
    os.makedirs(os.path.join(a.dir, "keys"), exist_ok=True)
    workers = max(1, os.cpu_count() or 1)
    t0 = time.time()
    keys_file = os.path.join(a.dir, "keys.json")
    have = json.load(open(keys_file)) if os.path.exists(keys_file) else []
    if len(have) < a.providers:
        with ProcessPoolExecutor(workers) as pool:
            made = list(pool.map(_keygen, [(a.dir, i) for i in range(len(have), a.providers)], chunksize=8))
        with open(keys_file, "w") as f:
            json.dump(have + made, f)
        print(f"issuers: {len(made)} RSA keys in {time.time() - t0:.1f}s", file=sys.stderr)
    now = int(time.time())
    for n in (int(s) for s in a.sets.split(",")):
        out = os.path.join(a.dir, f"tokens-{n}.txt")
        if os.path.exists(out) and sum(1 for line in open(out) if line.strip()) == a.count:
            continue
        t1 = time.time()
        chunk = max(1, -(-a.count // (workers * 8)))
        jobs = [(n, s, min(chunk, a.count - s), now, a.ttl) for s in range(0, a.count, chunk)]
        with ProcessPoolExecutor(workers, initializer=_init, initargs=(a.dir, n)) as pool, open(out, "w") as f:
            for lines in pool.map(_mint, jobs):
                f.write("\n".join(lines) + "\n")
        print(f"issuers: {a.count} RS256 tokens over {n} issuers -> {out} in {time.time() - t1:.1f}s", file=sys.stderr)


if __name__ == "__main__":
    main()
