// npm `jose` peer for crates/cli/tests/cross_impl.rs.
//
// Usage: node jose_tool.mjs PEERS_DIR  (jose is loaded from PEERS_DIR/node/node_modules)
// Reads a JSON list of jobs on stdin and writes a JSON list of results (same
// order) on stdout. Jobs:
//
//   {"op": "verify", "token", "jwks", "alg", "iss", "aud"}
//       -> {"ok": true, "header", "claims"} or {"ok": false, "error"}
//          (createLocalJWKSet for public keys, importJWK for HS* secrets)
//   {"op": "mint", "alg", "payloads": [...]}
//       -> {"jwks", "spki_pem" (null for HS*), "tokens": [...]}
//          (the kid is the RFC 7638 thumbprint, as jose computes it)

import { createRequire } from "node:module";
import { join, resolve } from "node:path";
import { pathToFileURL } from "node:url";

const peers = process.argv[2] && resolve(process.argv[2]);
if (!peers) {
  throw new Error("usage: node jose_tool.mjs PEERS_DIR");
}
const require = createRequire(join(peers, "node", "package.json"));
const jose = await import(pathToFileURL(require.resolve("jose")).href);

function selectJwk(jwks, header) {
  const keys = jwks.keys.filter((k) => header.kid === undefined || k.kid === header.kid);
  if (keys.length !== 1) {
    throw new Error(`${keys.length} keys match kid ${header.kid}`);
  }
  return keys[0];
}

async function verify(job) {
  try {
    // createLocalJWKSet only takes public keys: an HMAC secret goes through importJWK.
    const keys = job.alg.startsWith("HS")
      ? await jose.importJWK(selectJwk(job.jwks, jose.decodeProtectedHeader(job.token)), job.alg)
      : jose.createLocalJWKSet(job.jwks);
    const { payload, protectedHeader } = await jose.jwtVerify(job.token, keys, {
      algorithms: [job.alg],
      issuer: job.iss,
      audience: job.aud,
      requiredClaims: ["exp", "iat", "sub"],
    });
    return { ok: true, header: protectedHeader, claims: payload };
  } catch (e) {
    return { ok: false, error: `${e.code ?? e.name}: ${e.message}` };
  }
}

async function mint(job) {
  const alg = job.alg;
  let signingKey;
  let publicJwk;
  let spkiPem = null;
  if (alg.startsWith("HS")) {
    signingKey = await jose.generateSecret(alg, { extractable: true });
    publicJwk = await jose.exportJWK(signingKey);
  } else {
    const options = { extractable: true };
    if (alg.startsWith("RS") || alg.startsWith("PS")) {
      options.modulusLength = 2048;
    }
    if (alg === "EdDSA") {
      options.crv = "Ed25519";
    }
    const pair = await jose.generateKeyPair(alg, options);
    signingKey = pair.privateKey;
    publicJwk = await jose.exportJWK(pair.publicKey);
    spkiPem = await jose.exportSPKI(pair.publicKey);
  }
  const kid = await jose.calculateJwkThumbprint(publicJwk, "sha256");
  Object.assign(publicJwk, { kid, alg, use: "sig" });
  const tokens = [];
  for (const payload of job.payloads) {
    tokens.push(
      await new jose.SignJWT(payload).setProtectedHeader({ alg, kid }).sign(signingKey),
    );
  }
  return { jwks: { keys: [publicJwk] }, spki_pem: spkiPem, tokens };
}

const ops = { verify, mint };
const chunks = [];
for await (const chunk of process.stdin) {
  chunks.push(chunk);
}
const jobs = JSON.parse(Buffer.concat(chunks).toString("utf8"));
const results = [];
for (const job of jobs) {
  const op = ops[job.op];
  if (!op) {
    throw new Error(`unknown op ${job.op}`);
  }
  results.push(await op(job));
}
process.stdout.write(JSON.stringify(results));
