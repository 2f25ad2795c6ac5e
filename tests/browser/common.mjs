// What the browser scripts share: Debian's Chromium launched headless the way this machine
// needs it (no background networking: the network is closed), and failed steps.

import { createRequire } from "node:module";

const require = createRequire(new URL("../../web/package.json", import.meta.url));
const { chromium } = require("playwright-core");

/** A failed step: its message is the whole report. */
export class StepError extends Error {}

export function check(cond, what) {
  if (!cond) throw new StepError(what);
}

/** Headless Chromium (`CHROMIUM`, default /usr/bin/chromium), no outside connections. */
export function launch() {
  return chromium.launch({
    executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
    headless: true,
    args: [
      "--headless",
      "--no-sandbox",
      "--disable-gpu",
      "--disable-background-networking",
      "--no-first-run",
      "--disable-quic",
      "--disable-component-update",
      "--disable-sync",
    ],
  });
}

/**
 * `name` logged in with the password `name` (the demo's) on the page at `base`, in a browser
 * context of their own (own cookies), connected; page errors are collected in `errors`.
 * The user is pushed onto `users` (for `report`).
 */
export async function loggedIn(browser, users, base, name, label = name) {
  const context = await browser.newContext({ viewport: { width: 1200, height: 900 } });
  const page = await context.newPage();
  const u = { name: label, page, errors: [] };
  page.on("pageerror", (e) => u.errors.push(`page error: ${e.message}`));
  users.push(u);
  await page.goto(base);
  await page.getByLabel("User name").fill(name);
  await page.getByLabel("Password").fill(name);
  await page.getByRole("button", { name: "Log in" }).click();
  await page.locator('#conn-status[data-status="connected"]').waitFor({ timeout: 10_000 });
  return u;
}

/** A failed script's report: the step, and each user's screenshot (`shot`), page and errors. */
export async function report(err, users, shot) {
  console.error(`FAILED: ${err instanceof StepError ? err.message : err.stack}`);
  for (const u of users) {
    await shot(u, `failure-${u.name}`).catch(() => {});
    console.error(`${u.name} at ${u.page.url()}; errors: ${u.errors.join("; ")}`);
  }
}
