// A client of the key login written with the official JavaScript nkeys library
// (@nats-io/nkeys), so our Rust side is not the only judge of the signatures it accepts.
//   node tests/keylogin/nkey.mjs new                 prints "<public key> <seed>"
//   node tests/keylogin/nkey.mjs login BASE SEED     challenge, sign, authenticate; prints
//                                                    the OAuthToken answer (JSON)
// Started by tests/it/http... (see tests/it/keylogin.rs).

import { createRequire } from "node:module";

const require = createRequire(new URL("../../web/package.json", import.meta.url));
const { createUser, fromSeed } = require("@nats-io/nkeys");

const [command, base, seed] = process.argv.slice(2);
const b64url = (bytes) => Buffer.from(bytes).toString("base64url");

async function post(path, body) {
  const r = await fetch(`${base}${path}`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify(body),
  });
  const data = await r.json();
  if (!r.ok) throw new Error(`${path}: ${r.status} ${JSON.stringify(data)}`);
  return data;
}

if (command === "new") {
  const kp = createUser();
  console.log(`${kp.getPublicKey()} ${new TextDecoder().decode(kp.getSeed())}`);
} else if (command === "login" && base && seed) {
  const kp = fromSeed(new TextEncoder().encode(seed));
  const publicKey = kp.getPublicKey();
  const { challenge } = await post("/api/auth/challenge", { publicKey });
  const signature = b64url(kp.sign(new TextEncoder().encode(challenge)));
  const answer = await post("/api/auth/authenticate", { challenge, publicKey, signature, deviceId: "node" });
  console.log(JSON.stringify(answer));
} else {
  console.error("usage: nkey.mjs new | login BASE SEED");
  process.exit(2);
}
