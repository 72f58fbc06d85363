/**
 * Runs the node agent of one computer: `runNode(config)` starts the `Node`, which talks to the
 * master over HTTP only (its computer's desired state, its writes), and stops it cleanly on
 * SIGINT/SIGTERM (services stopped). Run directly (`tsx services/node/src/main.ts`) it reads its
 * configuration from the environment (`configFromEnv`).
 */
import { open, readFile } from "node:fs/promises";
import { resolve } from "node:path";
import { pathToFileURL } from "node:url";
import { ApiToken, configFromEnvOf, parseConfig, startService } from "@slap/events";
import { pino, type Logger } from "pino";
import { NODE_CONFIG, NODE_SETTINGS, type NodeConfig } from "./config.js";
import { Node } from "./shell/node.js";

/**
 * The configuration from the environment: each setting's variable (`SLAP_MASTER`,
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
  /** Stops the node (services stopped). Idempotent. */
  stop(): Promise<void>;
}

export interface RunNodeOptions {
  logger?: Logger;
  /** Stop on SIGINT/SIGTERM (default true). */
  handleSignals?: boolean;
}

/**
 * Parses the configuration, starts the node. Resolves once the computer is registered, its
 * desired state read and processing has begun.
 * @throws NodeConfigError on an invalid configuration; the master's error when it cannot be reached.
 */
export async function runNode(input: NodeConfig, options: RunNodeOptions = {}): Promise<RunningNode> {
  const parsed = parseConfig(NODE_CONFIG, input);
  if (!parsed.ok) throw new NodeConfigError(`invalid node configuration: ${parsed.issues.join("; ")}`);
  const { config } = parsed;
  // One of them is given (a rule of NODE_CONFIG).
  const token = config.token ?? (await readToken(config.tokenFile ?? ""));
  const ca = config.ca === undefined ? undefined : await readCa(config.ca);
  const logger = options.logger ?? pino({ level: config.logLevel, base: { service: "node" } }, pino.destination(2));
  const node = new Node({
    masterUrl: config.master,
    ...(ca === undefined ? {} : { masterCa: ca }),
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
    warmProfiles: config.warmProfiles,
    runTimeoutMs: config.runTimeoutMs,
    promiseTimeoutMs: config.promiseTimeoutMs,
    promiseIntervalMs: config.promiseIntervalMs,
    logger,
  });
  const stop = await startService(node, {
    logger,
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

/** The CA file's PEM text (`--ca`, `SLAP_CA`). */
async function readCa(path: string): Promise<string> {
  try {
    return await readFile(path, "utf8");
  } catch (error) {
    throw new NodeConfigError(`invalid node configuration: ca: cannot read ${JSON.stringify(path)}: ${(error as NodeJS.ErrnoException).code ?? String(error)}`, { cause: error });
  }
}
