// Rooms in data in the chat page, in Debian's headless Chromium. Started by
// tests/it/browser.rs with BASE_URL, SCREENSHOT_DIR and CHROMIUM.
// alice creates a room and invites bob; bob's page, already open, offers it without a reload
// (the grants-changed notice) and he joins; they talk both ways; alice removes bob, and bob's
// page says he was removed from the room.

import { join } from "node:path";
import { check, launch, loggedIn, report } from "./common.mjs";

const { BASE_URL, SCREENSHOT_DIR: SHOTS } = process.env;
if (!BASE_URL || !SHOTS) {
  console.error("BASE_URL and SCREENSHOT_DIR must be set (tests/it/browser.rs sets them)");
  process.exit(2);
}
const STEP = 10_000;
const started = Date.now();
const log = (msg) => console.log(`[${((Date.now() - started) / 1000).toFixed(1)}s] ${msg}`);

const browser = await launch();
const users = [];

const login = (name) => loggedIn(browser, users, BASE_URL, name);

const shot = (u, name) => u.page.screenshot({ path: join(SHOTS, `rooms-${name}.png`), fullPage: true });
const joined = (u, room) => u.page.locator(`#joined-rooms li[data-room="${room}"][data-state="joined"]`);

async function say(u, text) {
  const box = u.page.getByLabel("Message", { exact: true });
  await box.fill(text);
  await box.press("Enter");
}

const heard = (u, room, sender, text) =>
  u.page
    .locator(`ol.messages[data-room="${room}"] li.msg[data-sender="${sender}"]:not(.pending)`, { hasText: text })
    .waitFor({ timeout: STEP });

let failed = false;
try {
  const alice = await login("alice");
  const bob = await login("bob");
  log("alice and bob are logged in");

  await alice.page.getByLabel("Create a room").fill("proj");
  await alice.page.getByRole("button", { name: "Create", exact: true }).click();
  await joined(alice, "proj").waitFor({ timeout: STEP });
  await alice.page.locator("#room-manage").waitFor({ state: "visible", timeout: STEP });
  await alice.page.locator('#room-members li[data-user="alice"]', { hasText: "owner" }).waitFor({ timeout: STEP });
  log("alice created proj, joined it, and manages it");

  await alice.page.getByLabel("Invite").fill("bob");
  await alice.page.getByRole("button", { name: "Invite", exact: true }).click();
  await alice.page.locator('#room-members li[data-user="bob"]', { hasText: "readwrite" }).waitFor({ timeout: STEP });
  // bob's page was open all along: the notice brings proj without a reload.
  await bob.page.locator(".notice", { hasText: "You may now join proj" }).waitFor({ timeout: STEP });
  await bob.page.getByRole("button", { name: "Join proj" }).click();
  await joined(bob, "proj").waitFor({ timeout: STEP });
  check(await bob.page.locator("#room-manage").isHidden(), "bob does not manage alice's room");
  await shot(bob, "bob-invited");
  log("bob is told of proj without a reload, and joins it");

  await say(bob, "hello alice");
  await heard(alice, "proj", "bob", "hello alice");
  await say(alice, "welcome bob");
  await heard(bob, "proj", "alice", "welcome bob");
  log("they talk both ways in proj");

  await alice.page.getByRole("button", { name: "Remove bob" }).click();
  await alice.page.locator('#room-members li[data-user="bob"]').waitFor({ state: "detached", timeout: STEP });
  await bob.page.locator("#room-state", { hasText: "removed from this room" }).waitFor({ timeout: STEP });
  await shot(bob, "bob-removed");
  log("alice removes bob: his page says he was removed from proj");

  await alice.page.getByRole("button", { name: "Delete room" }).click();
  await alice.page.locator('#joined-rooms li[data-room="proj"]').waitFor({ state: "detached", timeout: STEP });
  log("alice deletes proj");

  for (const u of users) check(u.errors.length === 0, `${u.name}: ${u.errors.join("; ")}`);
} catch (err) {
  failed = true;
  await report(err, users, shot);
} finally {
  await browser.close();
}
process.exit(failed ? 1 : 0);
