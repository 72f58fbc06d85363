#!/usr/bin/env node
// The `slap` command. Client commands (show, request, instances, …) run from one ES module
// bundled from the TypeScript sources with esbuild, built at the first call and again whenever
// a source is newer, cached in node_modules/.cache/slap/ (no TypeScript compiled at each call:
// `npm run bench` and BENCHMARKS.md, "CLI start"). The services (up, cluster, master, allocator,
// node, demo) run the sources through tsx: they resolve files next to their modules (the
// profile runner, the dashboard's page) and start once. Anything wrong with the bundle — esbuild
// missing, a build error, SLAP_CLI_BUNDLE=0 — falls back on tsx, silently.
import { mkdirSync, readdirSync, renameSync, statSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const ROOT = join(dirname(fileURLToPath(import.meta.url)), "..");
const BUNDLE = join(ROOT, "node_modules", ".cache", "slap", "cli.mjs");
const SERVICES = new Set(["up", "cluster", "master", "allocator", "node", "demo"]);
/** What the bundle is made of: a change to any of them (a source, a manifest, the lock file) builds it again. */
const SOURCES = ["apps", "libs", "services"];

/** The newest modification time (ms) of the sources: every `src` folder's files, every package.json, the lock file. */
function newestSource() {
  let newest = statSync(join(ROOT, "package-lock.json"), { throwIfNoEntry: false })?.mtimeMs ?? 0;
  const walk = (dir) => {
    for (const entry of readdirSync(dir, { withFileTypes: true })) {
      if (entry.isDirectory()) walk(join(dir, entry.name));
      else newest = Math.max(newest, statSync(join(dir, entry.name)).mtimeMs);
    }
  };
  for (const group of SOURCES) {
    for (const pkg of readdirSync(join(ROOT, group), { withFileTypes: true })) {
      if (!pkg.isDirectory()) continue;
      newest = Math.max(newest, statSync(join(ROOT, group, pkg.name, "package.json"), { throwIfNoEntry: false })?.mtimeMs ?? 0);
      const src = join(ROOT, group, pkg.name, "src");
      if (statSync(src, { throwIfNoEntry: false })?.isDirectory()) walk(src);
    }
  }
  return newest;
}

/** The bundle, built (to a temporary file renamed over it: concurrent calls never read half a file) when missing or older than a source. */
async function bundle() {
  const built = statSync(BUNDLE, { throwIfNoEntry: false })?.mtimeMs ?? 0;
  if (built > newestSource()) return BUNDLE;
  const { build } = await import("esbuild");
  mkdirSync(dirname(BUNDLE), { recursive: true });
  const temporary = `${BUNDLE}.${process.pid}.tmp`;
  await build({
    entryPoints: [join(ROOT, "apps", "cli", "src", "main.ts")],
    outfile: temporary,
    bundle: true,
    platform: "node",
    format: "esm",
    target: "node20",
    logLevel: "silent",
    // esbuild is a native binary (the dashboard bundles with it at a master's start).
    external: ["esbuild"],
    // CommonJS dependencies call require(): give the module one.
    banner: { js: 'import { createRequire as __slapRequire } from "node:module"; const require = __slapRequire(import.meta.url);' },
  });
  renameSync(temporary, BUNDLE);
  return BUNDLE;
}

async function fromBundle() {
  if (process.env.SLAP_CLI_BUNDLE === "0" || SERVICES.has(process.argv[2] ?? "")) return undefined;
  try {
    return await import(await bundle());
  } catch {
    return undefined;
  }
}

const cli = await fromBundle();
if (cli !== undefined) {
  await cli.run();
} else {
  const { register } = await import("tsx/esm/api");
  register();
  const { run } = await import("../apps/cli/src/main.ts");
  await run();
}
