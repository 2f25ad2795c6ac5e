// "Log in with corp" end to end in Debian's headless Chromium: the chat page, the real
// OpenID provider's own login form (tests/oidc/provider.mjs), back to the page with our
// own session, chatting in a room the provider's group grants, logging out of both, and a
// provider user the chat does not know. Started by tests/it/browser.rs with:
//   BASE_URL        the page, e.g. http://127.0.0.1:PORT/
//   ISSUER          the provider
//   SCREENSHOT_DIR  where the screenshots go
//   CHROMIUM        the browser (default /usr/bin/chromium)
// Exit status 0 = every step passed.

import { join } from "node:path";

import { StepError, check, launch } from "./common.mjs";

const { BASE_URL, ISSUER, SCREENSHOT_DIR: SHOTS } = process.env;
if (!BASE_URL || !ISSUER || !SHOTS) {
  console.error("BASE_URL, ISSUER and SCREENSHOT_DIR must be set (tests/it/browser.rs sets them)");
  process.exit(2);
}
const STEP = 10_000;
const started = Date.now();
const log = (msg) => console.log(`[${((Date.now() - started) / 1000).toFixed(1)}s] ${msg}`);


const browser = await launch();

async function open(name) {
  const context = await browser.newContext({ viewport: { width: 1100, height: 760 } });
  const page = await context.newPage();
  const user = { name, context, page, errors: [] };
  page.on("pageerror", (e) => user.errors.push(`page error: ${e.message}`));
  await page.goto(BASE_URL);
  return user;
}

const shot = (user, name) => user.page.screenshot({ path: join(SHOTS, `oidc-${name}.png`), fullPage: true });

/** Click "Log in with corp" and sign in on the provider's own form. */
async function providerLogin(user) {
  const { page } = user;
  const button = page.getByRole("link", { name: "Log in with corp" });
  await button.waitFor({ timeout: STEP });
  await button.click();
  await page.waitForURL((u) => u.href.startsWith(ISSUER), { timeout: STEP });
  await page.locator('input[name="login"]').fill(user.name);
  await page.locator('input[name="password"]').fill("any password: the provider's dev form accepts it");
  await shot(user, `${user.name}-provider-form`);
  await page.locator('button[type="submit"]').click();
  await page.waitForURL((u) => u.href.startsWith(BASE_URL), { timeout: STEP });
}

let failed = false;
let carol;
let nobody;
try {
  carol = await open("carol");
  await providerLogin(carol);
  const { page } = carol;
  await page.locator('#conn-status[data-status="connected"]').waitFor({ timeout: STEP });
  check((await page.locator("#user-name").textContent()) === "carol", "shows carol");
  log("carol logged in through the provider and is connected");

  // Our own session in HttpOnly cookies, the login's pending cookie gone. (Cookies do not
  // tell ports apart: the provider's own, on 127.0.0.1 too, are left out by name.)
  const ours = (await carol.context.cookies()).filter((c) => c.name.startsWith("nats_"));
  const names = ours.map((c) => c.name).sort();
  check(names.join(",") === "nats_refresh,nats_token", `our cookies: ${names}`);
  check(ours.every((c) => c.httpOnly), "HttpOnly cookies");
  check(!(await page.evaluate(() => document.cookie)).includes("nats_"), "scripts see no token");
  check(new URL(page.url()).search === "", `a clean address after the callback: ${page.url()}`);

  // The provider's group "staff" gives staff1 and nothing else.
  await page.getByRole("button", { name: "Join staff1" }).waitFor({ timeout: STEP });
  check((await page.getByRole("button", { name: "Join all1" }).count()) === 0, "all1 is not offered");
  await page.getByRole("button", { name: "Join staff1" }).click();
  await page.locator('#joined-rooms li[data-room="staff1"][data-state="joined"]').waitFor({ timeout: STEP });
  const box = page.getByLabel("Message", { exact: true });
  await box.fill("hello from the provider");
  await box.press("Enter");
  await page
    .locator('ol.messages[data-room="staff1"] li.msg:not(.pending)', { hasText: "hello from the provider" })
    .waitFor({ timeout: STEP });
  await shot(carol, "carol-chatting");
  log("carol joined staff1 and her message came back");

  // Logging out ends our session and then the provider's (its end-session page).
  await page.locator("#logout").click();
  await page.waitForURL((u) => u.href.startsWith(ISSUER), { timeout: STEP });
  await page.locator('button[name="logout"]').click();
  await page.waitForURL((u) => u.href.startsWith(BASE_URL), { timeout: STEP });
  await page.getByRole("link", { name: "Log in with corp" }).waitFor({ timeout: STEP });
  const after = (await carol.context.cookies()).filter((c) => c.name.startsWith("nats_"));
  check(after.length === 0, `our cookies are gone: ${after.map((c) => c.name)}`);
  log("carol logged out of the chat and of the provider");

  // A provider user the chat does not know gets a clear message, no session.
  nobody = await open("nobody");
  await providerLogin(nobody);
  await nobody.page.locator("#login-error", { hasText: "no access" }).waitFor({ timeout: STEP });
  check((await nobody.context.cookies()).every((c) => !c.name.startsWith("nats_")), "no session");
  await shot(nobody, "unknown-user");
  log("an unknown provider user is told so and gets no session");

  for (const u of [carol, nobody]) check(u.errors.length === 0, `${u.name}: ${u.errors.join("; ")}`);
} catch (err) {
  failed = true;
  console.error(`FAILED: ${err instanceof StepError ? err.message : err.stack}`);
  for (const u of [carol, nobody].filter(Boolean)) {
    await shot(u, `failure-${u.name}`).catch(() => {});
    console.error(`${u.name} at ${u.page.url()}; errors: ${u.errors.join("; ")}`);
  }
} finally {
  await browser.close();
}
process.exit(failed ? 1 : 0);
