// npm `jose` as an independent DPoP (RFC 9449) client for crates/cli/tests/dpop_jose.rs.
//
// Usage: node dpop_jose.mjs PEERS_DIR < jobs.json > results.json. Jobs:
//   {"op": "keygen"} -> {"private": JWK, "public": JWK, "jkt": RFC 7638 thumbprint}
//   {"op": "proof", "private": JWK, "public": JWK, "claims": {...}}
//       -> {"proof": compact JWS with typ dpop+jwt and the public jwk in its header}
//   {"op": "ath", "token": "..."} -> {"ath": base64url(SHA-256(token))}

import { createRequire } from "node:module";
import { join, resolve } from "node:path";
import { pathToFileURL } from "node:url";
import { createHash } from "node:crypto";

const peers = resolve(process.argv[2]);
const require = createRequire(join(peers, "node", "package.json"));
const jose = await import(pathToFileURL(require.resolve("jose")).href);

let input = "";
for await (const chunk of process.stdin) input += chunk;
const out = [];
for (const job of JSON.parse(input)) {
  if (job.op === "keygen") {
    const { publicKey, privateKey } = await jose.generateKeyPair("ES256", { extractable: true });
    const pub = await jose.exportJWK(publicKey);
    out.push({
      private: await jose.exportJWK(privateKey),
      public: pub,
      jkt: await jose.calculateJwkThumbprint(pub, "sha256"),
    });
  } else if (job.op === "proof") {
    const key = await jose.importJWK(job.private, "ES256");
    const proof = await new jose.SignJWT(job.claims)
      .setProtectedHeader({ alg: "ES256", typ: "dpop+jwt", jwk: job.public })
      .sign(key);
    out.push({ proof });
  } else if (job.op === "ath") {
    out.push({ ath: createHash("sha256").update(job.token).digest("base64url") });
  } else {
    throw new Error(`unknown op ${job.op}`);
  }
}
process.stdout.write(JSON.stringify(out));
