/**
 * `npm run bench [-- --quick] [--json] [--runs N] [--only <substring>] [--out <dir>] [--no-warmup]`
 *
 * Starts a private nats-server, runs every scenario of `bench/scenarios/` several times and
 * prints a table (or, with --json, only the JSON report on stdout). The report is written to
 * `bench/results/<YYYY-MM-DD>.json` (quick or filtered runs: `<date>.quick.json`, `<date>.only-<x>.json`).
 * Exit code 0 whatever the figures (a benchmark reports, it does not gate), 1 on a usage error
 * or a crash, 2 when a scenario failed to run.
 */
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { formatTable, runBench, writeReport } from "./harness.js";
import type { Sizes } from "./scenarios/index.js";

const FULL: Sizes = { serial: 3_000, pipelined: 30_000, window: 2_000 };
const QUICK: Sizes = { serial: 300, pipelined: 10_000, window: 1_000 };
const WARMUP_FULL: Sizes = { serial: 300, pipelined: 10_000, window: 2_000 };
const WARMUP_QUICK: Sizes = { serial: 100, pipelined: 5_000, window: 1_000 };

async function main(): Promise<number> {
  const { values } = parseArgs({
    options: {
      quick: { type: "boolean", default: false },
      json: { type: "boolean", default: false },
      runs: { type: "string" },
      only: { type: "string" },
      out: { type: "string" },
      "no-warmup": { type: "boolean", default: false },
      help: { type: "boolean", short: "h", default: false },
    },
    strict: true,
  });
  if (values.help) {
    process.stdout.write("usage: npm run bench -- [--quick] [--json] [--runs N] [--only <substring>] [--out <dir>] [--no-warmup]\n");
    return 0;
  }
  const runs = values.runs === undefined ? (values.quick ? 3 : 5) : Number(values.runs);
  if (!Number.isInteger(runs) || runs < 1) throw new Error(`--runs must be a positive integer, got ${values.runs}`);
  const outDir = values.out ?? join(dirname(fileURLToPath(import.meta.url)), "results");
  const note = (line: string) => process.stderr.write(`bench: ${line}\n`);

  const report = await runBench({
    runs,
    sizes: values.quick ? QUICK : FULL,
    warmup: values["no-warmup"] ? false : values.quick ? WARMUP_QUICK : WARMUP_FULL,
    only: values.only,
    flags: { quick: values.quick, json: values.json, runs, only: values.only ?? null, warmup: !values["no-warmup"] },
    onNote: note,
  });
  const path = await writeReport(report, outDir);
  if (values.json) {
    process.stdout.write(`${JSON.stringify(report, null, 2)}\n`);
  } else {
    process.stdout.write(`${formatTable(report)}\n`);
    note(`results written to ${path}`);
  }
  return report.scenarios.some((s) => s.errors.length > 0) ? 2 : 0;
}

main().then(
  (code) => {
    process.exitCode = code;
  },
  (error: unknown) => {
    process.stderr.write(`bench: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
    process.exitCode = 1;
  },
);
