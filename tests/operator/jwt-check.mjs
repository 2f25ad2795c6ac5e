// Checks operator-mode ("decentralized JWT") artefacts for the auth callout with the official
// JavaScript libraries (@nats-io/jwt, @nats-io/nkeys), so our Rust side is not the only judge
// of the JWTs it writes.
//   node tests/operator/jwt-check.mjs DIR [--no-xkey]
// DIR holds operator.jwt, AUTH.jwt, APP.jwt, SYS.jwt (account JWTs) and optionally sentinel.jwt
// (the default_sentinel user JWT). Files may be bare JWTs or "decorated" (-----BEGIN ... JWT-----).
// Every JWT is decoded and its ed25519-nkey signature verified against its `iss`; then:
//   operator: self-signed (or by one of its signing keys), signing keys are O... keys, system_account = SYS;
//   accounts: issued by the operator or one of its signing keys (only signing keys if
//             strict_signing_key_usage), signing_keys listed and valid, limits conn/subs/payload set
//             (nats-server reads a missing limit as 0: "maximum account active connections exceeded",
//             "maximum subscriptions exceeded", max_payload 0);
//   AUTH:     nats.authorization with auth_users (U...), allowed_accounts ("*" alone, or A... incl. APP,
//             never SYS) and xkey (X...; --no-xkey allows it to be absent);
//   sentinel: a user of AUTH (its key, or an unscoped signing key + issuer_account), bearer_token,
//             pub/sub deny ">" and no allow,
//             not one of auth_users.
// On success prints one JSON line {"ok":true,"checked":[...]}; on a failed check prints
// "jwt-check: ..." to stderr and exits 1; usage or missing libraries exit 2.
// The libraries are resolved from web/node_modules (devDependencies of web/package.json).

import { createRequire } from "node:module";
import fs from "node:fs";
import path from "node:path";

const require = createRequire(new URL("../../web/package.json", import.meta.url));
let jwt, nkeys;
try {
  jwt = require("@nats-io/jwt");
  nkeys = require("@nats-io/nkeys");
} catch (e) {
  console.error(`jwt-check: cannot load @nats-io/jwt / @nats-io/nkeys from web/node_modules (npm install in web/): ${e.message.split("\n")[0]}`);
  process.exit(2);
}

const args = process.argv.slice(2);
const allowNoXkey = args.includes("--no-xkey");
const dir = args.find((a) => !a.startsWith("--"));
if (!dir || args.some((a) => a.startsWith("--") && a !== "--no-xkey")) {
  console.error("usage: jwt-check.mjs DIR [--no-xkey]   (DIR: operator.jwt AUTH.jwt APP.jwt SYS.jwt [sentinel.jwt])");
  process.exit(2);
}

class CheckError extends Error {}
const fail = (msg) => { throw new CheckError(msg); };
const checked = [];

// A valid public nkey of the given kind ("O", "A", "U", "X"); fromPublic checks the CRC.
function isKey(k, kind) {
  if (typeof k !== "string" || k[0] !== kind) return false;
  try {
    return nkeys.fromPublic(k).getPublicKey() === k;
  } catch {
    return false;
  }
}

// Bare or decorated JWT (the first line that looks like a JWT).
function readJwt(file, optional = false) {
  const p = path.join(dir, file);
  if (!fs.existsSync(p)) {
    if (optional) return undefined;
    fail(`${file}: missing in ${dir}`);
  }
  const text = fs.readFileSync(p, "utf8");
  const token = text.split(/\s+/).find((l) => /^eyJ[\w-]*\.[\w-]+\.[\w-]+$/.test(l));
  if (!token) fail(`${file}: no JWT found`);
  return token;
}

// Decode + verify the signature with the official library; check header, type, version, exp/nbf.
function decode(file, token, type) {
  const header = JSON.parse(Buffer.from(token.split(".")[0], "base64url").toString());
  let claims;
  try {
    claims = jwt.decode(token); // verifies the signature against claims.iss
  } catch (e) {
    fail(`${file}: ${e.message}`);
  }
  if (header.alg !== "ed25519-nkey") fail(`${file}: header alg ${JSON.stringify(header.alg)}, expected "ed25519-nkey" (v2)`);
  if (claims.nats?.version !== 2) fail(`${file}: nats.version ${JSON.stringify(claims.nats?.version)}, expected 2`);
  if (claims.nats?.type !== type) fail(`${file}: nats.type ${JSON.stringify(claims.nats?.type)}, expected "${type}"`);
  const now = Math.floor(Date.now() / 1000);
  if (claims.exp && claims.exp <= now) fail(`${file}: expired (exp ${new Date(claims.exp * 1000).toISOString()})`);
  if (claims.nbf && claims.nbf > now) fail(`${file}: not valid before ${new Date(claims.nbf * 1000).toISOString()}`);
  checked.push(`${file}: signature valid (iss ${claims.iss}), ${type} v2${claims.exp ? `, exp ${new Date(claims.exp * 1000).toISOString()}` : ", no exp"}`);
  return claims;
}

