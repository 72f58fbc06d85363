/**
 * The master's configuration, described once: `runMaster` parses it, and `slap master` (apps/cli)
 * takes its flags, variables, help and validation from it.
 */
import { configSchema, logLevelSetting, type ConfigDescription, type ConfigInput, type ConfigOf, type ConfigRule, type Setting } from "@slap/events";
import { natsCredentialsRule, natsSettings } from "@slap/eventstore-jetstream";
import { z } from "zod";
import { DEFAULT_LIMITS } from "./core/limits.js";
import { DEFAULT_STALE_AFTER_MS } from "./shell/master.js";

/** A whole number from `min` to `max`, for a limit. */
function count(min: number, max: number) {
  const message = `must be a whole number from ${min} to ${max}`;
  return z.coerce.number({ error: message }).int(message).min(min, message).max(max, message);
}

/** What one caller may take of the master (core/limits.ts; README, "Limits"), each with its variable. */
const LIMIT_SETTINGS = {
  writeBytesPerSecond: { schema: count(1_024, 1_073_741_824), env: "SLAP_WRITE_BYTES_PER_S", default: String(DEFAULT_LIMITS.writeBytesPerSecond), help: "bytes of request bodies one caller (a user, a node) may write per second, on average" },
  writeBytesBurst: { schema: count(1_024, 1_073_741_824), env: "SLAP_WRITE_BYTES_BURST", default: String(DEFAULT_LIMITS.writeBytesBurst), help: "bytes one caller may write at once (a burst)" },
  writesPerSecond: { schema: count(1, 1_000_000), env: "SLAP_WRITES_PER_S", default: String(DEFAULT_LIMITS.writesPerSecond), help: "writes (requests, bangs, reports…) one caller may make per second, on average" },
  writesBurst: { schema: count(1, 10_000_000), env: "SLAP_WRITES_BURST", default: String(DEFAULT_LIMITS.writesBurst), help: "writes one caller may make at once (a burst)" },
  heldPerCaller: { schema: count(1, 1_000_000), env: "SLAP_HELD_PER_CALLER", default: String(DEFAULT_LIMITS.heldPerCaller), help: "event streams, watches and long polls one caller may hold open at once" },
  heldTotal: { schema: count(1, 10_000_000), env: "SLAP_HELD_TOTAL", default: String(DEFAULT_LIMITS.heldTotal), help: "event streams, watches and long polls held open at once by everyone" },
} as const satisfies Record<string, Setting>;

/** The master's settings. */
export const MASTER_SETTINGS = {
  /** Without it, the embedded log in `data`. */
  nats: { ...natsSettings.nats, defaultHelp: "the embedded log" },
  data: { schema: z.string().min(1), flag: "data", placeholder: "DIR", env: "SLAP_DATA", default: "./data", help: "the embedded log's folder" },
  port: {
    schema: z.coerce.number({ error: "must be a port number" }).int("must be a port number").min(0, "must be a port number").max(65_535, "must be a port number"),
    flag: "port",
    placeholder: "N",
    env: "PORT",
    default: "8080",
    help: "HTTP port",
    note: "0 picks a free one",
  },
  host: { schema: z.string().min(1), flag: "host", placeholder: "H", env: "HOST", default: "127.0.0.1", help: "HTTP address" },
  /**
   * The token file (see `TokenFile` in shell/auth.ts): who may call the HTTP API. Default
   * `<data>/tokens.json`, created at first start with one admin token in `<data>/admin.token`.
   */
  tokens: {
    schema: z.string().min(1).optional(),
    flag: "tokens",
    placeholder: "FILE",
    env: "SLAP_TOKENS",
    defaultHelp: "DIR/tokens.json",
    help: "the API tokens it accepts",
    note: "created at first start with one admin token, written to DIR/admin.token, mode 0600",
  },
  /** Serve HTTPS with this certificate (PEM, with its chain) and `tlsKey`; both or neither. */
  tlsCert: { schema: z.string().min(1).optional(), flag: "tls-cert", placeholder: "FILE", env: "SLAP_TLS_CERT", defaultHelp: "none: plain HTTP", help: "serve HTTPS with this certificate (PEM)", note: "with --tls-key" },
  tlsKey: { schema: z.string().min(1).optional(), flag: "tls-key", placeholder: "FILE", env: "SLAP_TLS_KEY", defaultHelp: "none", help: "the certificate's private key (PEM)", note: "with --tls-cert" },
  /**
   * A computer whose node the master has not heard from (heartbeat or any other call) for longer
   * than this is shown `unresponsive` (default 30 s: 3 × the nodes' default heartbeat of 10 s).
   */
  staleAfterMs: {
    schema: z.coerce.number({ error: "must be a number of milliseconds" }).int("must be a number of milliseconds").min(1, "must be at least 1").max(86_400_000, "must be at most 86400000 (24 h)").optional(),
    env: "SLAP_STALE_AFTER_MS",
    defaultHelp: String(DEFAULT_STALE_AFTER_MS),
    help: "how long, in ms, a computer's node may stay silent before it is shown unresponsive",
    note: "about 3 of the nodes' SLAP_HEARTBEAT_MS",
  },
  ...LIMIT_SETTINGS,
  streamName: natsSettings.streamName,
  natsUser: natsSettings.natsUser,
  natsPassword: natsSettings.natsPassword,
  replicas: natsSettings.replicas,
  logLevel: logLevelSetting,
} as const satisfies Record<string, Setting>;

export type MasterSettings = typeof MASTER_SETTINGS;

/** A certificate goes with its key. */
const tlsPairRule: ConfigRule<{ tlsCert?: string | undefined; tlsKey?: string | undefined }> = (config, name) =>
  (config.tlsCert === undefined) === (config.tlsKey === undefined) ? undefined : `${name("tlsCert")} and ${name("tlsKey")}: set both or neither`;

/** The master's configuration: its settings, and the rules between them. */
export const MASTER_CONFIG: ConfigDescription<MasterSettings> = { settings: MASTER_SETTINGS, rules: [natsCredentialsRule, tlsPairRule] };

/** The zod object of the master's settings (without the rules between them: `parseConfig(MASTER_CONFIG, …)` checks both). */
export const MasterConfig = configSchema(MASTER_SETTINGS);
/** What `runMaster` takes: each setting as its value or as a string; unset ones take their default. */
export type MasterConfig = ConfigInput<MasterSettings>;
export type ParsedMasterConfig = ConfigOf<MasterSettings>;
