// NATS credentials (operator mode): tests/it/clients.rs's js_kit_uses_nats_credentials_in_
// operator_mode (NATS_CREDENTIALS=on, credentials living CREDENTIALS_TTL_MS) and
// js_kit_falls_back_to_the_callout_when_credentials_are_off (NATS_CREDENTIALS=off) start an
// operator-mode world; in the config-mode world the kit goes through the callout as before.

import assert from "node:assert/strict";
import { after, test } from "node:test";
import { closeAll, hears, login, needsWorld, next, unique } from "./world.js";

after(closeAll);

const mode = process.env.NATS_CREDENTIALS;
const ttl = Number(process.env.CREDENTIALS_TTL_MS ?? 0);
const on = mode === "on" ? false : "needs the operator-mode world with credentials (`cargo test clients::js_kit_uses_nats`)";
const off = mode === "off" ? false : "needs the operator-mode world without credentials (`cargo test clients::js_kit_falls_back`)";
const config = needsWorld || (mode ? "the config-mode world" : false);

test("operator mode: credentials carry the callout's grant, a refused room stays refused", { skip: on, timeout: 60_000 }, async () => {
  const bob = await login("bob");
  const alice = await login("alice");
  assert.equal(bob.via, "credentials");
  assert.equal(alice.via, "credentials");
  const connected = next(bob, "connected", (d) => d.rooms.includes("all1"));
  await bob.join("all1");
  assert.equal((await connected).via, "credentials");
  await alice.join("all1");
  await hears(bob, alice, "all1", "hello bob");
  await hears(alice, bob, "all1", "hello alice");
  await assert.rejects(bob.join("alice1"), (err) => err.code === "refused");
  assert.deepEqual(bob.rooms(), ["all1"]);
  await bob.join("bob1");
  await hears(bob, bob, "bob1", "mine");
  await hears(bob, alice, "all1", "still here");
  // Opting out: the callout, talking with the others all the same.
  const carol = await login("alice", { natsCredentials: false });
  await carol.join("all1");
  assert.equal(carol.via, "callout");
  await hears(bob, carol, "all1", "from the callout");
  await hears(carol, bob, "all1", "from credentials");
});

test("operator mode: credentials are renewed before they expire, without a disconnect", { skip: on, timeout: 60_000 }, async () => {
  const bob = await login("bob");
  const alice = await login("alice");
  await bob.join("all1");
  await alice.join("all1");
  const lost = [];
  bob.on("disconnected", (d) => lost.push(d.reason));
  const renewals = [];
  bob.on("connected", (d) => d.reason === "credentials renewal" && renewals.push(d.via));
  await new Promise((r) => setTimeout(r, ttl * 3));
  assert.ok(renewals.length >= 2, `renewals: ${renewals}`);
  assert.ok(renewals.every((v) => v === "credentials"), `renewals: ${renewals}`);
  assert.deepEqual(lost, [], "a connection outlived its JWT");
  assert.deepEqual(bob.rooms(), ["all1"]);
  await hears(bob, alice, "all1", "after three lives");
  await hears(alice, bob, "all1", "and back");
});

test("operator mode: a room taken is lost, the reconnect asking for fresh credentials", { skip: on, timeout: 60_000 }, async () => {
  const bob = await login("bob");
  const alice = await login("alice");
  const room = unique("cred");
  await alice.createRoom(room);
  await alice.join(room);
  await alice.join("all1");
  await alice.invite(room, "bob", "readwrite");
  await bob.join("all1");
  await bob.join(room);
  assert.equal(bob.via, "credentials");
  await hears(bob, alice, room, "welcome");
  // The JWT bob holds still carries the room: the notice makes the kit ask again (the Rust
  // kit's test shows the notice alone is enough; here the enforcer may move it too).
  const lost = next(bob, "room-lost", (l) => l.room === room);
  await alice.removeMember(room, "bob");
  assert.deepEqual(await lost, { room, reason: "removed" });
  assert.deepEqual(bob.rooms(), ["all1"]);
  assert.equal(bob.via, "credentials");
  await hears(bob, alice, "all1", "all1 still works");
});

/** A fetch that hands the service's mint answers to `change` (status, body) and counts them. */
function mints(change) {
  const seen = { count: 0 };
  seen.fetch = async (url, init) => {
    const r = await fetch(url, init);
    if (!String(url).endsWith("/api/auth/nats-credentials")) return r;
    seen.count += 1;
    const [status, body] = change(seen.count, r.status, await r.json());
    return new Response(JSON.stringify(body), { status, headers: { "content-type": "application/json" } });
  };
  return seen;
}

test("operator mode: a JWT nats-server refuses turns credentials off; the callout decides", { skip: on, timeout: 60_000 }, async () => {
  // The signature broken: nats-server answers Authorization Violation.
  const broken = mints((_, status, body) => {
    if (status === 200) body.jwt = `${body.jwt.slice(0, -6)}AAAAAA`;
    return [status, body];
  });
  const bob = await login("bob", { fetch: broken.fetch });
  const alice = await login("alice");
  assert.equal(bob.via, "callout");
  await bob.join("all1");
  await alice.join("all1");
  await hears(bob, alice, "all1", "through the callout");
  assert.equal(bob.via, "callout");
  assert.equal(broken.count, 1, "asked once, then never again");
});

test("operator mode: credentials refused at renewal: the callout takes over, without a disconnect", { skip: on, timeout: 60_000 }, async () => {
  const later = mints((n, status, body) => (n === 1 ? [status, body] : [403, { error: "no", error_code: "account-not-served" }]));
  const bob = await login("bob", { fetch: later.fetch });
  const alice = await login("alice");
  assert.equal(bob.via, "credentials");
  const lost = [];
  bob.on("disconnected", (d) => lost.push(d.reason));
  const renewed = await next(bob, "connected", (d) => d.reason === "credentials renewal", ttl * 2);
  assert.equal(renewed.via, "callout");
  assert.deepEqual(lost, []);
  // A 403 is for that connect only: the join's connection asks again, and goes through the callout.
  await bob.join("all1");
  await alice.join("all1");
  assert.equal(bob.via, "callout");
  await hears(bob, alice, "all1", "hello");
  assert.equal(later.count, 3);
});

test("operator mode without credentials: the callout decides", { skip: off, timeout: 60_000 }, async () => {
  const bob = await login("bob");
  const alice = await login("alice");
  assert.equal(bob.via, "callout");
  await bob.join("all1");
  await alice.join("all1");
  await hears(bob, alice, "all1", "hello bob");
  await assert.rejects(bob.join("alice1"), (err) => err.code === "refused");
  assert.equal(bob.via, "callout");
});

test("config mode: the callout, as before", { skip: config, timeout: 60_000 }, async () => {
  const bob = await login("bob");
  await bob.join("all1");
  assert.equal(bob.via, "callout");
});
