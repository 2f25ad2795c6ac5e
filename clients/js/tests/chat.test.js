// Logins, joins granted and refused, sending, leaving: the kit against a real nats-server
// and service (tests/it/clients.rs starts them).

import assert from "node:assert/strict";
import { after, test } from "node:test";
import { ChatClient, ChatError } from "../src/node.js";
import { client, closeAll, hears, inbox, login, needsWorld, until, world } from "./world.js";

after(closeAll);

test("a password login joins a granted room and talks both ways", { skip: needsWorld, timeout: 60_000 }, async () => {
  const bob = await login("bob");
  const alice = await login("alice");
  assert.equal(bob.user, "bob");
  await bob.join("all1");
  await alice.join("all1");
  assert.deepEqual(bob.rooms(), ["all1"]);
  await hears(bob, alice, "all1", "hello bob");
  await hears(alice, bob, "all1", "hello alice");
});

test("a refused join rejects with code refused and the other rooms keep working", { skip: needsWorld, timeout: 60_000 }, async () => {
  const bob = await login("bob");
  const alice = await login("alice");
  await bob.join("all1");
  await alice.join("all1");
  await assert.rejects(bob.join("alice1"), (err) => {
    assert.ok(err instanceof ChatError);
    assert.equal(err.code, "refused");
    assert.equal(err.room, "alice1");
    return true;
  });
  assert.deepEqual(bob.rooms(), ["all1"]);
  await hears(bob, alice, "all1", "still here");
  // Two joins at once, one granted and one refused: each answered on its own.
  const [granted, refused] = await Promise.allSettled([bob.join("bob1"), bob.join("alice2")]);
  assert.equal(granted.status, "fulfilled");
  assert.equal(refused.reason.code, "refused");
  assert.deepEqual(bob.rooms(), ["all1", "bob1"]);
  // A name that makes nats-server refuse the whole connection (an auth_users name): the kit
  // renews its token once, then refuses the room and keeps the others.
  await assert.rejects(bob.join("callout"), { code: "refused" });
  assert.deepEqual(bob.rooms(), ["all1", "bob1"]);
  await hears(bob, alice, "all1", "after the reserved name");
});

test("a publish the grant does not allow rejects with code read-only", { skip: needsWorld, timeout: 60_000 }, async () => {
  const bob = await login("bob");
  await bob.join("news");
  await assert.rejects(bob.send("news", "may I?"), { code: "read-only" });
  await bob.join("all1");
  await bob.send("all1", "but here I may"); // the connection is unharmed
});

test("messages carry the sender the server guarantees, once each", { skip: needsWorld, timeout: 60_000 }, async () => {
  const bob = await login("bob");
  const alice = await login("alice");
  await bob.join("all2");
  await alice.join("all2");
  const seen = [];
  bob.onMessage("all2", (from, text, meta) => seen.push({ from, text, ...meta }));
  const id = await alice.send("all2", "with an id");
  await until("the message", () => seen.length === 1);
  assert.equal(seen[0].from, "alice");
  assert.equal(seen[0].id, id);
  assert.equal(seen[0].subject, "chat.all2.alice");
  // An id the app chooses (to show the message before its echo), and one it may not.
  assert.equal(await alice.send("all2", "chosen id", { id: "pending-1" }), "pending-1");
  await until("the second message", () => seen.length === 2);
  assert.equal(seen[1].id, "pending-1");
  await assert.rejects(alice.send("all2", "x", { id: "" }), { code: "bad-request" });
  await assert.rejects(alice.send("all2", "x", { id: "i".repeat(65) }), { code: "bad-request" });
});

test("every connection put in use is a connected event", { skip: needsWorld, timeout: 60_000 }, async () => {
  const bob = await login("bob");
  const events = [];
  bob.on("connected", (e) => events.push(e));
  const first = bob.connects;
  assert.ok(first >= 1);
  await bob.join("all1");
  await bob.join("all2");
  assert.deepEqual(
    events.map((e) => [e.rooms, e.reason, e.connects]),
    [
      [["all1"], "join all1", first + 1],
      [["all1", "all2"], "join all2", first + 2],
    ],
  );
});

