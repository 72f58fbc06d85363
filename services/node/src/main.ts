/**
 * Runs the node agent of one computer: `runNode(config)` opens the event log (JetStream when a
 * NATS URL is given, or a store passed in for one-process mode), starts the `Node` and stops it
 * cleanly on SIGINT/SIGTERM (services stopped). Run directly (`tsx services/node/src/main.ts`)
 * it reads its configuration from the environment (`configFromEnv`).
 */
import { open } from "node:fs/promises";
import { resolve } from "node:path";
import { pathToFileURL } from "node:url";
import { ApiToken, Token, startService, type EventStore } from "@slap/events";
import { connectServiceLog, natsConfigFields } from "@slap/eventstore-jetstream";
import { pino, type Logger } from "pino";
import { z } from "zod";
import { Node } from "./shell/node.js";

const emptyAsAbsent = (value: unknown): unknown => (value === "" ? undefined : value);

/** The node's configuration. Empty strings count as absent (as from an unset environment variable). */
export const NodeConfig = z.object({
  /** NATS server URL(s), comma-separated: the event log on JetStream (required unless a store is passed in). */
  nats: z.preprocess(emptyAsAbsent, z.string().min(1).optional()),
  /** NATS user and password (the node's user may only read the log: see slap nats-config). */
  ...natsConfigFields,
  /** JetStream stream of the log (default `SLAP_EVENTS`). */
  streamName: z.preprocess(emptyAsAbsent, z.string().regex(/^[A-Za-z0-9_-]{1,64}$/, "must be 1-64 characters of A-Z, a-z, 0-9, _ or -").optional()),
  /** The master's base URL. */
  master: z.url({ error: "must be the master's URL, like http://127.0.0.1:8080" }),
  /** This node's API token (the master's token file lists it with role node for this computer), or `tokenFile`. */
  token: z.preprocess(emptyAsAbsent, z.string().min(16, "must be at least 16 characters").optional()),
  /** The file holding the token (its first line), read at start. */
  tokenFile: z.preprocess(emptyAsAbsent, z.string().min(1).optional()),
  /** This computer's id. */
  computer: Token,
  /** How many partitions to format. */
  partitions: z.coerce.number({ error: "must be a number" }).int().min(1).max(10_000),
  /** The node's folder (partitions, software). */
  root: z.string().min(1),
  address: z.preprocess(emptyAsAbsent, z.union([z.ipv4(), z.ipv6()]).optional()),
  portBase: z.preprocess(emptyAsAbsent, z.coerce.number().int().min(1).max(65_535).optional()),
  /** Ports of each partition's block (default 100): partition N gets `portBase + N*portsPerPartition` on. */
  portsPerPartition: z.preprocess(emptyAsAbsent, z.coerce.number().int().min(1).max(65_535).optional()),
  /** `auto` (default): one unix user per partition when the node runs as root; `off`: none. */
  partitionUsers: z.preprocess(emptyAsAbsent, z.enum(["auto", "off"]).optional()),
  logLevel: z.preprocess(emptyAsAbsent, z.enum(["fatal", "error", "warn", "info", "debug", "trace", "silent"]).default("info")),
  /** How often the node tells the master it is alive, in ms (default 10 s; the master's `staleAfterMs` should be about 3 of them). */
  heartbeatMs: z.preprocess(emptyAsAbsent, z.coerce.number({ error: "must be a number of milliseconds" }).int().min(100).max(3_600_000).optional()),
  /** How long a profile's deploy (or destroy hook) may take, in ms (default 10 min). */
  profileTimeoutMs: z.preprocess(emptyAsAbsent, z.coerce.number({ error: "must be a number of milliseconds" }).int().min(100).max(86_400_000).optional()),
  /** How long a one-shot (`slap.run`) may run, in ms (default 10 min). */
  runTimeoutMs: z.preprocess(emptyAsAbsent, z.coerce.number({ error: "must be a number of milliseconds" }).int().min(100).max(86_400_000).optional()),
  /** How long a promise may take to hold, in ms (default 20 s). */
  promiseTimeoutMs: z.preprocess(emptyAsAbsent, z.coerce.number({ error: "must be a number of milliseconds" }).int().min(100).max(3_600_000).optional()),
});
export type NodeConfig = z.input<typeof NodeConfig>;

/**
 * The configuration from `NATS_URL`, `SLAP_STREAM`, `SLAP_MASTER`, `SLAP_TOKEN`, `SLAP_TOKEN_FILE`,
 * `SLAP_COMPUTER`, `SLAP_PARTITIONS`, `SLAP_ROOT`, `SLAP_ADDRESS`, `SLAP_PORT_BASE`,
 * `SLAP_PORTS_PER_PARTITION`, `SLAP_PARTITION_USERS`, `SLAP_HEARTBEAT_MS`,
 * `SLAP_PROFILE_TIMEOUT_MS`, `SLAP_RUN_TIMEOUT_MS`, `SLAP_PROMISE_TIMEOUT_MS`, `LOG_LEVEL`.
 */
export function configFromEnv(env: NodeJS.ProcessEnv = process.env): NodeConfig {
  return {
    nats: env.NATS_URL,
    natsUser: env.NATS_USER,
    natsPassword: env.NATS_PASSWORD,
    streamName: env.SLAP_STREAM,
    master: env.SLAP_MASTER ?? "",
    token: env.SLAP_TOKEN,
    tokenFile: env.SLAP_TOKEN_FILE,
    computer: env.SLAP_COMPUTER ?? "",
    partitions: env.SLAP_PARTITIONS ?? "",
    root: env.SLAP_ROOT ?? "",
    address: env.SLAP_ADDRESS,
    portBase: env.SLAP_PORT_BASE,
    portsPerPartition: env.SLAP_PORTS_PER_PARTITION,
    partitionUsers: env.SLAP_PARTITION_USERS,
    logLevel: env.LOG_LEVEL,
    heartbeatMs: env.SLAP_HEARTBEAT_MS,
    profileTimeoutMs: env.SLAP_PROFILE_TIMEOUT_MS,
    runTimeoutMs: env.SLAP_RUN_TIMEOUT_MS,
    promiseTimeoutMs: env.SLAP_PROMISE_TIMEOUT_MS,
  };
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
  const parsed = NodeConfig.safeParse(input);
  if (!parsed.success) throw new NodeConfigError(`invalid node configuration:\n${z.prettifyError(parsed.error)}`);
  const config = parsed.data;
  const token = config.token ?? (config.tokenFile === undefined ? undefined : await readToken(config.tokenFile));
  if (token === undefined) throw new NodeConfigError("invalid node configuration: token (SLAP_TOKEN) or tokenFile (SLAP_TOKEN_FILE) is required: the node's API token");
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
    ...(config.portBase === undefined ? {} : { portBase: config.portBase }),
    ...(config.portsPerPartition === undefined ? {} : { portsPerPartition: config.portsPerPartition }),
    ...(config.partitionUsers === undefined ? {} : { partitionUsers: config.partitionUsers }),
    ...(config.heartbeatMs === undefined ? {} : { heartbeatMs: config.heartbeatMs }),
    ...(config.profileTimeoutMs === undefined ? {} : { profileTimeoutMs: config.profileTimeoutMs }),
    ...(config.runTimeoutMs === undefined ? {} : { runTimeoutMs: config.runTimeoutMs }),
    ...(config.promiseTimeoutMs === undefined ? {} : { promiseTimeoutMs: config.promiseTimeoutMs }),
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
