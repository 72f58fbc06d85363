/**
 * Runs one allocator replica: `runAllocator(config)` opens the event store (JetStream when a
 * NATS URL is given, else the embedded log in a data folder), starts the allocator and stops
 * it cleanly on SIGINT/SIGTERM. Run directly (`tsx services/allocator/src/main.ts`) it reads
 * its configuration from the environment (`configFromEnv`).
 */
import { pathToFileURL } from "node:url";
import { configFromEnvOf, parseConfig, startService, type EventStore } from "@slap/events";
import { EmbeddedEventStore } from "@slap/eventstore-embedded";
import { connectServiceLog } from "@slap/eventstore-jetstream";
import { pino, type Logger } from "pino";
import { ALLOCATOR_CONFIG, ALLOCATOR_SETTINGS, type AllocatorConfig, type ParsedAllocatorConfig } from "./config.js";
import { Allocator } from "./shell/allocator.js";

/**
 * The configuration from the environment: each setting's variable (`NATS_URL`, `NATS_USER`,
 * `NATS_PASSWORD`, `SLAP_REPLICAS`, `SLAP_STREAM`, `SLAP_DATA`, `ALLOCATOR_REPLICA`, `LOG_LEVEL`,
 * `ALLOCATOR_MAX_IN_FLIGHT`: see `ALLOCATOR_SETTINGS`), unset ones left to their defaults.
 */
export function configFromEnv(env: NodeJS.ProcessEnv = process.env): AllocatorConfig {
  return configFromEnvOf(ALLOCATOR_SETTINGS, env);
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
  const parsed = parseConfig(ALLOCATOR_CONFIG, input);
  if (!parsed.ok) throw new ConfigError(`invalid allocator configuration: ${parsed.issues.join("; ")}`);
  const { config } = parsed;
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

async function openStore(config: ParsedAllocatorConfig, logger: Logger): Promise<EventStore> {
  if (config.nats !== undefined) {
    return connectServiceLog({ ...config, nats: config.nats }, logger);
  }
  return EmbeddedEventStore.open({ dir: config.data, logger });
}

const invokedDirectly = process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href;
if (invokedDirectly) {
  runAllocator(configFromEnv()).catch((error: unknown) => {
    process.stderr.write(`allocator: ${error instanceof Error ? error.message : String(error)}\n`);
    process.exitCode = 1;
  });
}
