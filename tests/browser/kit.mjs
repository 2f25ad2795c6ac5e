// The JS client kit in browser mode, in Debian's headless Chromium. Started by
// tests/it/clients.rs with BASE_URL (the service, whose origin the websocket listener allows)
// and CHROMIUM. The kit is bundled (esbuild) from clients/js/src/browser.js and loaded into a
// page of the service's origin (at BASE_URL/kit-test.js, the one URL intercepted): the HttpOnly
// cookies carry the tokens, the page sees none, and the kit connects to the websocket
// listener the service names.

import { createRequire } from "node:module";
import { StepError, check, launch } from "./common.mjs";

const require = createRequire(new URL("../../web/package.json", import.meta.url));
const esbuild = require("esbuild");

const { BASE_URL, ACCESS_TTL_MS } = process.env;
if (!BASE_URL || !ACCESS_TTL_MS) {
  console.error("BASE_URL and ACCESS_TTL_MS must be set (tests/it/clients.rs sets them)");
  process.exit(2);
}
const log = (msg) => console.log(`[kit in chromium] ${msg}`);

const bundle = await esbuild.build({
  entryPoints: [new URL("../../clients/js/src/browser.js", import.meta.url).pathname],
  bundle: true,
  format: "iife",
  globalName: "Kit",
  platform: "browser",
  write: false,
});
const script = bundle.outputFiles[0].text;

const browser = await launch();
// A document the service itself serves (GET /api/config: no CSP of the chat page's), so that
// Chromium sees a page of a loopback address reaching a loopback websocket; the kit's script
// is the one intercepted URL.
async function open(context) {
  const p = await context.newPage();
  p.on("pageerror", (e) => console.log(`page error: ${e.message}`));
  await p.goto(`${BASE_URL}api/config`);
  await p.addScriptTag({ url: "/kit-test.js" });
  return p;
}

async function page() {
  const context = await browser.newContext();
  await context.route(`${BASE_URL}kit-test.js`, (route) =>
    route.fulfill({ status: 200, contentType: "text/javascript", body: script }),
  );
  return open(context);
}

let failed = false;
try {
  const bob = await page();
  const alice = await page();
  const connect = (p, user) =>
    p.evaluate(async (user) => {
      window.heard = [];
      window.c = await Kit.ChatClient.connect({ api: "", username: user, password: user, deviceId: "chromium" });
      window.c.onMessage("all1", (from, text) => window.heard.push(`${from}: ${text}`));
      await window.c.join("all1");
      return { user: window.c.user, token: window.c.api.accessToken, cookies: document.cookie };
    }, user);
  const b = await connect(bob, "bob");
  check(b.user === "bob", `bob is bob (${b.user})`);
  check(b.token === null && !/nats_token|nats_refresh/.test(b.cookies), "the page sees no token");
  await connect(alice, "alice");
  log("bob and alice joined all1 over the websocket, with the cookie");

  const refused = await bob.evaluate(() => window.c.join("alice1").then(() => "joined", (e) => e.code));
  check(refused === "refused", `bob's join of alice1 is refused (${refused})`);

  const hears = async (listener, speaker, text) => {
    await speaker.evaluate((t) => window.c.send("all1", t), text);
    await listener.waitForFunction((t) => window.heard.some((h) => h.endsWith(t)), text, { timeout: 10_000 });
  };
  await hears(bob, alice, "hello from alice");
  await hears(alice, bob, "hello from bob");
  log("they talk both ways; alice1 was refused");

  // Past the access token's lifetime: the cookie was renewed through /api/auth/refresh.
  await bob.waitForTimeout(Number(ACCESS_TTL_MS) + 1000);
  const after = await bob.evaluate(async () => {
    await window.c.join("all2");
    return { refreshes: window.c.refreshes, rooms: window.c.rooms() };
  });
  check(after.refreshes >= 1, `the access cookie was renewed (${after.refreshes})`);
  check(after.rooms.join() === "all1,all2", `rooms after the renewal: ${after.rooms}`);
  await hears(bob, alice, "after the renewal");

  // A page loaded again in the same browser: the session is in the cookies.
  const again = await open(bob.context());
  const reloaded = await again.evaluate(async () => {
    const c = await Kit.ChatClient.connect({ api: "" });
    await c.join("bob1");
    const user = c.user;
    await c.logout();
    return user;
  });
  check(reloaded === "bob", `a new page is bob's without logging in (${reloaded})`);
  const out = await again.evaluate(() => Kit.ChatClient.connect({ api: "" }).then(() => "connected", (e) => e.code));
  check(out === "auth-expired", `after logout the cookies hold no session (${out})`);
  log("a new page reuses the session; after logout it is gone");
} catch (err) {
  failed = true;
  console.log(err instanceof StepError ? `FAILED: ${err.message}` : err);
} finally {
  await browser.close();
}
process.exit(failed ? 1 : 0);
