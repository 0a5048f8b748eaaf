// npm `oidc-provider` as a token endpoint for crates/cli/tests/spiffe_inject.rs:
// the OAuth 2.0 client credentials grant (RFC 6749 §4.4) with resource
// indicators (RFC 8707), issuing JWT access tokens for the requested resource.
//
// Usage: node oidc_client_credentials.mjs PEERS_DIR PORT CLIENT_ID CLIENT_SECRET
// Prints "ready" on stdout once listening on 127.0.0.1:PORT.

import { createRequire } from "node:module";
import { join, resolve } from "node:path";
import { pathToFileURL } from "node:url";
import { generateKeyPairSync } from "node:crypto";

const [peersArg, port, clientId, clientSecret] = process.argv.slice(2);
const peers = resolve(peersArg);
const require = createRequire(join(peers, "node", "package.json"));
const { default: Provider } = await import(pathToFileURL(require.resolve("oidc-provider")).href);

const { privateKey } = generateKeyPairSync("ec", { namedCurve: "P-256" });
const jwk = { ...privateKey.export({ format: "jwk" }), kid: "cc-1", alg: "ES256", use: "sig" };

const issuer = `http://127.0.0.1:${port}`;
const provider = new Provider(issuer, {
  clients: [
    {
      client_id: clientId,
      client_secret: clientSecret,
      grant_types: ["client_credentials"],
      redirect_uris: [],
      response_types: [],
      token_endpoint_auth_method: "client_secret_basic",
      scope: "orders:read",
      id_token_signed_response_alg: "ES256",
    },
  ],
  jwks: { keys: [jwk] },
  scopes: ["orders:read"],
  features: {
    clientCredentials: { enabled: true },
    devInteractions: { enabled: false },
    resourceIndicators: {
      enabled: true,
      getResourceServerInfo: (ctx, resourceIndicator) => ({
        scope: "orders:read",
        audience: resourceIndicator,
        accessTokenTTL: 120,
        accessTokenFormat: "jwt",
        jwt: { sign: { alg: "ES256" } },
      }),
    },
  },
});
provider.listen(Number(port), "127.0.0.1", () => {
  process.stdout.write("ready\n");
});