test("a key login (challenge signed with the seed) and a guest login", { skip: needsWorld, timeout: 60_000 }, async () => {
  const carol = await client({ seed: world.carolSeed, deviceId: "kit-test" });
  assert.equal(carol.user, "carol");
  const guest = await client({ guest: true });
  assert.match(guest.user, /^guest-/);
  await carol.join("lobby");
  await guest.join("lobby");
  await hears(carol, guest, "lobby", "hi from a guest");
  await assert.rejects(guest.join("all1"), { code: "refused" });
  await assert.rejects(
    client({ username: "carol", seed: "SUAGARBAGE" }),
    { code: "bad-seed" },
  );
});

test("a token the app holds", { skip: needsWorld, timeout: 60_000 }, async () => {
  const r = await fetch(`${world.api}/api/auth/login`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ username: "alice", password: "alice" }),
  });
  const { accessToken } = await r.json();
  const alice = await client({ token: accessToken });
  assert.equal(alice.user, "alice");
  await alice.join("alice1");
  await alice.send("alice1", "with the app's token");
});

test("bad credentials and bad input are typed errors", { skip: needsWorld, timeout: 60_000 }, async () => {
  await assert.rejects(login("bob", { password: "wrong" }), { code: "invalid-credentials", status: 401 });
  await assert.rejects(client({}), { code: "bad-request" });
  await assert.rejects(ChatClient.connect({ servers: world.servers, username: "bob", password: "bob" }), {
    code: "bad-request",
  });
  await assert.rejects(client({ token: "not-a-token" }), (err) => err.status === 401);
  await assert.rejects(
    ChatClient.connect({ api: world.api, servers: "nats://127.0.0.1:1", username: "bob", password: "bob" }),
    { code: "connect-failed" },
  );
  await assert.rejects(
    ChatClient.connect({ api: "http://127.0.0.1:1", servers: world.servers, username: "bob", password: "bob" }),
    { code: "network" },
  );
  const bob = await login("bob");
  for (const bad of ["", "a.b", "a>", "*", "x".repeat(65), 7, null]) {
    await assert.rejects(bob.join(bad), { code: "bad-room-name" }, String(bad));
  }
  await assert.rejects(bob.send("all1", "not joined"), { code: "not-joined" });
  await bob.join("all1");
  await assert.rejects(bob.send("all1", { text: "x" }), { code: "bad-request" });
  // More rooms than the service's maxRooms: refused before any connection is made.
  const joins = Array.from({ length: 51 }, (_, i) => bob.join(`r${i}`));
  const results = await Promise.allSettled(joins);
  assert.equal(results.filter((r) => r.reason?.code === "too-many-rooms").length, 2);
  assert.equal(results.filter((r) => r.reason?.code === "refused").length, 49);
  assert.deepEqual(bob.rooms(), ["all1"]);
  await bob.close();
  await assert.rejects(bob.join("all2"), { code: "closed" });
});

test("leaving a room stops its messages; the others go on", { skip: needsWorld, timeout: 60_000 }, async () => {
  const bob = await login("bob");
  const alice = await login("alice");
  await bob.join("all1");
  await bob.join("all3");
  await alice.join("all1");
  await alice.join("all3");
  const heard = inbox(bob, "all1");
  // A join given up before it is answered.
  const given = assert.rejects(bob.join("bob1"), { code: "left" });
  await bob.leave("bob1");
  await given;
  await bob.leave("never-joined"); // nothing to do
  await bob.leave("all1");
  assert.deepEqual(bob.rooms(), ["all3"]);
  await alice.send("all1", "gone");
  await hears(bob, alice, "all3", "still in all3");
  assert.deepEqual(heard, []);
});

test("a rate-limited login says when to try again", { skip: needsWorld, timeout: 60_000 }, async () => {
  // The world allows 5 guests a minute per address (the service's default, counted in fixed
  // one-minute windows): 11 attempts in a row span at most two windows, so one is refused.
  let refused;
  for (let i = 0; i < 11 && !refused; i++) {
    await client({ guest: true }).catch((err) => {
      refused = err;
    });
  }
  assert.equal(refused?.code, "rate-limited");
  assert.equal(refused.status, 429);
  assert.ok(refused.retryAfter > 0 && refused.retryAfter <= 60, String(refused.retryAfter));
});
