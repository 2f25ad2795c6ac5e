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
