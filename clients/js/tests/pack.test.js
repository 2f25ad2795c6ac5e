// `npm pack` ships what a user needs and nothing else (no tests, no node_modules, no config).

import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { test } from "node:test";

test("npm pack --dry-run lists only the kit's files", () => {
  const out = execFileSync("npm", ["pack", "--dry-run", "--json", "--ignore-scripts"], {
    cwd: new URL("..", import.meta.url).pathname,
    encoding: "utf8",
  });
  const [pack] = JSON.parse(out);
  const files = pack.files.map((f) => f.path).sort();
  assert.deepEqual(files, [
    "README.md",
    "index.d.ts",
    "package.json",
    "src/api.js",
    "src/browser.js",
    "src/client.js",
    "src/errors.js",
    "src/node.js",
  ]);
  assert.equal(pack.name, "nats-callout-client");
});
