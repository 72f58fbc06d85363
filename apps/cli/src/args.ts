/**
 * What every `slap` command is built from: the `Io` it runs with, the `Command` shape, the
 * errors that become one line and an exit code, and argument parsing (`node:util` parseArgs
 * for the shape, zod for the values).
 */
import { parseArgs } from "node:util";
import type { z } from "zod";
import { argvOptionsOf, readConfig, type ConfigDescription, type ConfigOf, type ReadConfigOptions, type Settings } from "@slap/events";

/**
 * What every command needs from the outside world, passed in so that tests can run a command
 * in-process with their own environment and output.
 */
export interface Io {
  readonly env: Readonly<Record<string, string | undefined>>;
  /** Results: what a script captures. */
  readonly stdout: Output;
  /** Progress, warnings and errors. */
  readonly stderr: Output;
  /**
   * Aborted on the first SIGINT/SIGTERM. Only commands that call it take over those signals;
   * the others keep Node's default (the process ends at once).
   */
  stopSignal(): AbortSignal;
  /** The HTTP client's `fetch` (default: Node's). */
  readonly fetch?: typeof fetch;
}

export interface Output {
  write(text: string): unknown;
  readonly isTTY?: boolean;
  readonly columns?: number;
}

/** One command of `slap`: its one-line summary for `slap --help`, its own help, and what it does. */
export interface Command {
  readonly name: string;
  readonly summary: string;
  readonly help: string;
  /**
   * The environment variables the command reads (besides its flags), for checks of deployment
   * files (docker-compose.yml): the same list its argument parsing reads (through `envReader`, or
   * `envNamesOf` of the settings it takes from a service's configuration description).
   */
  readonly env?: readonly string[];
  /** Returns the exit code (`EXIT`); throws `UsageError` (exit 64) or `CliError` (its exit code). */
  run(argv: readonly string[], io: Io): Promise<number>;
}

/**
 * `slap`'s exit codes, the same for every command (`slap --help` lists them): 0 done (ready),
 * 1 an error (a refusal, a failure, a request that cannot be served), 2 still pending (ask again:
 * requests are idempotent), 64 a usage error (EX_USAGE of sysexits.h), 130 interrupted.
 */
export const EXIT = { ok: 0, error: 1, pending: 2, usage: 64, interrupted: 130 } as const;

/** The exit codes as `--help` says them. */
export const EXIT_HELP = `exit codes: ${EXIT.ok} done (ready), ${EXIT.error} an error (refused, failed, blocked), ${EXIT.pending} still pending (ask again),
            ${EXIT.usage} a usage error, ${EXIT.interrupted} interrupted`;

/** A failure the user can act on: reported as one line, `slap <command>: <message>`, with `exitCode`. */
export class CliError extends Error {
  override name = "CliError";
  constructor(
    message: string,
    readonly exitCode: number = EXIT.error,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

/** A wrong command line: exit code 64 (`EXIT.usage`), with a pointer to the command's `--help`. */
export class UsageError extends CliError {
  override name = "UsageError";
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, EXIT.usage, options);
  }
}

export type OptionSpec = { type: "string"; multiple?: boolean; short?: string } | { type: "boolean"; short?: string };

export interface ArgvSpec {
  readonly options: Readonly<Record<string, OptionSpec>>;
  /** Names of the required positional arguments, in order (shown as `<name>`). */
  readonly positionals?: readonly string[];
}

export interface ParsedArgv {
  values: Record<string, string | boolean | string[] | undefined>;
  positionals: Record<string, string>;
}

