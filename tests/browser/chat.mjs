// The chat page end to end in Debian's headless Chromium, driven by playwright-core.
// Started by tests/browser.rs, which runs nats-server and nats-callout and passes:
//   BASE_URL         the page, e.g. http://127.0.0.1:PORT/
//   PERMISSIONS_DIR  the service's permission files (this script edits rooms.toml)
//   SCREENSHOT_DIR   where the screenshots go
//   CHROMIUM         the browser (default /usr/bin/chromium)
// Exit status 0 = every step passed. Each step is logged; on failure both pages are
// photographed (failure-*.png) and their notices printed.
// A stdout line `@@kick USER` asks tests/browser.rs to kick USER's NATS connections through
// the system account; it answers `@@kicked N` on stdin.

import { createInterface } from "node:readline";
import { rename, writeFile } from "node:fs/promises";
import { join } from "node:path";

import { StepError, check, launch } from "./common.mjs";

const BASE_URL = process.env.BASE_URL;
const PERMISSIONS_DIR = process.env.PERMISSIONS_DIR;
const SHOTS = process.env.SCREENSHOT_DIR;
if (!BASE_URL || !PERMISSIONS_DIR || !SHOTS) {
  console.error("BASE_URL, PERMISSIONS_DIR and SCREENSHOT_DIR must be set (tests/browser.rs sets them)");
  process.exit(2);
}

/** Generous upper bounds on what the page is waited for. */
const STEP = 10_000;
const LOST_WITHIN = 15_000;

const started = Date.now();
const log = (msg) => console.log(`[${((Date.now() - started) / 1000).toFixed(1)}s] ${msg}`);

const answers = [];
createInterface({ input: process.stdin }).on("line", (line) => answers.shift()?.(line));
/** Ask tests/browser.rs to do something only the system account can. */
function harness(command) {
  return new Promise((resolve) => {
    answers.push(resolve);
    console.log(`@@${command}`);
  });
}


