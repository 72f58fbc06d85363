import type { Logger } from "pino";

/**
 * A benchmark scenario: one area (a store, a projection, an allocator…) measured by one
 * `run`. A run answers several figures at once (e.g. serial appends, pipelined appends and a
 * replay of what was appended), each a number in its figure's unit. The runner calls `run`
 * `runs` times (interleaved with the other scenarios, after one untimed warm-up at a small
 * size) and summarizes each figure's samples.
 *
 * To add a scenario: write a module in `bench/scenarios/` exporting a `Scenario` (or several)
 * and add it to the list in `bench/scenarios/index.ts`.
 */
export interface Scenario {
  /** Unique, stable, used by `--only` and in the results file: `area-thing`, lower case. */
  readonly name: string;
  /** One line shown in the table header. */
  readonly title: string;
  /** The figures every run answers (same keys as the object `run` resolves to). */
  readonly figures: readonly FigureSpec[];
  /** One measured run. Must create what it needs fresh (streams, folders) and release it all. */
  run(ctx: ScenarioContext): Promise<Measurements>;
}

export interface FigureSpec {
  /** Key in `Measurements`, unique within the scenario. */
  readonly key: string;
  /** What is measured, e.g. "append one at a time". */
  readonly label: string;
  /** e.g. "msgs/s", "events/s", "ms". */
  readonly unit: string;
  /** Default true (throughputs). False for latencies and durations. */
  readonly higherIsBetter?: boolean;
  readonly target?: Target;
  /** A figure of another scenario measured in the same bench run, shown beside this one (ratio this/reference). */
  readonly reference?: FigureRef;
}

export interface FigureRef {
  readonly scenario: string;
  readonly figure: string;
}

/**
 * A figure's goal, checked against its median:
 * - `atLeast` / `atMost`: an absolute bound in the figure's unit;
 * - `ratioAtLeast`: median / reference median must be at least `value` (needs `reference`).
 */
export type Target =
  | { readonly kind: "atLeast"; readonly value: number }
  | { readonly kind: "atMost"; readonly value: number }
  | { readonly kind: "ratioAtLeast"; readonly value: number };

/** Figure key → measured value for one run. */
export type Measurements = Record<string, number>;

/** Sizes of one run; scenarios scale their work from these. */
export interface Sizes {
  /** Appends done one at a time (await each). */
  serial: number;
  /** Appends done pipelined. */
  pipelined: number;
  /** In-flight operations while pipelining. */
  window: number;
}

export interface ScenarioContext {
  /** URL of the private nats-server started for this bench run. */
  readonly natsUrl: string;
  readonly sizes: Sizes;
  /** A silent pino logger for the stores. */
  readonly logger: Logger;
  /** 0-based run number (-1 for the warm-up). */
  readonly run: number;
  /** A fresh temporary folder for this run, deleted by the runner after the run even if it throws. */
  tempDir(): Promise<string>;
  /** A name unique in this bench process, made of [A-Za-z0-9] only (safe as a stream name and subject token). */
  unique(prefix: string): string;
  /**
   * A fixture built once per bench run and shared by every run of every scenario asking for the
   * same `key` (e.g. a log of a million events, too slow to write before each run); `dispose`
   * is called when the bench ends. Put the size in the key: the warm-up runs at another size.
   */
  shared<T>(key: string, make: () => Promise<T>, dispose: (value: T) => Promise<void>): Promise<T>;
  /**
   * Call before each timed phase: a full garbage collection, then a short pause so the
   * previous phase's work (server flushes, pending callbacks) does not bill the next one.
   */
  settle(): Promise<void>;
  /** Progress note (stderr, not in --json output). */
  note(message: string): void;
}
