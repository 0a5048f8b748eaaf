// A real OpenID Provider for the login tests: npm `oidc-provider` with a scripted
// login (no forms: the interaction logs in the account named by the
// `x-op-account` header, default "alice", and grants what is asked). The login's
// `acr` is the `x-op-acr` header, else the first `acr_values` asked for, else
// `urn:basic`; its `amr` is `x-op-amr` (comma-separated), else `pwd` (and `otp`
// for `urn:mfa`).
const { default: Provider } = await import(process.env.OP_MODULE);

const port = Number(process.env.OP_PORT);
const issuer = `http://127.0.0.1:${port}`;
const clients = JSON.parse(process.env.OP_CLIENTS);

const accounts = {
  alice: { email: 'alice@example.com', email_verified: true, name: 'Alice', groups: ['admins'] },
  bob: { email: 'bob@example.com', email_verified: true, name: 'Bob', groups: ['users'] },
};

const provider = new Provider(issuer, {
  clients,
  // `orders:read`: a scope for client-credentials clients (introspection tests).
  scopes: ['openid', 'offline_access', 'orders:read'],
  cookies: { keys: ['portcullis-test-cookie-key'] },
  claims: { acr: null, amr: null, auth_time: null, openid: ['sub', 'sid'], email: ['email', 'email_verified'], profile: ['name', 'groups'] },
  features: {
    devInteractions: { enabled: false },
    rpInitiatedLogout: { enabled: true },
    backchannelLogout: { enabled: true },
    introspection: { enabled: true },
    clientCredentials: { enabled: true },
    revocation: { enabled: true },
  },
  pkce: { required: () => true },
  acrValues: ['urn:basic', 'urn:mfa'],
  // The tests' relying party is on loopback: let the OP's own SSRF guard (which
  // refuses special-use addresses) through for them.
  fetch: (url, { dispatcher: _loopbackAllowed, ...options }) => globalThis.fetch(url, options),
  ttl: {
    IdToken: 3600,
    AccessToken: Number(process.env.OP_ACCESS_TTL || 3600),
    RefreshToken: 3600,
    Session: 3600,
    Interaction: 600,
    Grant: 3600,
  },
  // Refresh tokens for every client allowed the grant (no offline_access dance).
  issueRefreshToken: async (_ctx, client) => client.grantTypeAllowed('refresh_token'),
  // OP_ROTATE_REFRESH=1: every refresh answers a new refresh token and the used one
  // is spent (a second use is invalid_grant and revokes the grant).
  ...(process.env.OP_ROTATE_REFRESH === '1' ? { rotateRefreshToken: true } : {}),
  findAccount: async (_ctx, id) => ({
    accountId: id,
    claims: async () => ({ sub: id, ...(accounts[id] || {}) }),
  }),
});

provider.use(async (ctx, next) => {
  if (!ctx.path.startsWith('/interaction/')) {
    return next();
  }
  const details = await provider.interactionDetails(ctx.req, ctx.res);
  const { prompt, params, session } = details;
  if (prompt.name === 'login') {
    const accountId = ctx.get('x-op-account') || 'alice';
    const asked = (params.acr_values || '').split(' ').filter(Boolean);
    const acr = ctx.get('x-op-acr') || asked[0] || 'urn:basic';
    const amr = ctx.get('x-op-amr') ? ctx.get('x-op-amr').split(',') : (acr === 'urn:mfa' ? ['pwd', 'otp'] : ['pwd']);
    return provider.interactionFinished(ctx.req, ctx.res, { login: { accountId, acr, amr } }, { mergeWithLastSubmission: false });
  }
  const grant = details.grantId
    ? await provider.Grant.find(details.grantId)
    : new provider.Grant({ accountId: session.accountId, clientId: params.client_id });
  const missing = prompt.details;
  if (missing.missingOIDCScope) grant.addOIDCScope(missing.missingOIDCScope.join(' '));
  if (missing.missingOIDCClaims) grant.addOIDCClaims(missing.missingOIDCClaims);
  if (missing.missingResourceScopes) {
    for (const [indicator, scopes] of Object.entries(missing.missingResourceScopes)) {
      grant.addResourceScope(indicator, scopes.join(' '));
    }
  }
  const grantId = await grant.save();
  return provider.interactionFinished(ctx.req, ctx.res, { consent: { grantId } }, { mergeWithLastSubmission: true });
});

provider.on('grant.success', (ctx) => console.log('grant.success', ctx.oidc.params.grant_type));
for (const event of ['backchannel.success', 'backchannel.error', 'server_error', 'grant.error']) {
  provider.on(event, (...args) => console.log(event, ...args.slice(1).map((a) => (a && a.message && `${a.message} ${a.cause}`) || (a && a.clientId) || a)));
}

provider.listen(port, '127.0.0.1', () => console.log(`oidc-provider ready at ${issuer}`));
