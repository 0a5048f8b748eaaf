#!/usr/bin/env python3
"""Mints benchmark tokens quickly (PyJWT + cryptography from .peers/venv).

    mint.py --key rs256.pem --alg RS256 --kid KID --count 10000 --out tokens.txt [--ttl 1209600]

Appends until the file holds --count distinct tokens (one a line), so a file minted
for 10,000 tokens grows to 100,000 without re-signing the first ones. Each token has
the same realistic claim set (iss, sub, aud, exp, iat, nbf, jti, azp, scope, email,
roles...) as crates/jose/benches/verify.rs; only `sub` and `jti` differ. --ttl may be
negative to mint expired tokens. RS256 signing costs ~1 ms in Python, so large counts
are split over every core.
"""

import argparse
import os
import sys
import time
from concurrent.futures import ProcessPoolExecutor

import jwt
from cryptography.hazmat.primitives import serialization

ISSUER = "https://issuer.bench.invalid/realms/portcullis"
AUDIENCE = "bench-api"

_key = None


def _init(key_path):
    global _key
    with open(key_path, "rb") as f:
        _key = serialization.load_pem_private_key(f.read(), None)


def _mint(job):
    alg, kid, start, count, now, ttl = job
    out = []
    for i in range(start, start + count):
        claims = {
            "iss": ISSUER,
            "sub": f"user-{i:06d}",
            "aud": [AUDIENCE, "account"],
            "exp": now + ttl,
            "iat": now - 60 if ttl > 0 else now + ttl - 3600,
            "nbf": now - 60 if ttl > 0 else now + ttl - 3600,
            "jti": f"bench-{alg.lower()}-{i:07d}",
            "azp": "web-shop",
            "scope": "openid profile email orders:read orders:write",
            "email": f"user-{i:06d}@example.com",
            "email_verified": True,
            "realm_access": {"roles": ["customer", "offline_access"]},
        }
        out.append(jwt.encode(claims, _key, algorithm=alg, headers={"kid": kid, "typ": "JWT"}))
    return out


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--key", required=True)
    p.add_argument("--alg", required=True)
    p.add_argument("--kid", required=True)
    p.add_argument("--count", type=int, required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--ttl", type=int, default=14 * 86400, help="seconds; negative: expired")
    p.add_argument("--start", type=int, default=0, help="index of the first token (sub/jti)")
    a = p.parse_args()

    have = 0
    if os.path.exists(a.out):
        with open(a.out) as f:
            have = sum(1 for line in f if line.strip())
    need = a.count - have
    if need <= 0:
        return
    now = int(time.time())
    workers = max(1, os.cpu_count() or 1) if need >= 2000 else 1
    chunk = max(1, -(-need // (workers * 8)))
    jobs = []
    i = a.start + have
    end = a.start + a.count
    while i < end:
        n = min(chunk, end - i)
        jobs.append((a.alg, a.kid, i, n, now, a.ttl))
        i += n
    t0 = time.time()
    with open(a.out, "a") as f:
        if workers == 1:
            _init(a.key)
            for job in jobs:
                f.write("\n".join(_mint(job)) + "\n")
        else:
            with ProcessPoolExecutor(workers, initializer=_init, initargs=(a.key,)) as pool:
                for tokens in pool.map(_mint, jobs):
                    f.write("\n".join(tokens) + "\n")
    print(
        f"mint: {need} {a.alg} tokens -> {a.out} in {time.time() - t0:.1f}s",
        file=sys.stderr,
    )


if __name__ == "__main__":
    main()
