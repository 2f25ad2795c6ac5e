// What a chat client must survive: kicks, lame-duck notices, expired access tokens, a
// nats-server restart, grants that grow and shrink while it is connected. The kit against a
// real nats-server and service (tests/it/clients.rs starts them and does the operator's part).

import assert from "node:assert/strict";
import { after, test } from "node:test";
import { closeAll, hears, login, needsWorld, next, operator, unique, until, world } from "./world.js";

after(closeAll);

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

test("a kick is survived: the client reconnects with its rooms", { skip: needsWorld, timeout: 60_000 }, async () => {
  const bob = await login("bob");
  const alice = await login("alice");
  await bob.join("all1");
  await bob.join("bob1");
  await alice.join("all1");
  const back = next(bob, "reconnected");
  const gone = next(bob, "disconnected");
  assert.ok(Number(await operator("kick/bob")) >= 1);
  await gone;
  await back;
  assert.deepEqual(bob.rooms(), ["all1", "bob1"]);
  await hears(bob, alice, "all1", "after the kick");
});

test("a lame-duck notice is survived without a gap or a duplicate", { skip: needsWorld, timeout: 60_000 }, async () => {
  const bob = await login("bob");
  const alice = await login("alice");
  await bob.join("all2");
  await alice.join("all2");
  const heard = [];
  bob.onMessage("all2", (from, text) => heard.push(text));
  // alice talks all along; bob is told to reconnect in the middle of it.
  let sent = 0;
  const talking = (async () => {
    for (; sent < 40; sent++) {
      await alice.send("all2", `m${sent}`);
      await sleep(25);
    }
  })();
  await sleep(200);
  const ldm = next(bob, "lame-duck");
  const back = next(bob, "reconnected", (d) => d.reason === "lame-duck notice");
  assert.ok(Number(await operator("ldm/bob")) >= 1);
  await ldm;
  await back;
  await talking;
  await until("every message", () => heard.length >= 40);
  await sleep(200);
  assert.deepEqual(heard, Array.from({ length: 40 }, (_, i) => `m${i}`));
});

test("a join during a conversation loses and repeats nothing", { skip: needsWorld, timeout: 60_000 }, async () => {
  const bob = await login("bob");
  const alice = await login("alice");
  await bob.join("all3");
  await alice.join("all3");
  const heard = [];
  bob.onMessage("all3", (from, text) => heard.push(text));
  const talking = (async () => {
    for (let i = 0; i < 30; i++) {
      await alice.send("all3", `j${i}`);
      await sleep(20);
    }
  })();
  await sleep(100);
  await bob.join("bob2");
  await bob.join("all1");
  await talking;
  await until("every message", () => heard.length >= 30);
  await sleep(200);
  assert.deepEqual(heard, Array.from({ length: 30 }, (_, i) => `j${i}`));
});

test("an expired access token is renewed by the timer before it is needed", { skip: needsWorld, timeout: 60_000 }, async () => {
  const bob = await login("bob");
  const refreshed = next(bob, "refreshed", () => true, world.accessTtlMs * 3);
  assert.equal((await refreshed).reason, "timer");
  await sleep(world.accessTtlMs + 500); // longer than one token's life
  await bob.join("all1");
  assert.ok(bob.refreshes >= 2, `refreshes: ${bob.refreshes}`);
  // The rooms API too (Bearer, renewed token).
  const rooms = await bob.availableRooms();
  assert.ok(rooms.some((r) => r.name === "all1"));
});

test("without the timer, a token nats-server refuses is renewed and the join goes through", { skip: needsWorld, timeout: 60_000 }, async () => {
  const bob = await login("bob", { autoRefresh: false });
  await sleep(world.accessTtlMs + 1500); // the access token has expired
  assert.equal(bob.refreshes, 0);
  const renewed = next(bob, "refreshed");
  await bob.join("bob2"); // denied (Authorization Violation), renewed, granted
  assert.equal((await renewed).reason, "nats-denied");
  assert.equal(bob.refreshes, 1);
  assert.deepEqual(bob.rooms(), ["bob2"]);
  await sleep(world.accessTtlMs + 1500);
  const again = next(bob, "refreshed");
  const rooms = await bob.availableRooms(); // 401 access-token-expired, renewed, answered
  assert.ok(rooms.length > 0);
  assert.equal((await again).reason, "api-401");
  assert.equal(bob.refreshes, 2);
});

