/**
 * Runs the node agent of one computer: `runNode(config)` opens the event log (JetStream when a
 * NATS URL is given, or a store passed in for one-process mode), starts the `Node` and stops it
 * cleanly on SIGINT/SIGTERM (services stopped). Run directly (`tsx services/node/src/main.ts`)
 * it reads its configuration from the environment (`configFromEnv`).
 */
import { open } from "node:fs/promises";
import { resolve } from "node:path";
import { pathToFileURL } from "node:url";
import { ApiToken, configFromEnvOf, parseConfig, startService, type EventStore } from "@slap/events";
import { connectServiceLog } from "@slap/eventstore-jetstream";
import { pino, type Logger } from "pino";
import { NODE_CONFIG, NODE_SETTINGS, type NodeConfig } from "./config.js";
import { Node } from "./shell/node.js";

/**
 * The configuration from the environment: each setting's variable (`NATS_URL`, `SLAP_MASTER`,
 * `SLAP_COMPUTER`, `SLAP_PORT_BASE`, `SLAP_HEARTBEAT_MS`, …: see `NODE_SETTINGS`), unset ones
 * left to their defaults.
 */
export function configFromEnv(env: NodeJS.ProcessEnv = process.env): NodeConfig {
  return configFromEnvOf(NODE_SETTINGS, env);
}

/** An invalid configuration: says which setting and why, never a stack trace. */
export class NodeConfigError extends Error {
  override name = "NodeConfigError";
}

export interface RunningNode {
  node: Node;
  /** Stops the node (services stopped) and closes the store if `runNode` opened it. Idempotent. */
  stop(): Promise<void>;
}

export interface RunNodeOptions {
  logger?: Logger;
  /** An open store (one-process mode); not closed by `stop`. */
  store?: EventStore;
  /** Stop on SIGINT/SIGTERM (default true). */
  handleSignals?: boolean;
}

/**
 * Parses the configuration, opens the store, starts the node. Resolves once the computer is
 * registered and processing has begun.
 * @throws NodeConfigError on an invalid configuration; the store's or master's error when they cannot be reached.
 */
export async function runNode(input: NodeConfig, options: RunNodeOptions = {}): Promise<RunningNode> {
  const parsed = parseConfig(NODE_CONFIG, input);
  if (!parsed.ok) throw new NodeConfigError(`invalid node configuration: ${parsed.issues.join("; ")}`);
  const { config } = parsed;
  // One of them is given (a rule of NODE_CONFIG).
  const token = config.token ?? (await readToken(config.tokenFile ?? ""));
  const logger = options.logger ?? pino({ level: config.logLevel, base: { service: "node" } }, pino.destination(2));
  let store = options.store;
  const owned = store === undefined;
  if (store === undefined) {
    if (config.nats === undefined) throw new NodeConfigError("invalid node configuration: nats (the event log's NATS URL) is required");
    // A node reads the log only (its NATS user may publish nothing); the master and allocators dead-letter.
    store = await connectServiceLog({ ...config, nats: config.nats }, logger, { deadLetters: false });
  }
  const openedStore = store;
  const node = new Node({
    store: openedStore,
    masterUrl: config.master,
    token,
    computerId: config.computer,
    partitions: config.partitions,
    root: resolve(config.root),
    ...(config.address === undefined ? {} : { address: config.address }),
    portBase: config.portBase,
    portsPerPartition: config.portsPerPartition,
    partitionUsers: config.partitionUsers,
    heartbeatMs: config.heartbeatMs,
    profileTimeoutMs: config.profileTimeoutMs,
    runTimeoutMs: config.runTimeoutMs,
    promiseTimeoutMs: config.promiseTimeoutMs,
    promiseIntervalMs: config.promiseIntervalMs,
    logger,
  });
  const stop = await startService(node, {
    logger,
    ...(owned ? { close: () => openedStore.close() } : {}),
    ...(options.handleSignals === undefined ? {} : { handleSignals: options.handleSignals }),
  });
  return { node, stop };
}

/** The token in a file: its first line, which must be a token. */
async function readToken(path: string): Promise<string> {
  let text: string;
  try {
    // The first 4 KiB at most: a token is a line, and /dev/zero is a file too.
    const file = await open(path, "r");
    try {
      const { buffer, bytesRead } = await file.read(Buffer.alloc(4_096), 0, 4_096, null);
      text = buffer.subarray(0, bytesRead).toString("utf8");
    } finally {
      await file.close();
    }
  } catch (error) {
    throw new NodeConfigError(`invalid node configuration: tokenFile: cannot read ${JSON.stringify(path)}: ${(error as NodeJS.ErrnoException).code ?? String(error)}`, { cause: error });
  }
  const token = text.split("\n")[0]!.trim();
  if (!ApiToken.safeParse(token).success) throw new NodeConfigError(`invalid node configuration: tokenFile: ${JSON.stringify(path)} does not hold a token (16-512 printable characters on its first line)`);
  return token;
}

const invokedDirectly = process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href;
if (invokedDirectly) {
  runNode(configFromEnv()).catch((error: unknown) => {
    process.stderr.write(`node: ${error instanceof Error ? error.message : String(error)}\n`);
    process.exitCode = 1;
  });
}
