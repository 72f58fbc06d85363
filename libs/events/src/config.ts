/**
 * A service's configuration described once: for each setting its zod schema, its command-line
 * flag, its environment variable, its default and its help. From that one description come the
 * service's own parsing (`parseConfig`, for `runX(config)`), its environment reading
 * (`configFromEnvOf`), and a command line's flags, validation and help (`readConfig`,
 * `argvOptionsOf`, `describeSettings`): a setting cannot be checked one way here and another there.
 */
import { z } from "zod";

/** One setting of a service. */
export interface Setting<S extends z.ZodType = z.ZodType> {
  /**
   * Parses the value, given as a string (command line, environment, `default`) or as the value
   * itself (a program calling `runX`). Optional (`.optional()`) when the setting may stay unset.
   */
  readonly schema: S;
  /** The flag without `--` (`port-base`); none: not on the command line (a password never is). */
  readonly flag?: string;
  /** How the flag's value is shown in help (`N`, `URL`); default `VALUE`. */
  readonly placeholder?: string;
  /** The environment variable it falls back on when its flag is not given. */
  readonly env?: string;
  /** The value when neither flag nor variable is given, as it would be typed (shown in help). */
  readonly default?: string;
  /** What the default is when it is not a value of its own (`the embedded log`, `DIR/tokens.json`): help only. */
  readonly defaultHelp?: string;
  /** What it is, for help: a phrase without the variable and the default, which help adds. */
  readonly help: string;
  /** Said after the default in help (`0 picks a free one`). */
  readonly note?: string;
  /**
   * The key of another setting whose flag, when given, makes this one unset: two settings for one
   * value (a token, or the file holding it), where a flag of either wins over the environment.
   */
  readonly yieldsToFlagOf?: string;
}

export type Settings = Readonly<Record<string, Setting>>;

/**
 * A rule between settings, checked once each parsed: a message, or undefined when it holds.
 * `name(key)` names a setting as the reader knows it (`--port-base (or SLAP_PORT_BASE)` on a
 * command line, `portBase (SLAP_PORT_BASE)` in a program's configuration).
 */
export type ConfigRule<C> = (config: C, name: (key: string) => string) => string | undefined;

/** A service's configuration: its settings and the rules between them. */
export interface ConfigDescription<S extends Settings> {
  readonly settings: S;
  readonly rules?: ReadonlyArray<ConfigRule<ConfigOf<S>>>;
}

type HasDefault<T extends Setting> = T extends { readonly default: string } ? true : false;
type MayBeUnset<T extends Setting> = HasDefault<T> extends true ? true : undefined extends z.input<T["schema"]> ? true : false;
type RequiredKeys<S extends Settings> = { [K in keyof S]: MayBeUnset<S[K]> extends true ? never : K }[keyof S];
type OptionalKeys<S extends Settings> = Exclude<keyof S, RequiredKeys<S>>;

/**
 * What a program passes as configuration: each value as a string (from a file or the
 * environment) or as the value itself; unset (or empty) settings take their default.
 */
export type ConfigInput<S extends Settings> = { -readonly [K in RequiredKeys<S>]: z.input<S[K]["schema"]> | string } & {
  -readonly [K in OptionalKeys<S>]?: z.input<S[K]["schema"]> | string | undefined;
};

/** The parsed configuration: every setting's value, defaults applied (`undefined` for an unset optional one). */
export type ConfigOf<S extends Settings> = {
  -readonly [K in keyof S]: HasDefault<S[K]> extends true ? Exclude<z.output<S[K]["schema"]>, undefined> : z.output<S[K]["schema"]>;
};

export type ConfigResult<C> = { ok: true; config: C } | { ok: false; issues: string[] };

const isUnset = (value: unknown): boolean => value === undefined || value === "";

/**
 * The zod object of the settings: an unset or empty value takes the setting's default (an empty
 * environment variable counts as unset). Rules between settings are `parseConfig`'s.
 */
export function configSchema<S extends Settings>(settings: S): z.ZodType<ConfigOf<S>, ConfigInput<S>> {
  const shape = Object.fromEntries(
    Object.entries(settings).map(([key, setting]) => [key, z.preprocess((value) => (isUnset(value) ? setting.default : value), setting.schema)]),
  );
  return z.object(shape) as unknown as z.ZodType<ConfigOf<S>, ConfigInput<S>>;
}

/** A value that must be given but is not: "is required" (zod would say "expected string, received undefined"). */
const requiredMessage = (issue: { code?: string; input?: unknown }): string | undefined =>
  issue.code === "invalid_type" && issue.input === undefined ? "is required" : undefined;

