import { execFile } from "node:child_process";
import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { cpus, arch, loadavg, platform, release, tmpdir, totalmem } from "node:os";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { promisify } from "node:util";
import { setFlagsFromString } from "node:v8";
import { runInNewContext } from "node:vm";
import { startNatsServer } from "@slap/testkit";
import { pino } from "pino";
import { scenarios as registry, type FigureSpec, type Measurements, type Scenario, type ScenarioContext, type Sizes, type Target } from "./scenarios/index.js";
import { summarize } from "./stats.js";

/** Pause before each timed phase (see `ScenarioContext.settle`). */
const SETTLE_MS = 50;

export interface BenchOptions {
  /** Measured runs per scenario. */
  runs: number;
  sizes: Sizes;
  /** Sizes of the untimed warm-up run of every scenario (JIT, connections, page cache); false for none. */
  warmup: Sizes | false;
  /** Keep only scenarios whose name contains this (case-insensitive); the scenarios they reference are run too. */
  only?: string | undefined;
  /** Scenarios to choose from (default: the registry). */
  scenarios?: readonly Scenario[];
  /** Recorded as-is in the report (the command-line flags). */
  flags?: Record<string, unknown>;
  /** Progress lines (default: none). */
  onNote?: (line: string) => void;
}

export interface MachineInfo {
  cpus: number;
  cpuModel: string;
  totalMemoryMb: number;
  platform: string;
  release: string;
  arch: string;
  node: string;
  natsServer: string;
  /** 1, 5 and 15-minute load averages when the bench started and ended: other work on the machine skews figures. */
  loadAverage: { start: number[]; end: number[] };
}

export interface TargetResult {
  kind: Target["kind"];
  value: number;
  /** e.g. "≥ 50,000" or "ratio ≥ 0.80". */
  description: string;
}

export interface ReferenceResult {
  scenario: string;
  figure: string;
  median: number | null;
  /** This figure's median / the reference median. */
  ratio: number | null;
}

export interface FigureResult {
  key: string;
  label: string;
  unit: string;
  higherIsBetter: boolean;
  samples: number[];
  median: number | null;
  min: number | null;
  max: number | null;
  target: TargetResult | null;
  reference: ReferenceResult | null;
  /** Whether the median meets the target; null without a target. False when it could not be measured. */
  pass: boolean | null;
}

export interface ScenarioResult {
  name: string;
  title: string;
  /** Not selected by `--only`, run because a selected scenario references it. */
  asReference: boolean;
  errors: string[];
  figures: FigureResult[];
}

export interface BenchReport {
  format: "slap-bench/1";
  date: string;
  machine: MachineInfo;
  flags: Record<string, unknown>;
  runs: number;
  sizes: Sizes;
  warmup: Sizes | false;
  durationMs: number;
  scenarios: ScenarioResult[];
  /** Every target met and no scenario failed. */
  passed: boolean;
}

/** Picks the scenarios matching `only`, plus those their figures reference, in registry order. */
export function selectScenarios(all: readonly Scenario[], only: string | undefined): { selected: Scenario[]; asReference: Set<string> } {
  if (only === undefined || only === "") return { selected: [...all], asReference: new Set() };
  const needle = only.toLowerCase();
  const chosen = new Set(all.filter((s) => s.name.toLowerCase().includes(needle)).map((s) => s.name));
  const asReference = new Set<string>();
  for (const s of all.filter((x) => chosen.has(x.name))) {
    for (const f of s.figures) {
      if (f.reference !== undefined && !chosen.has(f.reference.scenario)) asReference.add(f.reference.scenario);
    }
  }
  return { selected: all.filter((s) => chosen.has(s.name) || asReference.has(s.name)), asReference };
}

/**
 * Runs the selected scenarios against a private nats-server: one untimed warm-up each, then
 * `runs` rounds, each round running every scenario once (interleaved, so drift in the machine
 * hits adapter and reference alike). A scenario run that throws is recorded, not fatal.
 */
