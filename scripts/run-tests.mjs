#!/usr/bin/env node
// Finds every *.test.ts under libs/, services/, apps/, tests/, bench/ and examples/ and runs them with node's test runner
// (Node 20 has no glob support in --test). Usage: node scripts/run-tests.mjs [--unit|--int] [filter...]
import { spawnSync } from "node:child_process";
import { readdirSync } from "node:fs";
import { join } from "node:path";

const roots = ["libs", "services", "apps", "tests", "bench", "examples"];
const args = process.argv.slice(2);
const only = args.includes("--unit") ? "unit" : args.includes("--int") ? "int" : "all";
const filters = args.filter((a) => !a.startsWith("--"));

/** @param {string} dir @returns {string[]} */
function walk(dir) {
  let out = [];
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    if (entry.name === "node_modules" || entry.name.startsWith(".")) continue;
    const path = join(dir, entry.name);
    if (entry.isDirectory()) out = out.concat(walk(path));
    else if (entry.name.endsWith(".test.ts")) out.push(path);
  }
  return out;
}

const files = roots
  .flatMap((root) => walk(root))
  .filter((f) => only === "all" || (only === "int") === f.endsWith(".int.test.ts"))
  .filter((f) => filters.length === 0 || filters.some((x) => f.includes(x)))
  .sort();
if (files.length === 0) {
  console.error("run-tests: no test file matched");
  process.exit(1);
}
const result = spawnSync(
  process.execPath,
  ["--import", "tsx", "--test", "--test-concurrency=2", "--test-reporter=spec", ...files],
  { stdio: "inherit" },
);
process.exit(result.status ?? 1);