/** How a program's configuration names a setting: its key, and its variable (`heartbeatMs (SLAP_HEARTBEAT_MS)`). */
export function keyLabel(settings: Settings, key: string): string {
  const env = settings[key]?.env;
  return env === undefined ? key : `${key} (${env})`;
}

/** How a command line names a setting: its flag and variable (`--port (or PORT)`), its flag, or its variable. */
export function sourceLabel(settings: Settings, key: string): string {
  const setting = settings[key];
  if (setting?.flag !== undefined) return setting.env === undefined ? `--${setting.flag}` : `--${setting.flag} (or ${setting.env})`;
  return setting?.env ?? key;
}

/**
 * Parses a configuration with its description: every setting, then the rules. Issues are one
 * line each, `<label>: <message>`, the label naming the setting (by default `keyLabel`).
 */
export function parseConfig<S extends Settings>(
  description: ConfigDescription<S>,
  input: unknown,
  label: (key: string) => string = (key) => keyLabel(description.settings, key),
): ConfigResult<ConfigOf<S>> {
  const parsed = configSchema(description.settings).safeParse(input, { error: requiredMessage });
  if (!parsed.success) {
    return { ok: false, issues: parsed.error.issues.map((issue) => `${issue.path.length === 0 ? "configuration" : label(String(issue.path[0]))}: ${issue.message}`) };
  }
  const broken = (description.rules ?? []).flatMap((rule) => rule(parsed.data, label) ?? []);
  return broken.length === 0 ? { ok: true, config: parsed.data } : { ok: false, issues: broken };
}

/** The configuration a service run directly reads: each setting's variable (unset ones `undefined`; parsing applies the defaults). */
export function configFromEnvOf<S extends Settings>(settings: S, env: Readonly<Record<string, string | undefined>>): ConfigInput<S> {
  return Object.fromEntries(
    Object.entries(settings)
      .filter(([, setting]) => setting.env !== undefined)
      .map(([key, setting]) => [key, env[setting.env!]]),
  ) as ConfigInput<S>;
}

/** The `node:util` parseArgs options of the settings that have a flag (all take a string). */
export function argvOptionsOf(settings: Settings): Record<string, { type: "string" }> {
  return Object.fromEntries(
    Object.values(settings)
      .flatMap((setting) => (setting.flag === undefined ? [] : [setting.flag]))
      .map((flag) => [flag, { type: "string" as const }]),
  );
}

/** The environment variables the settings read, in their order. */
export function envNamesOf(settings: Settings): string[] {
  return [...new Set(Object.values(settings).flatMap((setting) => (setting.env === undefined ? [] : [setting.env])))];
}

export interface ReadConfigOptions<S extends Settings> {
  /** Settings that must be given here though the service may do without (the node's NATS URL on a command line). */
  readonly required?: ReadonlyArray<keyof S & string>;
}

/**
 * Reads a configuration from a command line's flag values and the environment: for each setting
 * its flag, else its variable (empty counts as unset), else its default; parsed with the same
 * schemas and rules as `parseConfig`, each issue naming the flag and variable it came from
 * (`--port (or PORT): must be a port number`).
 */
export function readConfig<S extends Settings>(
  description: ConfigDescription<S>,
  flags: Readonly<Record<string, unknown>>,
  env: Readonly<Record<string, string | undefined>>,
  options: ReadConfigOptions<S> = {},
): ConfigResult<ConfigOf<S>> {
  const { settings } = description;
  const label = (key: string): string => sourceLabel(settings, key);
  const given = (setting: Setting | undefined): unknown => (setting?.flag === undefined ? undefined : flags[setting.flag]);
  const input: Record<string, unknown> = {};
  for (const [key, setting] of Object.entries(settings)) {
    const other = setting.yieldsToFlagOf === undefined ? undefined : settings[setting.yieldsToFlagOf];
    if (other !== undefined && !isUnset(given(other))) continue;
    const flag = given(setting);
    input[key] = isUnset(flag) ? (setting.env === undefined ? undefined : env[setting.env]) : flag;
  }
  const missing = (options.required ?? []).filter((key) => isUnset(input[key]) && settings[key]?.default === undefined);
  if (missing.length > 0) return { ok: false, issues: missing.map((key) => `${label(key)}: is required`) };
  return parseConfig(description, input, label);
}

/** The log levels of pino, as every service takes them. */
export const LogLevel = z.enum(["fatal", "error", "warn", "info", "debug", "trace", "silent"], {
  error: "must be one of fatal, error, warn, info, debug, trace, silent",
});
export type LogLevel = z.infer<typeof LogLevel>;

