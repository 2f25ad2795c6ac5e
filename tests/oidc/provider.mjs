// A real OpenID Connect provider (panva's certified `oidc-provider`, installed as a dev
// dependency in web/node_modules) on loopback, for the integration tests. See README.md.
//
//   node tests/oidc/provider.mjs --port PORT --state DIR [--redirect URI]... [--audience AUD]
//
// Prints exactly one stdout line, `ready http://127.0.0.1:PORT`, once it listens; everything
// else (including oidc-provider's own notices) goes to stderr. Exits 0 on SIGTERM/SIGINT.

import * as crypto from "node:crypto";
import { mkdirSync, readFileSync, renameSync, writeFileSync } from "node:fs";
import * as http from "node:http";
import { join } from "node:path";

// oidc-provider prints notices with console.info (stdout); stdout is reserved for the ready line.
console.log = console.info = console.debug = (...args) => console.error(...args);

const { default: Provider, errors } = await import("../../web/node_modules/oidc-provider/lib/index.js");
const { createMemoryAdapter } = await import("../../web/node_modules/oidc-provider/lib/adapters/memory_adapter.js");

// ---------------------------------------------------------------- arguments

function usage(msg) {
  console.error(`${msg}\nusage: node tests/oidc/provider.mjs --port PORT --state DIR [--redirect URI]... [--audience AUD]`);
  process.exit(2);
}

const args = { redirects: [], audience: "urn:nats:chat" };
{
  const argv = process.argv.slice(2);
  for (let i = 0; i < argv.length; i++) {
    const flag = argv[i];
    const value = argv[i + 1];
    if (!["--port", "--state", "--redirect", "--audience"].includes(flag)) usage(`unknown argument ${flag}`);
    if (value === undefined) usage(`${flag} needs a value`);
    i++;
    if (flag === "--port") args.port = Number(value);
    else if (flag === "--state") args.state = value;
    else if (flag === "--redirect") args.redirects.push(value);
    else args.audience = value;
  }
  if (!Number.isInteger(args.port) || args.port <= 0 || args.port > 65535) usage("--port PORT is required");
  if (!args.state) usage("--state DIR is required");
}

const ISSUER = `http://127.0.0.1:${args.port}`;
const AUD = args.audience;
// Without --redirect the chat client still needs one redirect URI: the echo endpoint below.
const REDIRECTS = args.redirects.length ? args.redirects : [`${ISSUER}/test/callback`];
const POST_LOGOUT = [...new Set(REDIRECTS.map((uri) => `${new URL(uri).origin}/`))];

// ---------------------------------------------------------------- keys (DIR/keys.json)

const KEYS_FILE = join(args.state, "keys.json");

function newRsaJwk(kid) {
  const { privateKey } = crypto.generateKeyPairSync("rsa", { modulusLength: 2048 });
  return { ...privateKey.export({ format: "jwk" }), kid, alg: "RS256", use: "sig" };
}

function saveKeys(state) {
  mkdirSync(args.state, { recursive: true });
  const tmp = `${KEYS_FILE}.${process.pid}.tmp`;
  writeFileSync(tmp, `${JSON.stringify(state, null, 2)}\n`, { mode: 0o600 });
  renameSync(tmp, KEYS_FILE);
}

/** `{ keys: [private JWK, ...] (first = current signing key), unpublished: private JWK }` */
function loadKeys() {
  let state;
  try {
    state = JSON.parse(readFileSync(KEYS_FILE, "utf8"));
  } catch (err) {
    if (err.code !== "ENOENT") throw new Error(`cannot read ${KEYS_FILE}: ${err.message}`);
  }
  let changed = false;
  if (!state) {
    state = { keys: [newRsaJwk("rsa-1")] };
    changed = true;
  }
  if (!state.unpublished) {
    state.unpublished = newRsaJwk("rsa-unpublished");
    changed = true;
  }
  if (changed) saveKeys(state);
  return state;
}

let keyState = loadKeys();

function nextKid() {
  const used = keyState.keys.map((k) => Number(/^rsa-(\d+)$/.exec(k.kid)?.[1] ?? 0));
  return `rsa-${Math.max(0, ...used) + 1}`;
}

// ---------------------------------------------------------------- accounts and clients

const GROUPS = { carol: ["staff"], dave: ["staff", "chat-admins"], bob: ["everyone"] };
const userClaims = (id) => ({ preferred_username: id, groups: GROUPS[id] ?? [] });

/** Claims put into client-credentials access tokens, by client id. */
const SERVICE_CLAIMS = {
  service: { preferred_username: "svc-bot", groups: ["staff"] },
  service2: { preferred_username: "ghost", groups: ["staff", "chat-admins"] },
};

const SCOPES = "openid profile rooms";