/** `text` with its control characters (C0, DEL, C1 such as the CSI U+009B) as `\\uXXXX`: a message never drives the terminal. */
function escapeControls(text: string): string {
  // eslint-disable-next-line no-control-regex
  return text.replace(/[\u0000-\u001f\u007f-\u009f]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, "0")}`);
}

/** A value of the command line quoted for a message: JSON, with the controls JSON leaves as they are (DEL, C1) escaped too. */
export function quoted(value: string): string {
  return escapeControls(JSON.stringify(value));
}

/** `--help` was asked for: the command prints its help and exits 0. */
export const HELP = Symbol("help");

/**
 * Splits a command line with `node:util` `parseArgs` (strict: unknown options, missing values
 * and extra arguments are usage errors). Values are still strings: validate them with `validate`.
 */
export function splitArgv(spec: ArgvSpec, argv: readonly string[]): ParsedArgv | typeof HELP {
  if (argv.includes("--help") || argv.includes("-h")) return HELP;
  const names = spec.positionals ?? [];
  let parsed;
  try {
    parsed = parseArgs({ args: [...argv], options: spec.options, allowPositionals: true, strict: true });
  } catch (error) {
    throw new UsageError(describeParseArgsError(error), { cause: error });
  }
  const extra = parsed.positionals.slice(names.length);
  if (extra.length > 0) throw new UsageError(`unexpected argument ${quoted(extra[0]!)}`);
  const missing = names.slice(parsed.positionals.length);
  if (missing.length > 0) throw new UsageError(`missing <${missing.join("> <")}>`);
  const positionals: Record<string, string> = {};
  names.forEach((name, index) => {
    positionals[name] = parsed.positionals[index] ?? "";
  });
  return { values: { ...parsed.values }, positionals };
}

function describeParseArgsError(error: unknown): string {
  const { code, message } = error as { code?: string; message?: string };
  const found = /'(-[^' ]+)/.exec(message ?? "")?.[1];
  const option = found === undefined ? undefined : escapeControls(found);
  switch (code) {
    case "ERR_PARSE_ARGS_UNKNOWN_OPTION":
      return `unknown option ${option ?? ""}`.trim();
    case "ERR_PARSE_ARGS_INVALID_OPTION_VALUE":
      if (option !== undefined && message?.includes("does not take an argument") === true) return `${option} takes no value`;
      return option === undefined ? "an option is missing its value" : `${option} needs a value`;
    default:
      return (message ?? String(error)).split("\n")[0] ?? "invalid arguments";
  }
}

/**
 * Parses `input` with `schema`; each issue is reported with the flag or argument it is about
 * (`--port`, `<release>`), or the label given for it (e.g. `--master (or SLAP_MASTER)`).
 */
export function validate<S extends z.ZodType>(schema: S, input: unknown, labels: Readonly<Record<string, string>> = {}): z.output<S> {
  const parsed = schema.safeParse(input);
  if (parsed.success) return parsed.data;
  const described = parsed.error.issues.map((issue) => {
    const key = issue.path[0];
    const label = key === undefined ? "arguments" : (labels[String(key)] ?? `--${String(key)}`);
    return `${label}: ${issue.message}`;
  });
  throw new UsageError(described.join("; "));
}

/** The options of a command whose flags are settings (see `readSettings`). */
export function settingsArgv(settings: Settings): ArgvSpec {
  return { options: argvOptionsOf(settings) };
}

/** A configuration's values without the unset ones: an absent setting stays absent (exactOptionalPropertyTypes). */
export type Present<T> = { [K in keyof T as undefined extends T[K] ? never : K]: T[K] } & {
  [K in keyof T as undefined extends T[K] ? K : never]?: Exclude<T[K], undefined>;
};

/**
 * A service's configuration from a command line (values split by `splitArgv`) and the
 * environment, read and checked as the service's own description says (`readConfig`); the unset
 * settings left out. Each issue names the flag or variable it came from; all of them are one
 * usage error.
 */
export function readSettings<S extends Settings>(
  description: ConfigDescription<S>,
  values: ParsedArgv["values"],
  env: Io["env"],
  options: ReadConfigOptions<S> = {},
): Present<ConfigOf<S>> {
  const result = readConfig(description, values, env, options);
  if (!result.ok) throw new UsageError(result.issues.join("; "));
  return Object.fromEntries(Object.entries(result.config).filter(([, value]) => value !== undefined)) as Present<ConfigOf<S>>;
}

/** Labels for positional arguments: `<release>`. */
export function positionalLabels(names: readonly string[]): Record<string, string> {
  return Object.fromEntries(names.map((name) => [name, `<${name}>`]));
}

/**
 * `k=v` pairs (split on the first `=`, so values may contain `=`) into a map; the last of two
 * equal keys wins. A pair without `=` or with an empty key is a usage error naming it.
 */
export function keyValues(flag: string, pairs: readonly string[] | undefined): Record<string, string> {
  const map: Record<string, string> = {};
  for (const pair of pairs ?? []) {
    const at = pair.indexOf("=");
    if (at <= 0) throw new UsageError(`--${flag} ${quoted(pair)}: expected key=value`);
    map[pair.slice(0, at)] = pair.slice(at + 1);
  }
  return map;
}

/** `k=<json>` pairs (as `keyValues`) with each value parsed as JSON: typed parameters. A value that is not JSON is a usage error naming it. */
export function jsonKeyValues(flag: string, pairs: readonly string[] | undefined): Record<string, unknown> {
  const map: Record<string, unknown> = {};
  for (const [key, text] of Object.entries(keyValues(flag, pairs))) {
    try {
      map[key] = JSON.parse(text) as unknown;
    } catch {
      throw new UsageError(`--${flag} ${quoted(`${key}=${text}`)}: the value is not JSON (a string is quoted: ${key}='"text"')`);
    }
  }
  return map;
}

const LOG_LEVELS = ["fatal", "error", "warn", "info", "debug", "trace", "silent"] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];

/**
 * `LOG_LEVEL` of a command that logs in-process (up, demo, events --data): unset or empty is
 * `fallback`; anything but a level is a usage error naming the variable (pino would throw).
 */
export function logLevelOf(env: Io["env"], fallback: LogLevel = "warn"): LogLevel {
  const value = fromEnv(env, "LOG_LEVEL");
  if (value === undefined) return fallback;
  if ((LOG_LEVELS as readonly string[]).includes(value)) return value as LogLevel;
  throw new UsageError(`LOG_LEVEL: must be one of ${LOG_LEVELS.join(", ")}`);
}

/** An environment value, with the empty string counted as unset. */
export function fromEnv(env: Io["env"], name: string): string | undefined {
  const value = env[name];
  return value === undefined || value === "" ? undefined : value;
}

/**
 * `fromEnv` restricted to `names`: reading a variable a command does not declare in its
 * `Command.env` is a type error, so the declared list cannot drift from what is read.
 */
export function envReader<const N extends string>(env: Io["env"], names: readonly N[]): (name: N) => string | undefined {
  return (name) => {
    if (!names.includes(name)) throw new Error(`${name} is read but not declared`);
    return fromEnv(env, name);
  };
}

/** Flags of which at most one may be given (e.g. the event filters). */
export function atMostOne(flags: Readonly<Record<string, unknown>>): void {
  const given = Object.entries(flags).filter(([, value]) => value !== undefined);
  if (given.length > 1) throw new UsageError(`${given.map(([name]) => `--${name}`).join(" and ")} cannot be combined`);
}

/** Prints a command's help on stdout; asking for help is not an error (exit 0). */
export function printHelp(io: Io, command: Command): number {
  io.stdout.write(`${command.help}\n`);
  return 0;
}

/** Resolves when `signal` aborts. The timer keeps the process alive meanwhile, whatever else holds the event loop. */
export function until(signal: AbortSignal): Promise<void> {
  if (signal.aborted) return Promise.resolve();
  const keepAlive = setInterval(() => undefined, 1 << 30);
  return new Promise((resolve) =>
    signal.addEventListener(
      "abort",
      () => {
        clearInterval(keepAlive);
        resolve();
      },
      { once: true },
    ),
  );
}
