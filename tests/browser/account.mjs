// The account page and the admin console in Debian's headless Chromium. Started by
// tests/it/browser.rs with BASE_URL, PERMISSIONS_DIR, SCREENSHOT_DIR and CHROMIUM.
// bob logs in on two "devices"; on one he opens Account, sees both sessions (this one
// marked) and signs the other out: its page loses its connection and ends up at the login.
// admin opens Console: the live chart fills, bob's connection is listed, a broken
// permission file shows its file:line problem and the problem goes when the file is fixed,
// and a token reset from the console reaches bob.

import { rm, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { check, launch, loggedIn, report } from "./common.mjs";

const { BASE_URL, PERMISSIONS_DIR, SCREENSHOT_DIR: SHOTS } = process.env;
if (!BASE_URL || !PERMISSIONS_DIR || !SHOTS) {
  console.error("BASE_URL, PERMISSIONS_DIR and SCREENSHOT_DIR must be set (tests/it/browser.rs sets them)");
  process.exit(2);
}
const STEP = 10_000;
const started = Date.now();
const log = (msg) => console.log(`[${((Date.now() - started) / 1000).toFixed(1)}s] ${msg}`);

const browser = await launch();
const users = [];

const login = (name, device) => loggedIn(browser, users, BASE_URL, name, `${name}@${device}`);

const shot = (u, name) => u.page.screenshot({ path: join(SHOTS, `account-${name}.png`), fullPage: true });

let failed = false;
try {
  const laptop = await login("bob", "laptop");
  const phone = await login("bob", "phone");
  const tablet = await login("bob", "tablet");
  log("bob is logged in three times");

  // -- Account: both sessions, this one marked; sign the phone out ------------------------
  await laptop.page.getByRole("button", { name: "Account" }).click();
  const count = (n) =>
    laptop.page.waitForFunction((n) => document.querySelectorAll("#account-sessions tr").length === n, n, {
      timeout: STEP,
    });
  await count(3);
  check((await laptop.page.locator('#account-sessions tr[data-current="yes"]').count()) === 1, "one current session");
  const named = await laptop.page.locator('#account-sessions tr[data-current="yes"]').innerText();
  check(/chat-page/.test(named) && /chrome-linux/.test(named), `the page names itself and the browser: ${named}`);
  await shot(laptop, "three-sessions");
  // One row: the phone's (found by its session id through the page's own /api/config user).
  const phoneSession = await phone.page.evaluate(async () => {
    const r = await fetch("/api/auth/sessions");
    return (await r.json()).find((s) => s.current).sessionId;
  });
  await laptop.page.locator(`#account-sessions tr[data-session="${phoneSession}"] button`).click();
  await count(2);
  log("the phone session is signed out from the laptop");
  await phone.page.locator("#login-view").waitFor({ state: "visible", timeout: 20_000 });
  await shot(phone, "phone-signed-out");
  log("the phone page lost its connection and is back at the login");
  await laptop.page.getByRole("button", { name: "Sign out everywhere else" }).click();
  await count(1);
  await tablet.page.locator("#login-view").waitFor({ state: "visible", timeout: 20_000 });
  check(await laptop.page.locator('#account-sessions tr[data-current="yes"]').isVisible(), "this session stays");
  log("signing out everywhere else ends the tablet's session too, and keeps this one");
  await laptop.page.getByRole("button", { name: "Chat" }).click();
  await laptop.page.locator('#conn-status[data-status="connected"]').waitFor({ timeout: STEP });
  check(!(await laptop.page.getByRole("button", { name: "Console" }).isVisible()), "no console for bob");

  // -- Console --------------------------------------------------------------------------------
  const admin = await login("admin", "desk");
  await admin.page.getByRole("button", { name: "Console" }).click();
  await admin.page.waitForFunction(() => Number(document.getElementById("console-chart").dataset.points) >= 3, null, {
    timeout: STEP,
  });
  check((await admin.page.locator("#console-chart canvas").count()) >= 1, "the chart draws on a canvas");
  await admin.page.locator('#console-connections tr[data-user="bob"]').first().waitFor({ timeout: STEP });
  log("the console charts authorizations and lists bob's live connection");

  await writeFile(join(PERMISSIONS_DIR, "broken.toml"), '[rooms.all1]\nmembers = ["nobody"]\n');
  await admin.page.locator("#console-errors li", { hasText: "broken.toml:2:" }).waitFor({ timeout: STEP });
  await shot(admin, "console-broken-file");
  await rm(join(PERMISSIONS_DIR, "broken.toml"));
  await admin.page.locator("#console-errors").waitFor({ state: "hidden", timeout: STEP });
  log("a broken permission file shows its file:line problem until it is fixed");

  await admin.page.getByLabel("Make re-authorize every connection of").fill("bob");
  await admin.page.getByRole("button", { name: "Token reset" }).click();
  // bob's live connections (the laptop's; a reconnect may briefly count twice).
  await admin.page.locator("#console-reset .result", { hasText: /bob: [1-9]\d* connection\(s\)/ }).waitFor({ timeout: STEP });
  await shot(admin, "console");
  log("a token reset from the console reaches bob's connection");

  await admin.page.getByLabel("What would this user get").fill("bob");
  await admin.page.getByLabel("in these rooms").fill("all1;alice1");
  await admin.page.getByRole("button", { name: "Explain" }).click();
  await admin.page
    .locator('#console-explained tr[data-room="all1"][data-reason="granted"]', { hasText: /rooms\.toml:\d+: \[rooms\.all1\]/ })
    .waitFor({ timeout: STEP });
  await admin.page.locator('#console-explained tr[data-room="alice1"][data-reason="no-grant"]').waitFor({ timeout: STEP });
  await shot(admin, "console-explain");
  log("the console explains bob's rooms: all1 with its file and line, alice1 refused with its reason");

  // Rooms in data: made through the API, managed from the console.
  const made = await admin.page.evaluate(async () => {
    const post = (path, body) =>
      fetch(path, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(body) });
    const room = await post("/api/rooms", { name: "ops-room", join: "invite" });
    const member = await post("/api/rooms/ops-room/members", { userId: "bob", access: "read" });
    return [room.status, member.status];
  });
  check(made[0] === 201 && made[1] === 200, `room made and bob added: ${made}`);
  // The list is polled every ten seconds; the button asks now.
  await admin.page.getByRole("button", { name: "Refresh rooms" }).click();
  const roomRow = admin.page.locator('#console-rooms tr[data-room="ops-room"]');
  await roomRow.locator('li[data-user="bob"]', { hasText: "bob (read)" }).waitFor({ timeout: STEP });
  check((await roomRow.locator("td").nth(1).textContent()) === "admin", "the console names the room's owner");
  await shot(admin, "console-rooms");
  await admin.page.getByRole("button", { name: "Remove bob from ops-room" }).click();
  await roomRow.locator('li[data-user="bob"]').waitFor({ state: "detached", timeout: STEP });
  log("the console lists rooms in data with their members, and an admin removes bob from one");
  await admin.page.getByRole("button", { name: "Delete room ops-room" }).click();
  await roomRow.waitFor({ state: "detached", timeout: STEP });
  log("and deletes the room");

  for (const u of users) check(u.errors.length === 0, `${u.name}: ${u.errors.join("; ")}`);
} catch (err) {
  failed = true;
  await report(err, users, shot);
} finally {
  await browser.close();
}
process.exit(failed ? 1 : 0);