const clients = [
  ...Object.keys(SERVICE_CLAIMS).map((id) => ({
    client_id: id,
    client_secret: `${id}-secret`,
    grant_types: ["client_credentials"],
    response_types: [],
    redirect_uris: [],
    token_endpoint_auth_method: "client_secret_basic", // client_secret_post works too
  })),
  {
    client_id: "chat",
    client_secret: "chat-secret",
    application_type: "web",
    grant_types: ["authorization_code", "refresh_token"],
    response_types: ["code"],
    redirect_uris: REDIRECTS,
    post_logout_redirect_uris: POST_LOGOUT,
    token_endpoint_auth_method: "client_secret_basic", // client_secret_post works too
  },
];

// Shared by every Provider instance of this process, so sessions, grants and tokens survive
// /test/rotate (a restart of the process loses them; only the keys persist).
const COOKIE_KEYS = [crypto.randomBytes(32).toString("base64url")];
const ADAPTER = createMemoryAdapter(15);

function configuration() {
  return {
    adapter: ADAPTER,
    clients: structuredClone(clients),
    jwks: { keys: structuredClone(keyState.keys) },
    cookies: { keys: COOKIE_KEYS },
    claims: {
      acr: null,
      sid: null,
      auth_time: null,
      iss: null,
      openid: ["sub"],
      profile: ["preferred_username"],
      rooms: ["groups"],
    },
    scopes: ["openid", "offline_access", "profile", "rooms"],
    conformIdTokenClaims: false,
    pkce: { required: () => true },
    clientBasedCORS: (_ctx, origin, client) =>
      client.redirectUris.some((uri) => URL.parse(uri)?.origin === origin),
    async findAccount(_ctx, id) {
      return {
        accountId: id,
        async claims() {
          return { sub: id, ...userClaims(id) };
        },
      };
    },
    // The chat client is first party: it gets a grant for everything without a consent page,
    // so the browser sees only the login form.
    async loadExistingGrant(ctx) {
      const { Grant } = ctx.oidc.provider;
      const clientId = ctx.oidc.client.clientId;
      const accountId = ctx.oidc.session.accountId;
      const grantId = ctx.oidc.result?.consent?.grantId || ctx.oidc.session.grantIdFor(clientId);
      let grant = grantId ? await Grant.find(grantId) : undefined;
      if (grant && grant.accountId !== accountId) grant = undefined;
      if (clientId !== "chat") return grant;
      grant ||= new Grant({ clientId, accountId });
      grant.addOIDCScope(`${SCOPES} offline_access`);
      grant.addResourceScope(AUD, SCOPES);
      await grant.save();
      return grant;
    },
    async extraTokenClaims(_ctx, token) {
      if (token.kind === "ClientCredentials") return SERVICE_CLAIMS[token.clientId];
      if (token.accountId) return userClaims(token.accountId);
      return undefined;
    },
    // Refresh tokens for every client allowed the refresh_token grant (no offline_access needed).
    issueRefreshToken: async (_ctx, client) => client.grantTypeAllowed("refresh_token"),
    features: {
      devInteractions: { enabled: true },
      clientCredentials: { enabled: true },
      rpInitiatedLogout: { enabled: true },
      resourceIndicators: {
        enabled: true,
        defaultResource: async () => AUD,
        useGrantedResource: async () => true,
        async getResourceServerInfo(_ctx, resource) {
          if (resource !== AUD) throw new errors.InvalidTarget(`unknown resource ${resource}`);
          return {
            scope: SCOPES,
            audience: AUD,
            accessTokenFormat: "jwt",
            accessTokenTTL: 300,
            jwt: { sign: { alg: "RS256" } },
          };
        },
      },
    },
    ttl: {
      AccessToken: 300,
      ClientCredentials: 300,
      AuthorizationCode: 60,
      IdToken: 3600,
      RefreshToken: 86400,
      Interaction: 3600,
      Session: 86400,
      Grant: 86400,
    },
  };
}

const LOGGED_EVENTS = [
  "server_error",
  "authorization.error",
  "grant.error",
  "end_session.error",
  "userinfo.error",
  "jwks.error",
  "discovery.error",
  "pushed_authorization_request.error",
];

function newProvider() {
  const provider = new Provider(ISSUER, configuration());
  for (const event of LOGGED_EVENTS) {
    provider.on(event, (...rest) => {
      const err = rest.find((x) => x instanceof Error);
      console.error(`[oidc] ${event}: ${err ? `${err.name}: ${err.message}${err.error_description ? ` (${err.error_description})` : ""}` : ""}`);
    });
  }
  // The built-in HTML pages @import a Google font; no external network in tests.
  provider.use(async (ctx, next) => {
    await next();
    if (typeof ctx.body === "string" && ctx.response.is("html")) {
      ctx.body = ctx.body.replace(/@import url\(https:\/\/fonts\.googleapis\.com[^)]*\);?/g, "");
    }
  });
  return provider.callback();
}

let handler = newProvider();

// ---------------------------------------------------------------- test-only endpoints

const b64u = (data) => Buffer.from(data).toString("base64url");

