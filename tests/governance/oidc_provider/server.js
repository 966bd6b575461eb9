// A real OpenID Connect provider for the Massalia test suite: panva's OpenID-certified `oidc-provider`,
// configured from a JSON file and served on 127.0.0.1 (never any other address).
//
//   node server.js CONFIG.json
//
// CONFIG.json: {"port": 0, "clients": [<client metadata>...],
//               "users": [{"sub", "login", "password", "email", "name", "groups": [...]}]}
// Port 0 picks a free port. Once listening, the server prints one JSON line on stdout,
// {"issuer": "http://127.0.0.1:PORT"}, which the test fixture waits for. It stops on SIGTERM/SIGINT.
//
// The login and consent pages are this file's own small HTML forms (the package's development
// pages are turned off): the login form checks the user's password, the consent form grants the
// requested scopes or refuses them (`access_denied`). Signing keys and cookie keys are made afresh
// at every start, so no secret is kept in the repository.
import { generateKeyPairSync, randomBytes, createHash, timingSafeEqual } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { createServer } from 'node:http';
import Provider from 'oidc-provider';

const config = JSON.parse(readFileSync(process.argv[2], 'utf8'));
const users = new Map((config.users || []).map((user) => [user.sub, user]));

function escapeHtml(value) {
  return String(value).replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

function samePassword(given, expected) {
  // Compare digests so the comparison takes the same time whatever the lengths.
  const a = createHash('sha256').update(String(given)).digest();
  const b = createHash('sha256').update(String(expected)).digest();
  return timingSafeEqual(a, b);
}

function page(res, status, title, body) {
  res.statusCode = status;
  res.setHeader('Content-Type', 'text/html; charset=utf-8');
  res.setHeader('Cache-Control', 'no-store');
  res.end(`<!DOCTYPE html><html><head><meta charset="utf-8"><title>${escapeHtml(title)}</title></head>`
    + `<body><h1>${escapeHtml(title)}</h1>${body}</body></html>`);
}

function loginForm(res, uid, status, error) {
  const message = error ? `<p class="error">${escapeHtml(error)}</p>` : '';
  page(res, status, 'Sign in', `${message}<form method="post" action="/interaction/${escapeHtml(uid)}/login">`
    + '<input name="login" autocomplete="username"><input name="password" type="password">'
    + '<button type="submit">Sign in</button></form>');
}

function consentForm(res, uid, details, clientId) {
  const scopes = (details.missingOIDCScope || []).join(' ');
  page(res, 200, 'Authorize', `<p>${escapeHtml(clientId)} asks for: ${escapeHtml(scopes)}</p>`
    + `<form method="post" action="/interaction/${escapeHtml(uid)}/confirm"><button type="submit">Allow</button></form>`
    + `<form method="post" action="/interaction/${escapeHtml(uid)}/abort"><button type="submit">Deny</button></form>`);
}

async function readForm(req) {
  const chunks = [];
  let size = 0;
  for await (const chunk of req) {
    size += chunk.length;
    if (size > 64 * 1024) throw new Error('form too large');
    chunks.push(chunk);
  }
  return new URLSearchParams(Buffer.concat(chunks).toString('utf8'));
}

async function interaction(provider, req, res, path) {
  const [, , uid, action] = path.split('/');
  const details = await provider.interactionDetails(req, res);
  if (details.uid !== uid) {
    page(res, 400, 'Error', '<p>interaction mismatch</p>');
    return;
  }
  const { prompt, params } = details;
  if (req.method === 'GET' && action === undefined) {
    if (prompt.name === 'login') loginForm(res, uid, 200, '');
    else consentForm(res, uid, prompt.details, params.client_id);
    return;
  }
  if (req.method !== 'POST') {
    page(res, 405, 'Error', '<p>method not allowed</p>');
    return;
  }
  const form = await readForm(req);
  if (action === 'login' && prompt.name === 'login') {
    const user = [...users.values()].find((candidate) => candidate.login === form.get('login'));
    if (!user || !samePassword(form.get('password') || '', user.password)) {
      loginForm(res, uid, 401, 'Invalid login or password.');
      return;
    }
    await provider.interactionFinished(req, res, { login: { accountId: user.sub } },
      { mergeWithLastSubmission: false });
    return;
  }
  if (action === 'confirm' && prompt.name === 'consent') {
    const grant = details.grantId
      ? await provider.Grant.find(details.grantId)
      : new provider.Grant({ accountId: details.session.accountId, clientId: params.client_id });
    const missing = prompt.details;
    if (missing.missingOIDCScope) grant.addOIDCScope(missing.missingOIDCScope.join(' '));
    if (missing.missingOIDCClaims) grant.addOIDCClaims(missing.missingOIDCClaims);
    for (const [indicator, scopes] of Object.entries(missing.missingResourceScopes || {})) {
      grant.addResourceScope(indicator, scopes.join(' '));
    }
    const grantId = await grant.save();
    await provider.interactionFinished(req, res, { consent: { grantId } }, { mergeWithLastSubmission: true });
    return;
  }
  if (action === 'abort') {
    await provider.interactionFinished(req, res, {
      error: 'access_denied', error_description: 'End-User refused the request',
    }, { mergeWithLastSubmission: false });
    return;
  }
  page(res, 400, 'Error', `<p>unexpected ${escapeHtml(action)} during ${escapeHtml(prompt.name)}</p>`);
}

function signingKey() {
  const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
  return { ...privateKey.export({ format: 'jwk' }), kid: randomBytes(8).toString('hex'), use: 'sig', alg: 'RS256' };
}

const server = createServer();
server.listen(config.port || 0, '127.0.0.1', () => {
  const issuer = `http://127.0.0.1:${server.address().port}`;
  const provider = new Provider(issuer, {
    clients: config.clients,
    jwks: { keys: [signingKey()] },
    cookies: { keys: [randomBytes(32).toString('hex')] },
    features: { devInteractions: { enabled: false } },
    claims: {
      openid: ['sub'],
      email: ['email', 'email_verified'],
      profile: ['name'],
      groups: ['groups'],
    },
    scopes: ['openid', 'offline_access', 'email', 'profile', 'groups'],
    pkce: { required: () => true },
    async findAccount(ctx, sub) {
      const user = users.get(sub);
      if (!user) return undefined;
      return {
        accountId: sub,
        async claims() {
          return { sub, email: user.email, email_verified: true, name: user.name, groups: user.groups || [] };
        },
      };
    },
  });
  const handle = provider.callback();
  server.on('request', (req, res) => {
    const path = new URL(req.url, issuer).pathname;
    if (!path.startsWith('/interaction/')) {
      handle(req, res);
      return;
    }
    interaction(provider, req, res, path).catch((error) => {
      if (!res.headersSent) page(res, 400, 'Error', `<p>${escapeHtml(error.message)}</p>`);
      else res.end();
    });
  });
  process.stdout.write(`${JSON.stringify({ issuer })}\n`);
});

for (const signal of ['SIGTERM', 'SIGINT']) {
  process.on(signal, () => {
    server.close(() => process.exit(0));
    server.closeAllConnections();
  });
}
