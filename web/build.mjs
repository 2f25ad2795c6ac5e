// Build the chat page into web/dist, which is committed (so `cargo build` needs no npm) and
// embedded into the binary by src/http/web.rs.
//
//   npm ci && npm run build     rebuild web/dist from web/src
//   npm run check               rebuild in memory; exit 1 if web/dist is out of date
//
// esbuild bundles src/main.js, the client kit it runs on (clients/js/src) and the pinned
// @nats-io packages into dist/app.js, the only built files with app.css, the styles bundled
// packages bring (index.html, style.css and favicon.svg are embedded from web/src as they are).
// The kit's own imports of @nats-io packages resolve here, in web/node_modules, so this
// package's lock decides what the page bundles (clients/js/node_modules is never needed).
// The output depends only on the sources and the locked versions.
import { readFile, writeFile, mkdir, readdir } from "node:fs/promises";
import { basename, dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import * as esbuild from "esbuild";

const root = dirname(fileURLToPath(import.meta.url));
const src = join(root, "src");
const dist = join(root, "dist");
const kit = join(root, "..", "clients", "js", "src");

/** Bare imports from the kit's sources resolve from web/node_modules. */
const kitDepsFromWeb = {
  name: "kit-deps-from-web",
  setup(build) {
    build.onResolve({ filter: /^[@a-z]/ }, (args) =>
      args.resolveDir.startsWith(kit) ? build.resolve(args.path, { kind: args.kind, resolveDir: root }) : undefined,
    );
  },
};

/** "name version (license)" of every npm package in the bundle, for the banner. */
async function bundledPackages(metafile) {
  const names = new Set();
  for (const input of Object.keys(metafile.inputs)) {
    const m = input.match(/node_modules\/((?:@[^/]+\/)?[^/]+)\//);
    if (m) names.add(m[1]);
  }
  const out = [];
  for (const name of [...names].sort()) {
    const pkg = JSON.parse(await readFile(join(root, "node_modules", name, "package.json"), "utf8"));
    out.push(`${name} ${pkg.version} (${pkg.license})`);
  }
  return out;
}

async function build() {
  const result = await esbuild.build({
    entryPoints: [join(src, "main.js")],
    bundle: true,
    format: "esm",
    platform: "browser",
    target: ["es2022"],
    minify: true,
    legalComments: "eof",
    charset: "utf8",
    write: false,
    outfile: join(dist, "app.js"),
    logLevel: "warning",
    metafile: true,
    plugins: [kitDepsFromWeb],
  });
  const banner =
    "/*! nats-callout chat page, built by web/build.mjs (npm run build). Bundled: " +
    (await bundledPackages(result.metafile)).join(", ") +
    " */\n";
  // app.js, and app.css for the styles bundled packages bring (the chart's).
  const files = new Map();
  for (const f of result.outputFiles) {
    const name = basename(f.path);
    const head = name.endsWith(".js") ? banner : "";
    files.set(name, Buffer.concat([Buffer.from(head), Buffer.from(f.contents)]));
  }
  return files;
}

const files = await build();
if (process.argv.includes("--check")) {
  const stale = [];
  for (const [name, content] of files) {
    const current = await readFile(join(dist, name)).catch(() => null);
    if (!current || !current.equals(content)) stale.push(name);
  }
  const extra = (await readdir(dist).catch(() => [])).filter((n) => !files.has(n));
  if (stale.length || extra.length) {
    console.error(
      `web/dist is out of date (${[...stale, ...extra.map((n) => `${n} (extra)`)].join(", ")}); ` +
        "run `npm ci && npm run build` in web/ and commit web/dist",
    );
    process.exit(1);
  }
  console.log(`web/dist is up to date (${[...files.keys()].join(", ")})`);
} else {
  await mkdir(dist, { recursive: true });
  for (const [name, content] of files) await writeFile(join(dist, name), content);
  console.log(`built web/dist: ${[...files].map(([n, c]) => `${n} ${c.length} B`).join(", ")}`);
}
