/**
 * Runs one allocator replica: `runAllocator(config)` opens the event store (JetStream when a
 * NATS URL is given, else the embedded log in a data folder), starts the allocator and stops
 * it cleanly on SIGINT/SIGTERM. Run directly (`tsx services/allocator/src/main.ts`) it reads
 * its configuration from the environment (`configFromEnv`).
 */
import { pathToFileURL } from "node:url";
import { Token, startService, type EventStore } from "@slap/events";
import { EmbeddedEventStore } from "@slap/eventstore-embedded";
import { connectServiceLog, natsConfigFields } from "@slap/eventstore-jetstream";
import { pino, type Logger } from "pino";
import { z } from "zod";
import { Allocator } from "./shell/allocator.js";

const emptyAsAbsent = (value: unknown): unknown => (value === "" ? undefined : value);

/** The allocator's configuration. Empty strings count as absent (as from an unset environment variable). */
export const AllocatorConfig = z.object({
  /** NATS server URL(s), comma-separated: distributed mode on JetStream. */
  nats: z.preprocess(emptyAsAbsent, z.string().min(1).optional()),
  /** JetStream stream of the log (default `SLAP_EVENTS`). */
  streamName: z.preprocess(emptyAsAbsent, z.string().regex(/^[A-Za-z0-9_-]{1,64}$/, "must be 1-64 characters of A-Z, a-z, 0-9, _ or -").optional()),
  /** Embedded mode: the data folder of the log (default `./data`), when no `nats` is given. */
  data: z.preprocess(emptyAsAbsent, z.string().min(1).optional()),
  /** Replica name: in every log line, and its trailing number sets the rotation (see README). */
  replica: z.preprocess(emptyAsAbsent, Token.optional()),
  logLevel: z.preprocess(emptyAsAbsent, z.enum(["fatal", "error", "warn", "info", "debug", "trace", "silent"]).default("info")),
  /** Most appends in flight (default 128). */
  maxInFlight: z.preprocess(emptyAsAbsent, z.coerce.number().int().positive().max(10_000).optional()),
  ...natsConfigFields,
});
export type AllocatorConfig = z.input<typeof AllocatorConfig>;

/** The configuration from `NATS_URL`, `NATS_USER`, `NATS_PASSWORD`, `SLAP_REPLICAS`, `SLAP_STREAM`, `SLAP_DATA`, `ALLOCATOR_REPLICA`, `LOG_LEVEL`, `ALLOCATOR_MAX_IN_FLIGHT`. */
export function configFromEnv(env: NodeJS.ProcessEnv = process.env): AllocatorConfig {
  return {
    nats: env.NATS_URL,
    streamName: env.SLAP_STREAM,
    data: env.SLAP_DATA,
    replica: env.ALLOCATOR_REPLICA,
    logLevel: env.LOG_LEVEL,
    maxInFlight: env.ALLOCATOR_MAX_IN_FLIGHT,
    natsUser: env.NATS_USER,
    natsPassword: env.NATS_PASSWORD,
    replicas: env.SLAP_REPLICAS,
  };
}

/** An invalid configuration: says which setting and why, never a stack trace. */
export class ConfigError extends Error {
  override name = "ConfigError";
}

export interface RunningAllocator {
  allocator: Allocator;
  /** Stops the allocator and closes the store if `runAllocator` opened it. Idempotent. */
  stop(): Promise<void>;
}

export interface RunOptions {
  /** A root logger (default: pino to stderr at `config.logLevel`). */
  logger?: Logger;
  /** An open store to use (one process embedding master, allocator and node shares one); not closed by `stop`. */
  store?: EventStore;
  /**
   * Own the process (default true): stop on SIGINT/SIGTERM, and keep the process alive until
   * stopped (the embedded log holds no handle of its own while it waits for commits).
   */
  handleSignals?: boolean;
}

/**
 * Parses the configuration, opens the store, starts the allocator. Resolves once it has
 * caught up with the log and is placing.
 * @throws ConfigError on an invalid configuration; the store's error when it cannot be opened.
 */
export async function runAllocator(input: AllocatorConfig, options: RunOptions = {}): Promise<RunningAllocator> {
  const parsed = AllocatorConfig.safeParse(input);
  if (!parsed.success) throw new ConfigError(`invalid allocator configuration:\n${z.prettifyError(parsed.error)}`);
  const config = parsed.data;
  const logger = options.logger ?? pino({ level: config.logLevel, base: { service: "allocator" } }, pino.destination(2));
  const store = options.store ?? (await openStore(config, logger));
  const owned = options.store === undefined;
  const allocator = new Allocator({
    store,
    logger,
    ...(config.replica === undefined ? {} : { replica: config.replica }),
    ...(config.maxInFlight === undefined ? {} : { maxInFlight: config.maxInFlight }),
  });

  const stop = await startService(allocator, {
    logger,
    ...(owned ? { close: () => store.close() } : {}),
    ...(options.handleSignals === undefined ? {} : { handleSignals: options.handleSignals }),
    // The embedded log holds no handle of its own while it waits for commits.
    keepAlive: true,
  });
  return { allocator, stop };
}

async function openStore(config: z.output<typeof AllocatorConfig>, logger: Logger): Promise<EventStore> {
  if (config.nats !== undefined) {
    return connectServiceLog({ ...config, nats: config.nats }, logger);
  }
  return EmbeddedEventStore.open({ dir: config.data ?? "./data", logger });
}

const invokedDirectly = process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href;
if (invokedDirectly) {
  runAllocator(configFromEnv()).catch((error: unknown) => {
    process.stderr.write(`allocator: ${error instanceof Error ? error.message : String(error)}\n`);
    process.exitCode = 1;
  });
}