/** Poll `fn` until it returns a truthy value. */
async function until(fn, what, timeout = STEP) {
  const end = Date.now() + timeout;
  let last;
  while (Date.now() < end) {
    try {
      last = await fn();
      if (last) return last;
    } catch (err) {
      last = err;
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new StepError(`timed out after ${timeout} ms waiting for ${what} (last: ${last})`);
}

const browser = await launch();

/** A user in their own browser context (own cookies), with console errors collected. */
async function openUser(name, viewport) {
  const context = await browser.newContext({ viewport });
  const page = await context.newPage();
  const user = { name, context, page, errors: [], refreshes: 0 };
  page.on("console", (m) => {
    if (m.type() === "error") user.errors.push(`console: ${m.text()}`);
  });
  page.on("pageerror", (e) => user.errors.push(`page error: ${e.message}`));
  page.on("response", (r) => {
    if (r.url().endsWith("/api/auth/refresh") && r.status() === 200) user.refreshes += 1;
  });
  await page.goto(BASE_URL);
  return user;
}

const shot = (user, name) => user.page.screenshot({ path: join(SHOTS, `${name}.png`), fullPage: true });

const roomItem = (user, room) => user.page.locator(`#joined-rooms li[data-room="${room}"]`);
const roomState = (user, room) => roomItem(user, room).getAttribute("data-state", { timeout: 1000 });

async function waitRoomState(user, room, state, timeout = STEP) {
  await until(async () => (await roomState(user, room)) === state, `${user.name}: ${room} ${state}`, timeout);
}

/** Texts and senders of the messages shown in a room. */
async function messages(user, room) {
  return user.page.locator(`ol.messages[data-room="${room}"] li.msg`).evaluateAll((items) =>
    items.map((li) => ({
      sender: li.querySelector(".sender").textContent,
      text: li.querySelector(".text").textContent,
      pending: li.classList.contains("pending"),
    })),
  );
}

async function waitMessage(user, room, sender, text, timeout = STEP) {
  await until(
    async () => (await messages(user, room)).some((m) => m.sender === sender && m.text === text && !m.pending),
    `${user.name}: "${text}" from ${sender} in ${room}`,
    timeout,
  );
}

async function login(user, password) {
  const { page } = user;
  await page.getByLabel("User name").fill(user.name);
  await page.getByLabel("Password").fill(password);
  await page.getByRole("button", { name: "Log in" }).click();
  await until(
    async () => (await page.locator("#conn-status").getAttribute("data-status")) === "connected",
    `${user.name} connected`,
  );
  check((await page.locator("#user-name").textContent()) === user.name, "shows the user name");
}

async function send(user, text, { keyboard = true } = {}) {
  const box = user.page.getByLabel("Message", { exact: true });
  await until(async () => box.isEnabled(), `${user.name}: send box enabled`);
  await box.fill(text);
  if (keyboard) await box.press("Enter");
  else await user.page.getByRole("button", { name: "Send" }).click();
}

async function joinByName(user, room) {
  const input = user.page.getByLabel("Join a room by name");
  await input.fill(room);
  await input.press("Enter");
}

async function selectRoom(user, room) {
  await roomItem(user, room).getByRole("button").click();
}

async function unread(user, room) {
  const badge = roomItem(user, room).locator(".unread");
  return (await badge.count()) ? Number(await badge.getAttribute("data-count")) : 0;
}

async function notices(user) {
  return user.page.locator("#notices").innerText();
}

let bob;
let alice;
let failed = false;
try {
  bob = await openUser("bob", { width: 1280, height: 800 });
  alice = await openUser("alice", { width: 390, height: 844 }); // a phone
  log("pages open: bob on a desktop window, alice on a phone-sized one");

  // -- the page and its headers ---------------------------------------------------------------
  await bob.page.getByLabel("User name").waitFor();
  await shot(bob, "01-login");
  const csp = (await bob.page.request.get(BASE_URL)).headers()["content-security-policy"] ?? "";
  check(csp.includes("frame-ancestors 'none'") && csp.includes("connect-src 'self' ws://"), `CSP: ${csp}`);

  // -- log in (browser mode: HttpOnly cookies, no token in scripts) ------------------------------
  await login(bob, "bob");
  await login(alice, "alice");
  for (const u of [bob, alice]) {
    const cookies = await u.context.cookies();
    const token = cookies.find((c) => c.name === "nats_token");
    check(token && token.httpOnly && token.sameSite === "Strict", `${u.name}: nats_token HttpOnly, SameSite=Strict`);
    const refresh = cookies.find((c) => c.name === "nats_refresh");
    check(refresh && refresh.httpOnly && refresh.path === "/api/auth", `${u.name}: nats_refresh HttpOnly on /api/auth`);
    const seen = await u.page.evaluate(() => document.cookie);
    check(!seen.includes("nats_"), `${u.name}: scripts see no token cookie (document.cookie = "${seen}")`);
  }
  log("both logged in; the tokens are in HttpOnly cookies only");

  // -- both join all1: bob by clicking, alice by typing (keyboard only) ----------------------------
  await bob.page.getByRole("button", { name: "Join all1" }).click();
  await alice.page.getByLabel("Join a room by name").focus();
  await alice.page.keyboard.type("all1");
  await alice.page.keyboard.press("Enter");
  await waitRoomState(bob, "all1", "joined");
  await waitRoomState(alice, "all1", "joined");
  log("both joined all1");

  // -- messages both ways, sender from the subject ------------------------------------------------
  await send(bob, "hello from bob");
  await waitMessage(alice, "all1", "bob", "hello from bob");
  await waitMessage(bob, "all1", "bob", "hello from bob");
  await send(alice, "hi bob, alice here", { keyboard: false });
  await waitMessage(bob, "all1", "alice", "hi bob, alice here");
  log("messages went both ways with the right senders");
  await shot(bob, "02-bob-all1");
  await shot(alice, "03-alice-all1-phone");
  const overflow = await alice.page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
  check(overflow <= 0, `the phone-sized page scrolls sideways by ${overflow}px`);

  // -- refused rooms: a clear message, the other rooms keep working ------------------------------
  await joinByName(bob, "alice1");
  await joinByName(alice, "bob1");
  await waitRoomState(bob, "alice1", "refused");
  await waitRoomState(alice, "bob1", "refused");
  check((await notices(bob)).includes("You may not join alice1"), `bob is told: ${await notices(bob)}`);
  check(
    (await bob.page.locator("#room-state").innerText()).includes("You may not join alice1"),
    "the room view explains the refusal",
  );
  check((await notices(alice)).includes("You may not join bob1"), `alice is told: ${await notices(alice)}`);
  log("bob was refused alice1, alice was refused bob1");
  await shot(bob, "04-bob-refused-alice1");
  await shot(alice, "05-alice-refused-bob1-phone");

  await selectRoom(alice, "all1");
  await send(alice, "all1 still works");
  await waitMessage(bob, "all1", "alice", "all1 still works");
  check((await roomState(bob, "all1")) === "joined", "bob's all1 is still joined");
  check((await unread(bob, "all1")) === 1, `bob sees 1 unread in all1 (got ${await unread(bob, "all1")})`);
  await selectRoom(bob, "all1");
  check((await unread(bob, "all1")) === 0, "opening all1 clears its unread marker");
  log("after the refusals all1 still works both ways; unread markers count and clear");

  // -- bob joins bob1: a reconnect that must keep all1 subscribed ---------------------------------
  await bob.page.getByRole("button", { name: "Join bob1" }).click();
  await waitRoomState(bob, "bob1", "joined");
  await send(alice, "after bob joined bob1");
  await until(async () => (await unread(bob, "all1")) === 1, "bob: unread marker on all1");
  await shot(bob, "06-bob-in-bob1-unread-all1");
  await selectRoom(bob, "all1");
  await waitMessage(bob, "all1", "alice", "after bob joined bob1");
  await send(bob, "bob in all1 and bob1");
  await waitMessage(alice, "all1", "bob", "bob in all1 and bob1");
  log("after joining bob1, all1 still reaches bob");

  // -- exactly once, across every reconnect so far ------------------------------------------------
  for (const u of [bob, alice]) {
    const texts = (await messages(u, "all1")).map((m) => `${m.sender}: ${m.text}`);
    check(new Set(texts).size === texts.length, `${u.name} shows a message twice: ${JSON.stringify(texts)}`);
    check(texts.length === 5, `${u.name} shows ${texts.length} messages in all1, not 5: ${JSON.stringify(texts)}`);
  }
  log("every all1 message is shown exactly once on both pages");

  // -- the access token is refreshed before it expires (short lifetime in the test config) --------
  await until(async () => bob.refreshes > 0 && alice.refreshes > 0, "both pages refreshed their token", 20_000);
  await bob.page.getByRole("button", { name: "Join all2" }).click();
  await waitRoomState(bob, "all2", "joined");
  await selectRoom(bob, "all1");
  await send(alice, "after a token refresh");
  await waitMessage(bob, "all1", "alice", "after a token refresh");
  log(`tokens refreshed (bob ${bob.refreshes}x, alice ${alice.refreshes}x); reconnects still work`);

  // -- bob loses all1 when the permission file changes --------------------------------------------
  const rooms = [
    "[groups.everyone]",
    'members = ["bob", "alice"]',
    "",
    "# all1 is alice's alone now",
    "[rooms.all1]",
    'members = ["alice"]',
    "",
    ...["all2", "all3"].flatMap((r) => [`[rooms.${r}]`, 'members = ["@everyone"]', ""]),
    ...["alice1", "alice2"].flatMap((r) => [`[rooms.${r}]`, 'members = ["alice"]', ""]),
    ...["bob1", "bob2"].flatMap((r) => [`[rooms.${r}]`, 'members = ["bob"]', ""]),
  ].join("\n");
  const tmp = join(PERMISSIONS_DIR, "rooms.toml.tmp");
  await writeFile(tmp, rooms);
  await rename(tmp, join(PERMISSIONS_DIR, "rooms.toml"));
  const changedAt = Date.now();
  log("permission file changed: bob no longer has all1");
  await waitRoomState(bob, "all1", "lost", LOST_WITHIN);
  log(`bob's page shows all1 as lost after ${((Date.now() - changedAt) / 1000).toFixed(1)} s`);
  check((await notices(bob)).includes("You lost access to all1"), `bob is told: ${await notices(bob)}`);
  await selectRoom(bob, "all1");
  await shot(bob, "07-bob-lost-all1");

  // The rooms bob kept still work, and alice keeps all1.
  await waitRoomState(bob, "bob1", "joined", 1000);
  await waitRoomState(bob, "all2", "joined", 1000);
  await selectRoom(bob, "all2");
  await send(bob, "all2 after losing all1");
  await waitMessage(bob, "all2", "bob", "all2 after losing all1");
  await waitRoomState(alice, "all1", "joined", 1000);
  await send(alice, "alice keeps all1");
  await waitMessage(alice, "all1", "alice", "alice keeps all1");
  log("bob's other rooms and alice's all1 keep working");

  // -- a kick: the page reconnects with all its rooms ------------------------------------------------
  const status = () => bob.page.locator("#conn-status");
  const connectsBefore = Number(await status().getAttribute("data-connects"));
  const kicked = await harness("kick bob");
  check(Number(kicked.split(" ")[1]) >= 1, `the harness kicked bob's connection (${kicked})`);
  await until(
    async () =>
      Number(await status().getAttribute("data-connects")) > connectsBefore &&
      (await status().getAttribute("data-status")) === "connected",
    "bob reconnected after the kick",
  );
  await waitRoomState(bob, "bob1", "joined", 1000);
  await waitRoomState(bob, "all2", "joined", 1000);
  check((await roomState(bob, "all1")) === "lost", "all1 stays lost");
  await selectRoom(bob, "bob1");
  await send(bob, "back after a kick");
  await waitMessage(bob, "bob1", "bob", "back after a kick");
  log("after a kick bob's page reconnected with bob1 and all2");

  // -- log out -------------------------------------------------------------------------------------
  await bob.page.getByRole("button", { name: "Log out" }).click();
  await bob.page.getByLabel("User name").waitFor();
  const left = (await bob.context.cookies()).filter((c) => c.name.startsWith("nats_"));
  check(left.length === 0, `logout clears the cookies (left: ${left.map((c) => c.name)})`);
  await bob.page.reload();
  await bob.page.getByLabel("User name").waitFor();
  await shot(bob, "08-bob-logged-out");
  log("bob logged out; a reload shows the login form");

  // -- a revoked session: the page notices (kick, then a refused refresh) and asks to log in ---
  const post = (path, body, token) =>
    fetch(new URL(path, BASE_URL), {
      method: "POST",
      headers: { "content-type": "application/json", ...(token ? { authorization: `Bearer ${token}` } : {}) },
      body: JSON.stringify(body),
    });
  const admin = await (await post("/api/auth/login", { username: "admin", password: "admin" })).json();
  const errorsBefore = alice.errors.length;
  const revoked = await post("/api/auth/revoke", { userId: "alice" }, admin.accessToken);
  check(revoked.ok, `admin revokes alice (${revoked.status})`);
  await alice.page.getByLabel("User name").waitFor({ timeout: LOST_WITHIN });
  const why = await alice.page.locator("#login-error").textContent();
  check(why.includes("session has ended"), `alice is told why: "${why}"`);
  await shot(alice, "09-alice-session-revoked-phone");
  // The refused refresh is a real 401, which Chromium itself logs; nothing else may appear.
  const late = alice.errors.splice(errorsBefore);
  const unexpected = late.filter((e) => !/status of 401/.test(e));
  check(unexpected.length === 0, `alice's console after the revocation:\n  ${unexpected.join("\n  ")}`);
  log(`alice's session was revoked; her page shows the login form ("${why}")`);

  for (const u of [bob, alice]) {
    check(u.errors.length === 0, `${u.name}'s console has errors:\n  ${u.errors.join("\n  ")}`);
  }
  log("no errors in either browser console");
} catch (err) {
  failed = true;
  console.error(`FAILED: ${err instanceof StepError ? err.message : err.stack}`);
  for (const u of [bob, alice].filter(Boolean)) {
    await shot(u, `failure-${u.name}`).catch(() => {});
    const text = await notices(u).catch(() => "?");
    const state = await u.page
      .locator("#joined-rooms li")
      .evaluateAll((lis) => lis.map((li) => `${li.dataset.room}=${li.dataset.state}`))
      .catch(() => "?");
    console.error(`${u.name}: rooms ${JSON.stringify(state)}; notices: ${JSON.stringify(text)}`);
    if (u.errors.length) console.error(`${u.name} console:\n  ${u.errors.join("\n  ")}`);
  }
} finally {
  await browser.close();
}
console.log(failed ? "browser test FAILED" : `browser test passed; screenshots in ${SHOTS}`);
process.exit(failed ? 1 : 0);