test("a nats-server restart is survived", { skip: needsWorld, timeout: 60_000 }, async () => {
  const bob = await login("bob");
  const alice = await login("alice");
  await bob.join("all1");
  await alice.join("all1");
  const bobBack = next(bob, "reconnected", () => true, 20_000);
  const aliceBack = next(alice, "reconnected", () => true, 20_000);
  assert.equal(await operator("restart-nats"), "restarted");
  await bobBack;
  await aliceBack;
  assert.deepEqual(bob.rooms(), ["all1"]);
  await hears(bob, alice, "all1", "after the restart");
});

test("a room granted while connected becomes joinable; removed, it is lost", { skip: needsWorld, timeout: 60_000 }, async () => {
  const bob = await login("bob");
  const alice = await login("alice");
  const room = unique("kit");
  await alice.createRoom(room, { description: "the kit's test" });
  await alice.join(room);
  await alice.join("all1");
  await bob.join("all1");
  await assert.rejects(bob.join(room), { code: "refused" });
  const granted = next(bob, "granted", (g) => g.room === room);
  const notices = [];
  bob.on("grants-changed", (n) => notices.push(n));
  assert.deepEqual(await alice.invite(room, "bob", "readwrite"), { userId: "bob", access: "readwrite", owner: false });
  assert.deepEqual(await granted, { room, access: "readwrite", previous: "none" });
  await bob.join(room);
  await hears(bob, alice, room, "welcome");
  // Told once, although the join's two connections both listen for notices.
  assert.equal(notices.filter((n) => n.room === room).length, 1, JSON.stringify(notices));
  const members = await alice.members(room);
  assert.deepEqual(members.map((m) => m.userId).sort(), ["alice", "bob"]);
  // Taken back: bob's kit loses the room, keeps the others.
  const lost = next(bob, "room-lost", (l) => l.room === room);
  await alice.removeMember(room, "bob");
  assert.deepEqual(await lost, { room, reason: "removed" });
  assert.deepEqual(bob.rooms(), ["all1"]);
  await hears(bob, alice, "all1", "all1 still works");
  await assert.rejects(bob.invite(room, "bob", "read"), { code: "not-room-owner", status: 403 });
  await alice.deleteRoom(room);
  await assert.rejects(alice.members(room), { code: "unknown-room", status: 404 });
});

test("an open room: joinOpen makes a member and joins; deleting it loses it", { skip: needsWorld, timeout: 60_000 }, async () => {
  const bob = await login("bob");
  const alice = await login("alice");
  const room = unique("open");
  assert.equal((await alice.createRoom(room, { join: "open" })).join, "open");
  const open = await bob.availableRooms({ open: true });
  assert.ok(open.some((r) => r.name === room));
  await bob.joinOpen(room);
  assert.deepEqual(bob.rooms(), [room]);
  await alice.join(room);
  await hears(alice, bob, room, "joined the open room");
  const lost = next(bob, "room-lost", (l) => l.room === room);
  await alice.deleteRoom(room);
  await lost;
  assert.deepEqual(bob.rooms(), []);
  await assert.rejects(alice.createRoom("all1"), { code: "room-exists", status: 409 });
  await assert.rejects(alice.createRoom("a.b"), { code: "bad-room-name", status: 400 });
});

test("a revoked session ends the client with auth-expired", { skip: needsWorld, timeout: 60_000 }, async () => {
  const bob = await login("bob", { deviceId: "doomed" });
  await bob.join("all1");
  const failed = next(bob, "error", (e) => e.code === "auth-expired", 20_000);
  const closed = next(bob, "closed", () => true, 20_000);
  const r = await fetch(`${world.api}/api/auth/revoke`, {
    method: "POST",
    headers: { "content-type": "application/json", authorization: `Bearer ${bob.api.accessToken}` },
    body: JSON.stringify({ deviceId: "doomed" }),
  });
  assert.equal(r.status, 200);
  const err = await failed;
  assert.match(err.reason, /^refresh-token-revoked$|^access-token-revoked$/);
  await closed;
  await assert.rejects(bob.join("all2"), { code: "closed" });
});