export async function runBench(options: BenchOptions): Promise<BenchReport> {
  const started = Date.now();
  const note = options.onNote ?? (() => {});
  const { selected, asReference } = selectScenarios(options.scenarios ?? registry, options.only);
  if (selected.length === 0) throw new Error(`no scenario matches --only ${options.only ?? ""}`);

  const samples = new Map<string, Map<string, number[]>>(selected.map((s) => [s.name, new Map(s.figures.map((f) => [f.key, []]))]));
  const errors = new Map<string, string[]>(selected.map((s) => [s.name, []]));
  // BENCH_LOG_LEVEL=debug shows what the services log during a run (to stderr); silent by default.
  const logger = pino({ level: process.env.BENCH_LOG_LEVEL ?? "silent" }, pino.destination(2));
  const gc = exposeGc();
  let counter = 0;
  const unique = (prefix: string): string => `${prefix}${process.pid}n${++counter}`;

  const machine = await machineInfo();
  const server = await startNatsServer();
  const shared = new Map<string, { value: Promise<unknown>; dispose: (value: never) => Promise<void> }>();
  try {
    const runOnce = async (scenario: Scenario, run: number, sizes: Sizes): Promise<Measurements> => {
      const dirs: string[] = [];
      const ctx: ScenarioContext = {
        natsUrl: server.url,
        sizes,
        logger,
        run,
        unique,
        note,
        settle: async () => {
          gc();
          await sleep(SETTLE_MS);
        },
        tempDir: async () => {
          const dir = await mkdtemp(join(tmpdir(), "slap-bench-"));
          dirs.push(dir);
          return dir;
        },
        shared: <T>(key: string, make: () => Promise<T>, dispose: (value: T) => Promise<void>): Promise<T> => {
          let entry = shared.get(key);
          if (entry === undefined) {
            entry = { value: make(), dispose };
            shared.set(key, entry);
          }
          return entry.value as Promise<T>;
        },
      };
      try {
        return await scenario.run(ctx);
      } finally {
        for (const dir of dirs) await rm(dir, { recursive: true, force: true });
      }
    };

    if (options.warmup !== false) {
      for (const scenario of selected) {
        gc();
        note(`warm-up ${scenario.name}`);
        try {
          await runOnce(scenario, -1, options.warmup);
        } catch (error) {
          errors.get(scenario.name)!.push(`warm-up: ${describe(error)}`);
        }
      }
    }
    for (let run = 0; run < options.runs; run++) {
      for (const scenario of selected) {
        gc();
        const t0 = Date.now();
        try {
          const measured = await runOnce(scenario, run, options.sizes);
          const bucket = samples.get(scenario.name)!;
          for (const figure of scenario.figures) {
            const value = measured[figure.key];
            if (value === undefined || !Number.isFinite(value)) {
              errors.get(scenario.name)!.push(`run ${run + 1}: figure ${figure.key} missing or not finite (${String(value)})`);
            } else {
              bucket.get(figure.key)!.push(value);
            }
          }
          note(`run ${run + 1}/${options.runs} ${scenario.name} (${((Date.now() - t0) / 1000).toFixed(1)} s)`);
        } catch (error) {
          errors.get(scenario.name)!.push(`run ${run + 1}: ${describe(error)}`);
          note(`run ${run + 1}/${options.runs} ${scenario.name} FAILED: ${describe(error)}`);
        }
      }
    }
  } finally {
    for (const [key, { value, dispose }] of shared) {
      await value.then((v) => dispose(v as never)).catch((error: unknown) => note(`shared ${key} not disposed: ${describe(error)}`));
    }
    await server.dispose();
  }

  const medianOf = (scenario: string, figure: string): number | null => {
    const s = samples.get(scenario)?.get(figure);
    return s === undefined || s.length === 0 ? null : summarize(s).median;
  };
  const results: ScenarioResult[] = selected.map((scenario) => ({
    name: scenario.name,
    title: scenario.title,
    asReference: asReference.has(scenario.name),
    errors: errors.get(scenario.name)!,
    figures: scenario.figures.map((figure) => figureResult(figure, samples.get(scenario.name)!.get(figure.key)!, medianOf)),
  }));
  machine.loadAverage.end = loadavg().map(round2);
  return {
    format: "slap-bench/1",
    date: new Date(started).toISOString(),
    machine,
    flags: options.flags ?? {},
    runs: options.runs,
    sizes: options.sizes,
    warmup: options.warmup,
    durationMs: Date.now() - started,
    scenarios: results,
    passed: results.every((s) => s.errors.length === 0 && s.figures.every((f) => f.pass !== false)),
  };
}

function figureResult(figure: FigureSpec, values: number[], medianOf: (scenario: string, figure: string) => number | null): FigureResult {
  const summary = values.length > 0 ? summarize(values) : null;
  const median = summary?.median ?? null;
  const higherIsBetter = figure.higherIsBetter ?? true;
  let reference: ReferenceResult | null = null;
  if (figure.reference !== undefined) {
    const refMedian = medianOf(figure.reference.scenario, figure.reference.figure);
    reference = {
      scenario: figure.reference.scenario,
      figure: figure.reference.figure,
      median: refMedian,
      ratio: median !== null && refMedian !== null && refMedian > 0 ? median / refMedian : null,
    };
  }
  let target: TargetResult | null = null;
  let pass: boolean | null = null;
  if (figure.target !== undefined) {
    const t = figure.target;
    switch (t.kind) {
      case "atLeast":
        target = { ...t, description: `≥ ${formatNumber(t.value)}` };
        pass = median !== null && median >= t.value;
        break;
      case "atMost":
        target = { ...t, description: `≤ ${formatNumber(t.value)}` };
        pass = median !== null && median <= t.value;
        break;
      case "ratioAtLeast":
        target = { ...t, description: `ratio ≥ ${t.value.toFixed(2)}` };
        pass = reference !== null && reference.ratio !== null && reference.ratio >= t.value;
        break;
    }
  }
  return {
    key: figure.key,
    label: figure.label,
    unit: figure.unit,
    higherIsBetter,
    samples: values,
    median,
    min: summary?.min ?? null,
    max: summary?.max ?? null,
    target,
    reference,
    pass,
  };
}

