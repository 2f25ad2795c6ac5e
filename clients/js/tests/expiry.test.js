// A user JWT that expires while connected (the world of tests/it/clients.rs's
// js_kit_survives_user_jwt_expiry gives them a lifetime of USER_JWT_TTL_MS): nats-server
// closes the connection with "User Authentication Expired"; the kit renews its access token
// and connects again with its rooms.

import assert from "node:assert/strict";
import { after, test } from "node:test";
import { closeAll, hears, login, next } from "./world.js";

after(closeAll);

const ttl = Number(process.env.USER_JWT_TTL_MS ?? 0);
const skip = ttl ? false : "needs the short-lived user JWTs of `cargo test clients::js_kit_survives_user_jwt_expiry`";

test("User Authentication Expired: renewed and reconnected with the rooms", { skip, timeout: 60_000 }, async () => {
  const bob = await login("bob");
  const alice = await login("alice");
  await bob.join("all1");
  await alice.join("all1");
  const gone = next(bob, "disconnected", (d) => /expired/i.test(d.reason), ttl * 5);
  const renewed = next(bob, "refreshed", (r) => r.reason === "closed", ttl * 5);
  const back = next(bob, "reconnected", () => true, ttl * 5);
  await gone;
  await renewed;
  await back;
  assert.deepEqual(bob.rooms(), ["all1"]);
  await hears(bob, alice, "all1", "after the expiry");
});