/** Every service's `LOG_LEVEL` (default info). */
export const logLevelSetting = {
  schema: LogLevel,
  env: "LOG_LEVEL",
  default: "info",
  help: "the log level: fatal … trace, silent",
  note: "logs are JSON lines",
} as const satisfies Setting;

const WIDTH = 100;

/** `text` wrapped at `WIDTH`, every line after the first indented by `indent`. */
function wrap(text: string, first: number, indent: number): string {
  const lines: string[] = [];
  let line = "";
  let room = WIDTH - first;
  for (const word of text.split(" ")) {
    if (line !== "" && line.length + 1 + word.length > room) {
      lines.push(line);
      line = word;
      room = WIDTH - indent;
    } else line = line === "" ? word : `${line} ${word}`;
  }
  lines.push(line);
  return lines.join(`\n${" ".repeat(indent)}`);
}

/** Whether a setting must be given: named in `required`, or without a default and refused unset by its schema. */
function mustBeGiven(settings: Settings, key: string, required: readonly string[]): boolean {
  const setting = settings[key];
  return setting !== undefined && (required.includes(key) || (setting.default === undefined && !setting.schema.safeParse(undefined).success));
}

/** The help of one setting: what it is, then (env X, required or default D; note). */
function settingHelp(setting: Setting, withEnv: boolean, required: boolean): string {
  const facts = [
    ...(withEnv && setting.env !== undefined ? [`env ${setting.env}`] : []),
    ...(required ? ["required"] : setting.default !== undefined ? [`default ${setting.default}`] : setting.defaultHelp !== undefined ? [`default ${setting.defaultHelp}`] : []),
  ].join(", ");
  const extra = [facts, ...(setting.note === undefined ? [] : [setting.note])].filter((part) => part !== "").join("; ");
  return extra === "" ? setting.help : `${setting.help} (${extra})`;
}

export interface HelpOptions {
  /** The settings to show, in this order (default: all, in the description's order). */
  readonly keys?: readonly string[];
  /** Settings that must be given here though the service may do without (see `ReadConfigOptions.required`). */
  readonly required?: readonly string[];
}

/** `name` then `text` in a column, `text` wrapped. */
function entry(name: string, text: string, column: number): string {
  const pad = name.length + 1 > column ? `\n${" ".repeat(column)}` : " ".repeat(column - name.length);
  return `${name}${pad}${wrap(text, column, column)}`;
}

/**
 * The help of the settings: `options:` (those with a flag, with their variable and default) and
 * `environment:` (those read from a variable only), each with its help, default or "required".
 */
export function describeSettings(settings: Settings, options: HelpOptions = {}): string {
  const keys = (options.keys ?? Object.keys(settings)).filter((key) => settings[key] !== undefined);
  const required = options.required ?? [];
  const flagged = keys.filter((key) => settings[key]!.flag !== undefined);
  const envOnly = keys.filter((key) => settings[key]!.flag === undefined && settings[key]!.env !== undefined);
  const sections: string[] = [];
  if (flagged.length > 0) {
    const names = flagged.map((key) => `  --${settings[key]!.flag!} ${settings[key]!.placeholder ?? "VALUE"}`);
    const column = Math.min(Math.max(...names.map((name) => name.length)) + 2, 24);
    const lines = flagged.map((key, index) => entry(names[index]!, settingHelp(settings[key]!, true, mustBeGiven(settings, key, required)), column));
    sections.push(`options:\n${lines.join("\n")}`);
  }
  if (envOnly.length > 0) {
    const names = envOnly.map((key) => `  ${settings[key]!.env!}`);
    const column = Math.min(Math.max(...names.map((name) => name.length)) + 2, 28);
    const lines = envOnly.map((key, index) => entry(names[index]!, settingHelp(settings[key]!, false, mustBeGiven(settings, key, required)), column));
    sections.push(`environment (no flag):\n${lines.join("\n")}`);
  }
  return sections.join("\n\n");
}

/** The usage line's options: `--flag P` for a setting that must be given, `[--flag P]` for the others. */
export function usageOf(settings: Settings, options: HelpOptions = {}): string {
  const keys = options.keys ?? Object.keys(settings);
  return keys
    .flatMap((key) => {
      const setting = settings[key];
      if (setting?.flag === undefined) return [];
      const option = `--${setting.flag} ${setting.placeholder ?? "VALUE"}`;
      return [mustBeGiven(settings, key, options.required ?? []) ? option : `[${option}]`];
    })
    .join(" ");
}