/** `<YYYY-MM-DD>.json` for a full run of everything; quick and filtered runs get a suffix so they never replace it. */
export function defaultFileName(report: Pick<BenchReport, "date" | "flags">): string {
  const d = new Date(report.date);
  const day = `${d.getFullYear()}-${String(d.getMonth() + 1).padStart(2, "0")}-${String(d.getDate()).padStart(2, "0")}`;
  const quick = report.flags.quick === true ? ".quick" : "";
  const only = typeof report.flags.only === "string" && report.flags.only !== "" ? `.only-${report.flags.only.replace(/[^A-Za-z0-9_-]/g, "_")}` : "";
  return `${day}${quick}${only}.json`;
}

/** Writes the report as JSON into `dir` (created when missing); answers the file path. */
export async function writeReport(report: BenchReport, dir: string, fileName = defaultFileName(report)): Promise<string> {
  await mkdir(dir, { recursive: true });
  const path = join(dir, fileName);
  await writeFile(path, `${JSON.stringify(report, null, 2)}\n`);
  return path;
}

export async function machineInfo(): Promise<MachineInfo> {
  const list = cpus();
  return {
    cpus: list.length,
    cpuModel: list[0]?.model.trim() ?? "unknown",
    totalMemoryMb: Math.round(totalmem() / 2 ** 20),
    platform: platform(),
    release: release(),
    arch: arch(),
    node: process.version,
    natsServer: await natsServerVersion(),
    loadAverage: { start: loadavg().map(round2), end: [] },
  };
}

async function natsServerVersion(): Promise<string> {
  const binary = process.env.NATS_SERVER_BIN ?? "nats-server";
  try {
    const { stdout } = await promisify(execFile)(binary, ["--version"], { timeout: 10_000 });
    return stdout.trim();
  } catch (error) {
    return `unknown (${describe(error)})`;
  }
}

/** A function that runs a full garbage collection between runs (a no-op if V8 refuses). */
function exposeGc(): () => void {
  try {
    setFlagsFromString("--expose-gc");
    const gc: unknown = runInNewContext("gc");
    if (typeof gc === "function") return () => void (gc as () => void)();
  } catch {
    // fall through
  }
  return () => {};
}

const round2 = (n: number): number => Math.round(n * 100) / 100;

function describe(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

export function formatNumber(value: number | null): string {
  if (value === null || !Number.isFinite(value)) return "—";
  const abs = Math.abs(value);
  if (abs >= 100) return Math.round(value).toLocaleString("en-US");
  if (abs >= 10) return value.toFixed(1);
  return value.toPrecision(3);
}

/** The report as a text table: scenario, figure, median, min–max, unit, target, reference (raw figure and ratio), result. */
export function formatTable(report: BenchReport): string {
  const header = ["scenario", "figure", "median", "min–max", "unit", "target", "reference (ratio)", "result"];
  const rows: string[][] = [];
  for (const s of report.scenarios) {
    for (const f of s.figures) {
      const ref =
        f.reference === null
          ? ""
          : `${formatNumber(f.reference.median)} ${f.reference.figure} (${f.reference.ratio === null ? "—" : f.reference.ratio.toFixed(2)})`;
      rows.push([
        s.name,
        f.label,
        formatNumber(f.median),
        `${formatNumber(f.min)}–${formatNumber(f.max)}`,
        f.unit,
        f.target?.description ?? "",
        ref,
        f.pass === null ? "" : f.pass ? "pass" : "FAIL",
      ]);
    }
  }
  const numeric = new Set([2, 3]);
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const line = (cells: string[]) => cells.map((c, i) => (numeric.has(i) ? c.padStart(widths[i]!) : c.padEnd(widths[i]!))).join("  ").trimEnd();
  const out = [line(header), line(widths.map((w) => "-".repeat(w))), ...rows.map(line)];
  const m = report.machine;
  out.push(
    "",
    `${report.runs} runs (median shown); sizes: ${report.sizes.serial} one-at-a-time, ${report.sizes.pipelined} pipelined, window ${report.sizes.window}` +
      `; ${m.cpus}× ${m.cpuModel}, node ${m.node}, ${m.natsServer}; load ${m.loadAverage.start[0] ?? "?"} → ${m.loadAverage.end[0] ?? "?"}` +
      `; ${(report.durationMs / 1000).toFixed(1)} s`,
  );
  for (const s of report.scenarios) for (const e of s.errors) out.push(`ERROR ${s.name}: ${e}`);
  out.push(report.passed ? "all targets met" : "some targets missed (or a scenario failed)");
  return out.join("\n");
}