const RSA_ALGS = {
  RS256: { hash: "sha256" }, RS384: { hash: "sha384" }, RS512: { hash: "sha512" },
  PS256: { hash: "sha256", pss: true }, PS384: { hash: "sha384", pss: true }, PS512: { hash: "sha512", pss: true },
};
const HMAC_ALGS = { HS256: "sha256", HS384: "sha384", HS512: "sha512" };

function sign({ claims, key = "current", kid, alg, typ }) {
  if (claims === null || typeof claims !== "object" || Array.isArray(claims)) {
    throw new Error("claims must be a JSON object");
  }
  const current = keyState.keys[0];
  let jwk;
  let defaultAlg;
  switch (key) {
    case "current": jwk = current; defaultAlg = "RS256"; break;
    case "unpublished": jwk = keyState.unpublished; defaultAlg = "RS256"; break;
    case "hs256-public": jwk = current; defaultAlg = "HS256"; break;
    case "none": jwk = current; defaultAlg = "none"; break;
    default: throw new Error(`unknown key ${JSON.stringify(key)}`);
  }
  const header = { alg: alg ?? defaultAlg };
  if (typ !== null) header.typ = typ ?? "at+jwt";
  if (kid !== null) header.kid = kid ?? jwk.kid;
  const input = `${b64u(JSON.stringify(header))}.${b64u(JSON.stringify(claims))}`;

  let signature;
  if (key === "none") {
    signature = "";
  } else if (key === "hs256-public") {
    // The alg-confusion attack: the HMAC secret is the published RSA key as SPKI PEM text.
    const pem = crypto.createPublicKey({ key: jwk, format: "jwk" }).export({ type: "spki", format: "pem" });
    signature = crypto.createHmac(HMAC_ALGS[header.alg] ?? "sha256", pem).update(input).digest("base64url");
  } else {
    const privateKey = crypto.createPrivateKey({ key: jwk, format: "jwk" });
    const { hash, pss } = RSA_ALGS[header.alg] ?? RSA_ALGS.RS256;
    const opts = pss
      ? { key: privateKey, padding: crypto.constants.RSA_PKCS1_PSS_PADDING, saltLength: crypto.constants.RSA_PSS_SALTLEN_DIGEST }
      : privateKey;
    signature = crypto.sign(hash, Buffer.from(input), opts).toString("base64url");
  }
  return `${input}.${signature}`;
}

function rotate() {
  const kid = nextKid();
  const next = { ...keyState, keys: [newRsaJwk(kid), ...keyState.keys] };
  saveKeys(next);
  keyState = next;
  handler = newProvider();
  console.error(`[oidc] rotated: signing with ${kid}, published ${keyState.keys.map((k) => k.kid).join(", ")}`);
  return { kid };
}

function readBody(req) {
  return new Promise((resolve, reject) => {
    const chunks = [];
    req.on("data", (c) => chunks.push(c));
    req.on("end", () => resolve(Buffer.concat(chunks).toString("utf8")));
    req.on("error", reject);
  });
}

function json(res, status, body) {
  const text = `${JSON.stringify(body)}\n`;
  res.writeHead(status, { "content-type": "application/json", "content-length": Buffer.byteLength(text), "cache-control": "no-store" });
  res.end(text);
}

async function testEndpoint(req, res, url) {
  const route = `${req.method} ${url.pathname}`;
  try {
    switch (route) {
      case "GET /test/health":
        return json(res, 200, { ok: true, issuer: ISSUER, kid: keyState.keys[0].kid });
      case "POST /test/rotate":
        return json(res, 200, rotate());
      case "POST /test/sign": {
        const raw = await readBody(req);
        let body;
        try {
          body = JSON.parse(raw || "{}");
        } catch {
          return json(res, 400, { error: "body must be JSON" });
        }
        return json(res, 200, { token: sign(body) });
      }
      case "GET /test/callback": // the default redirect URI: echoes code/state/error
        return json(res, 200, Object.fromEntries(url.searchParams));
      default:
        return json(res, 404, { error: `no test endpoint ${route}` });
    }
  } catch (err) {
    console.error(`[oidc] ${route}: ${err.stack || err}`);
    return json(res, 400, { error: String(err.message || err) });
  }
}

// ---------------------------------------------------------------- server

const server = http.createServer((req, res) => {
  const url = new URL(req.url, ISSUER);
  if (url.pathname.startsWith("/test/")) {
    testEndpoint(req, res, url);
  } else {
    handler(req, res);
  }
});

server.on("error", (err) => {
  console.error(`[oidc] server: ${err.message}`);
  process.exit(1);
});

server.listen(args.port, "127.0.0.1", () => {
  process.stdout.write(`ready ${ISSUER}\n`);
});

function shutdown(signal) {
  console.error(`[oidc] ${signal}: stopping`);
  server.close(() => process.exit(0));
  server.closeAllConnections();
  setTimeout(() => process.exit(0), 2000).unref();
}
process.on("SIGTERM", () => shutdown("SIGTERM"));
process.on("SIGINT", () => shutdown("SIGINT"));
