// The kit's pure parts: subject templates, the sender of a message, backoff, token expiry,
// the service configuration's defaults.

import assert from "node:assert/strict";
import { test } from "node:test";
import { DEFAULT_CONFIG, jwtExpiry } from "../src/api.js";
import { backoffMs, fill, ROOM_NAME, senderOf } from "../src/client.js";
import { ChatError } from "../src/node.js";
import * as browser from "../src/browser.js";

test("subject templates are filled with the room and the user", () => {
  assert.equal(fill(DEFAULT_CONFIG.readSubject, { room: "all1" }), "chat.all1.>");
  assert.equal(fill(DEFAULT_CONFIG.writeSubject, { room: "all1", user: "bob" }), "chat.all1.bob");
  assert.equal(fill(DEFAULT_CONFIG.noticeSubject, { user: "bob" }), "nats-callout.notice.bob");
  assert.equal(fill(DEFAULT_CONFIG.inboxPrefix, { user: "bob" }), "_INBOX.bob");
  assert.equal(fill("t.{room}.x.{user}", { room: "r", user: "u" }), "t.r.x.u");
});

test("the sender is the subject token where the write template puts the user", () => {
  const w = DEFAULT_CONFIG.writeSubject;
  assert.equal(senderOf(w, "all1", "chat.all1.alice"), "alice");
  assert.equal(senderOf(w, "all1", "chat.all2.alice"), null, "another room");
  assert.equal(senderOf(w, "all1", "chat.all1.alice.x"), null, "a longer subject");
  assert.equal(senderOf(w, "all1", "chat.all1"), null, "a shorter one");
  assert.equal(senderOf(w, "all1", "other.all1.alice"), null, "another prefix");
  assert.equal(senderOf("rooms.{room}.by.{user}", "r", "rooms.r.by.carol"), "carol");
});

test("backoff grows exponentially to its cap, half of it random", () => {
  const low = () => 0;
  const high = () => 1;
  assert.equal(backoffMs(1, {}, low), 125);
  assert.equal(backoffMs(1, {}, high), 250);
  assert.equal(backoffMs(3, {}, high), 1000);
  assert.equal(backoffMs(100, {}, high), 30_000);
  assert.equal(backoffMs(100, {}, low), 15_000);
  assert.equal(backoffMs(2, { initialMs: 100, maxMs: 150 }, high), 150);
  for (let n = 1; n < 30; n++) {
    const d = backoffMs(n);
    assert.ok(d > 0 && d <= 30_000, `${n}: ${d}`);
  }
});

test("an access token's expiry is read without trusting it; anything else gives null", () => {
  const part = (o) => Buffer.from(JSON.stringify(o)).toString("base64url");
  assert.equal(jwtExpiry(`${part({ alg: "EdDSA" })}.${part({ exp: 1796640000 })}.sig`), 1796640000);
  for (const bad of ["", "abc", "a.b.c", `x.${part({ exp: "soon" })}.y`, `x.${part({})}.y`]) {
    assert.equal(jwtExpiry(bad), null, bad);
  }
});

test("room names are what the service accepts", () => {
  for (const ok of ["all1", "a", "team-x_2", "x".repeat(64)]) assert.ok(ROOM_NAME.test(ok), ok);
  for (const bad of ["", "a.b", "a b", "*", ">", "x".repeat(65), "é"]) assert.ok(!ROOM_NAME.test(bad), bad);
});

test("errors are typed, with the service's code", () => {
  const e = new ChatError("rate-limited", "slow down", { status: 429, retryAfter: 12 });
  assert.ok(e instanceof Error);
  assert.equal(e.name, "ChatError");
  assert.deepEqual([e.code, e.status, e.retryAfter], ["rate-limited", 429, 12]);
  assert.equal(browser.ChatError, ChatError, "one error class for both entry points");
});

test("connect refuses missing options before any network call", async () => {
  const { ChatClient } = await import("../src/node.js");
  let called = false;
  const fetch = async () => {
    called = true;
    throw new Error("no network in this test");
  };
  await assert.rejects(ChatClient.connect({ username: "bob", password: "bob", fetch }), { code: "bad-request" });
  assert.equal(called, false);
  await assert.rejects(ChatClient.connect({ api: "http://x", username: "bob", password: "bob", fetch }), {
    code: "network",
  });
});

test("GET /api/config's subjects and limits are used, with defaults for what is missing", async () => {
  const { Api } = await import("../src/api.js");
  const answer = (body) => async () =>
    new Response(JSON.stringify(body), { status: 200, headers: { "content-type": "application/json" } });
  const custom = {
    readSubject: "rooms.{room}.>",
    writeSubject: "rooms.{room}.{user}",
    inboxPrefix: "_I.{user}",
    maxRooms: 7,
    noticeSubject: "n.{user}",
    websocketPort: 9222,
  };
  const api = new Api({ api: "http://service", fetch: answer(custom) });
  assert.deepEqual(await api.config(), { ...custom, websocketUrl: null });
  const old = new Api({ api: "http://service", fetch: answer({ websocketPort: 9222, maxRooms: null }) });
  assert.deepEqual(await old.config(), { ...DEFAULT_CONFIG, websocketPort: 9222, websocketUrl: null });
});