// signing_keys entries are "A..." strings or { kind: "user_scope", key, role, template }.
function signingKeys(file, claims, kind, required) {
  const list = claims.nats?.signing_keys ?? [];
  if (!Array.isArray(list)) fail(`${file}: signing_keys is not a list`);
  if (required && list.length === 0) fail(`${file}: no signing_keys listed`);
  const keys = new Map(); // key -> scope (null for unscoped)
  for (const e of list) {
    const key = typeof e === "string" ? e : e?.key;
    if (!isKey(key, kind)) fail(`${file}: signing key ${JSON.stringify(key)} is not a valid ${kind}... public key`);
    if (key === claims.sub) fail(`${file}: the identity key ${key} is listed as its own signing key`);
    if (typeof e !== "string" && e.kind !== "user_scope") fail(`${file}: signing key ${key} has kind ${JSON.stringify(e.kind)}, expected "user_scope"`);
    keys.set(key, typeof e === "string" ? null : e);
  }
  const scoped = [...keys.values()].filter(Boolean).length;
  checked.push(`${file}: ${keys.size} signing key(s) valid${scoped ? ` (${scoped} scoped)` : ""}`);
  return keys;
}

function main() {
  // ---- operator --------------------------------------------------------------------------
  const op = decode("operator.jwt", readJwt("operator.jwt"), "operator");
  if (!isKey(op.sub, "O")) fail(`operator.jwt: sub ${JSON.stringify(op.sub)} is not an operator key (O...)`);
  const opKeys = signingKeys("operator.jwt", op, "O", false);
  if (op.iss !== op.sub && !opKeys.has(op.iss)) fail(`operator.jwt: issuer ${op.iss} is neither the operator ${op.sub} nor one of its signing keys`);
  checked.push(`operator.jwt: ${op.iss === op.sub ? "self-signed" : "signed by an operator signing key"} (operator ${op.sub})`);
  const strict = op.nats.strict_signing_key_usage === true;

  // ---- accounts --------------------------------------------------------------------------
  const acc = {};
  for (const name of ["AUTH", "APP", "SYS"]) {
    const f = `${name}.jwt`;
    const c = decode(f, readJwt(f), "account");
    if (!isKey(c.sub, "A")) fail(`${f}: sub ${JSON.stringify(c.sub)} is not an account key (A...)`);
    if (c.iss === op.sub) {
      if (strict) fail(`${f}: signed by the operator identity key but the operator has strict_signing_key_usage`);
      checked.push(`${f}: issued by the operator ${op.sub}`);
    } else if (opKeys.has(c.iss)) {
      checked.push(`${f}: issued by operator signing key ${c.iss}`);
    } else {
      fail(`${f}: issuer ${c.iss} is neither the operator ${op.sub} nor one of its signing keys`);
    }
    const keys = signingKeys(f, c, "A", true);
    const lim = c.nats.limits ?? {};
    for (const l of ["conn", "subs", "payload"]) {
      if (typeof lim[l] !== "number") fail(`${f}: limits.${l} missing (nats-server reads it as 0; use -1 for unlimited)`);
      if (lim[l] === 0) fail(`${f}: limits.${l} is 0 (nothing allowed; use -1 for unlimited)`);
    }
    checked.push(`${f}: limits conn=${lim.conn} subs=${lim.subs} payload=${lim.payload} data=${lim.data ?? "unset"}`);
    acc[name] = { claims: c, keys };
  }
  const subs = Object.values(acc).map((a) => a.claims.sub);
  if (new Set(subs).size !== subs.length) fail("AUTH.jwt/APP.jwt/SYS.jwt: two files are the same account");
  if (op.nats.system_account !== undefined) {
    if (op.nats.system_account !== acc.SYS.claims.sub) fail(`operator.jwt: system_account ${op.nats.system_account} is not SYS.jwt's account ${acc.SYS.claims.sub}`);
    checked.push(`operator.jwt: system_account = SYS ${acc.SYS.claims.sub}`);
  }

  // ---- AUTH's callout configuration ----------------------------------------------------------
  const authz = acc.AUTH.claims.nats.authorization;
  if (!authz || typeof authz !== "object") fail("AUTH.jwt: no nats.authorization (auth callout) block");
  const users = authz.auth_users;
  if (!Array.isArray(users) || users.length === 0) fail("AUTH.jwt: authorization.auth_users is empty (nats-server: \"External authorization cannot have accounts without users specified\")");
  for (const u of users) if (!isKey(u, "U")) fail(`AUTH.jwt: auth_users entry ${JSON.stringify(u)} is not a user key (U...)`);
  const allowed = authz.allowed_accounts;
  if (!Array.isArray(allowed) || allowed.length === 0) fail("AUTH.jwt: authorization.allowed_accounts is empty");
  if (allowed.includes("*")) {
    if (allowed.length !== 1) fail("AUTH.jwt: allowed_accounts mixes \"*\" with accounts (nats-server: 'AllowedAccounts can only be a list of accounts or \"*\"')");
  } else {
    for (const a of allowed) if (!isKey(a, "A")) fail(`AUTH.jwt: allowed_accounts entry ${JSON.stringify(a)} is not an account key (A...)`);
    if (!allowed.includes(acc.APP.claims.sub)) fail(`AUTH.jwt: allowed_accounts does not include APP ${acc.APP.claims.sub}`);
    if (allowed.includes(acc.SYS.claims.sub)) fail("AUTH.jwt: allowed_accounts includes the system account");
  }
  if (authz.xkey === undefined || authz.xkey === "") {
    if (!allowNoXkey) fail("AUTH.jwt: authorization.xkey missing (requests would travel unencrypted; pass --no-xkey to allow)");
  } else if (!isKey(authz.xkey, "X")) {
    fail(`AUTH.jwt: authorization.xkey ${JSON.stringify(authz.xkey)} is not a curve key (X...)`);
  }
  checked.push(`AUTH.jwt: authorization auth_users=${users.length} allowed_accounts=${allowed.includes("*") ? "*" : allowed.length} (APP included) xkey=${authz.xkey ? authz.xkey : "none"}`);
  for (const name of ["APP", "SYS"]) {
    if (acc[name].claims.nats.authorization) fail(`${name}.jwt: carries an authorization (callout) block; only AUTH should`);
  }

  // ---- sentinel (optional) --------------------------------------------------------------------
  const st = readJwt("sentinel.jwt", true);
  if (st !== undefined) {
    const c = decode("sentinel.jwt", st, "user");
    const n = c.nats;
    if (!isKey(c.sub, "U")) fail(`sentinel.jwt: sub ${JSON.stringify(c.sub)} is not a user key (U...)`);
    const authSub = acc.AUTH.claims.sub;
    if (c.iss === authSub) {
      if (n.issuer_account && n.issuer_account !== authSub) fail(`sentinel.jwt: issuer_account ${n.issuer_account} is not AUTH`);
    } else if (acc.AUTH.keys.has(c.iss)) {
      if (n.issuer_account !== authSub) fail(`sentinel.jwt: signed by AUTH signing key ${c.iss} but issuer_account is ${JSON.stringify(n.issuer_account)}, expected AUTH ${authSub}`);
      if (acc.AUTH.keys.get(c.iss)) fail(`sentinel.jwt: signed by a scoped signing key ${c.iss}; use the AUTH key or an unscoped signing key`);
    } else {
      fail(`sentinel.jwt: issuer ${c.iss} is neither AUTH ${authSub} nor one of its signing keys`);
    }
    checked.push(`sentinel.jwt: user of AUTH, signed by ${c.iss === authSub ? "the account key" : `signing key ${c.iss}`}`);
    if (n.bearer_token !== true) fail("sentinel.jwt: bearer_token is not true (nats-server: \"default sentinel must be a bearer token\")");
    for (const dirn of ["pub", "sub"]) {
      const p = n[dirn] ?? {};
      if (!(p.deny ?? []).includes(">")) fail(`sentinel.jwt: ${dirn}.deny does not contain ">"`);
      if ((p.allow ?? []).length > 0) fail(`sentinel.jwt: ${dirn}.allow is not empty: ${JSON.stringify(p.allow)}`);
    }
    if (users.includes(c.sub)) fail("sentinel.jwt: the sentinel is one of AUTH's auth_users (it would bypass the callout)");
    checked.push("sentinel.jwt: bearer_token, pub/sub deny \">\", not an auth user");
  }
}

try {
  main();
  console.log(JSON.stringify({ ok: true, checked }));
} catch (e) {
  if (!(e instanceof CheckError)) throw e;
  console.error(`jwt-check: ${e.message}`);
  process.exit(1);
}
