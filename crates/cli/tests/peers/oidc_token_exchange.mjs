// npm `oidc-provider` as an RFC 8693 security token service for
// crates/cli/tests/exchange_negative.rs. oidc-provider has no token exchange grant
// of its own; its custom grant API (`registerGrantType`, the way its maintainer
// says token exchange is to be profiled) carries the one below, while the OP
// itself does everything else: client authentication (client_secret_basic),
// parameter parsing, errors, JWT access tokens with resource indicators
// (RFC 8707), its JWKS and discovery.
//
// - client `frontend` (client_credentials) gets subject tokens: JWT access tokens
//   for the resource https://frontend.example.org, or opaque ones (no resource),
//   which the OP introspects (RFC 7662).
// - client `egress` may use the token exchange grant: a `subject_token` that is a
//   JWT access token this OP signed (verified with npm `jose` against the OP's own
//   JWKS, for the frontend resource, unexpired) is exchanged for a JWT access token
//   whose `aud` is the requested `audience`; anything else is `invalid_grant`.
//
// Every request to the token endpoint is logged as "token-endpoint" in LOG (the
// tests count them), every exchange's result as "token-exchange RESULT".
//
// Usage: node oidc_token_exchange.mjs PEERS_DIR PORT LOG
// Prints "ready" on stdout once listening on 127.0.0.1:PORT.

import { createRequire } from "node:module";
import { join, resolve } from "node:path";
import { pathToFileURL } from "node:url";
import { generateKeyPairSync } from "node:crypto";
import { appendFileSync } from "node:fs";

const [peersArg, port, logPath] = process.argv.slice(2);
const log = (line) => appendFileSync(logPath, `${line}\n`);
const peers = resolve(peersArg);
const require = createRequire(join(peers, "node", "package.json"));
const oidc = await import(pathToFileURL(require.resolve("oidc-provider")).href);
const { default: Provider, errors } = oidc;
const jose = await import(pathToFileURL(require.resolve("jose")).href);

const GRANT = "urn:ietf:params:oauth:grant-type:token-exchange";
const ACCESS_TOKEN = "urn:ietf:params:oauth:token-type:access_token";
const FRONTEND = "https://frontend.example.org";

const { privateKey } = generateKeyPairSync("ec", { namedCurve: "P-256" });
const jwk = { ...privateKey.export({ format: "jwk" }), kid: "op-1", alg: "ES256", use: "sig" };
const publicJwks = jose.createLocalJWKSet({
  keys: [{ kty: jwk.kty, crv: jwk.crv, x: jwk.x, y: jwk.y, kid: jwk.kid, alg: jwk.alg, use: "sig" }],
});

const issuer = `http://127.0.0.1:${port}`;
const provider = new Provider(issuer, {
  clients: [
    {
      client_id: "frontend",
      client_secret: "frontend-secret",
      grant_types: ["client_credentials"],
      redirect_uris: [],
      response_types: [],
      token_endpoint_auth_method: "client_secret_basic",
      scope: "orders:read",
      id_token_signed_response_alg: "ES256",
    },
    {
      client_id: "egress",
      client_secret: "egress-secret",
      grant_types: [GRANT],
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
    introspection: { enabled: true },
    resourceIndicators: {
      enabled: true,
      getResourceServerInfo: (_ctx, resourceIndicator) => ({
        scope: "orders:read",
        audience: resourceIndicator,
        accessTokenTTL: 300,
        accessTokenFormat: "jwt",
        jwt: { sign: { alg: "ES256" } },
      }),
    },
  },
  // The exchanged token names whom it was issued for (RFC 8693 §4.1 `act`: the client).
  extraTokenClaims: (ctx) =>
    ctx.exchangeSubject ? { exchanged_sub: ctx.exchangeSubject, act: { sub: "egress" } } : undefined,
});

provider.use(async (ctx, next) => {
  if (ctx.method === "POST" && ctx.path === "/token") {
    log("token-endpoint");
  }
  return next();
});

async function tokenExchange(ctx) {
  const { params, client } = ctx.oidc;
  if (params.subject_token_type !== ACCESS_TOKEN) {
    throw new errors.InvalidRequest("subject_token_type must be an access token");
  }
  if (!params.audience) {
    throw new errors.InvalidTarget("audience is required");
  }
  let payload;
  if (!params.subject_token.includes(".")) {
    // An opaque access token of this OP (client credentials without a resource).
    const cc = await provider.ClientCredentials.find(params.subject_token);
    if (!cc || cc.isExpired) {
      log("token-exchange refused opaque");
      throw new errors.InvalidGrant("subject_token is not a valid token of this issuer");
    }
    payload = { client_id: cc.clientId };
  } else try {
    ({ payload } = await jose.jwtVerify(params.subject_token, publicJwks, {
      issuer,
      audience: FRONTEND,
      algorithms: ["ES256"],
      requiredClaims: ["exp"],
    }));
  } catch (e) {
    log(`token-exchange refused ${e.code || e.name}`);
    throw new errors.InvalidGrant("subject_token is not a valid token of this issuer");
  }
  ctx.exchangeSubject = payload.client_id || payload.sub;
  const token = new provider.ClientCredentials({ client, scope: "orders:read" });
  token.resourceServer = new provider.ResourceServer(params.audience, {
    scope: "orders:read",
    audience: params.audience,
    accessTokenTTL: 120,
    accessTokenFormat: "jwt",
    jwt: { sign: { alg: "ES256" } },
  });
  const value = await token.save();
  log("token-exchange issued");
  ctx.body = {
    access_token: value,
    issued_token_type: ACCESS_TOKEN,
    token_type: "Bearer",
    expires_in: token.expiration,
    scope: token.scope,
  };
}

provider.registerGrantType(
  GRANT,
  tokenExchange,
  ["audience", "resource", "scope", "requested_token_type", "subject_token", "subject_token_type", "actor_token", "actor_token_type"],
  ["audience", "resource"],
);

provider.on("server_error", (_ctx, err) => log(`server_error ${err && err.message}`));

provider.listen(Number(port), "127.0.0.1", () => {
  process.stdout.write("ready\n");
});
