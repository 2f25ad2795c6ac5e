// index.d.ts is valid TypeScript and describes the README's example (tsc, strict).

import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { test } from "node:test";

test("index.d.ts type-checks the README example", () => {
  const tsc = new URL("../node_modules/typescript/bin/tsc", import.meta.url).pathname;
  const out = execFileSync(process.execPath, [tsc, "-p", "tsconfig.json"], {
    cwd: new URL("..", import.meta.url).pathname,
    encoding: "utf8",
  });
  assert.equal(out.trim(), "");
});
