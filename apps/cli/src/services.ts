import { z } from "zod";
import { natsConfigFields } from "@slap/eventstore-jetstream";
import { CliError, HELP, UsageError, envReader, printHelp, splitArgv, until, validate, type Command, type Io } from "./args.js";

const LogLevel = z.enum(["fatal", "error", "warn", "info", "debug", "trace", "silent"], {
  error: "must be one of fatal, error, warn, info, debug, trace, silent",
});

// ---------------------------------------------------------------------------------------------
// slap master
// ---------------------------------------------------------------------------------------------

const masterArgv = {
  options: { nats: { type: "string" }, data: { type: "string" }, port: { type: "string" }, host: { type: "string" }, tokens: { type: "string" } },
} as const;

const MasterArgs = z.object({
  nats: z.string().min(1).optional(),
  staleAfterMs: z.coerce.number({ error: "must be a number of milliseconds" }).int().min(1).max(86_400_000).optional(),
  ...natsConfigFields,
  tokens: z.string().min(1).optional(),
  data: z.string().min(1),
  port: z.coerce.number({ error: "must be a port number" }).int().min(0).max(65_535),
  host: z.string().min(1),
  streamName: z.string().regex(/^[A-Za-z0-9_-]{1,64}$/, "must be 1-64 characters of A-Z, a-z, 0-9, _ or -").optional(),
  logLevel: LogLevel.optional(),
});

/** The config `runMaster` gets: flags first, then `NATS_URL`, `SLAP_DATA`, `PORT`, `HOST`, `LOG_LEVEL`, then defaults. */
export interface MasterArgs {
  /** How long a computer may stay silent before it is shown unresponsive. */
  staleAfterMs?: number;
  /** NATS credentials (env only: a password is never a flag) and the stream's replicas when created. */
  natsUser?: string;
  natsPassword?: string;
  replicas?: 1 | 3 | 5;
  nats?: string;
  tokens?: string;
  streamName?: string;
  data: string;
  port: number;
  host: string;
  logLevel?: z.infer<typeof LogLevel>;
}

/** The environment variables `slap master` reads. */
export const MASTER_ENV = ["NATS_URL", "NATS_USER", "NATS_PASSWORD", "SLAP_REPLICAS", "SLAP_STALE_AFTER_MS", "SLAP_DATA", "PORT", "HOST", "SLAP_TOKENS", "SLAP_STREAM", "LOG_LEVEL"] as const;

export function parseMasterArgs(argv: readonly string[], env: Io["env"]): MasterArgs | typeof HELP {
  const split = splitArgv(masterArgv, argv);
  if (split === HELP) return HELP;
  const { values } = split;
  const fromEnv = envReader(env, MASTER_ENV);
  const args = validate(
    MasterArgs,
    {
      nats: values.nats ?? fromEnv("NATS_URL"),
      natsUser: fromEnv("NATS_USER"),
      natsPassword: fromEnv("NATS_PASSWORD"),
      replicas: fromEnv("SLAP_REPLICAS"),
      staleAfterMs: fromEnv("SLAP_STALE_AFTER_MS"),
      data: values.data ?? fromEnv("SLAP_DATA") ?? "./data",
      port: values.port ?? fromEnv("PORT") ?? "8080",
      host: values.host ?? fromEnv("HOST") ?? "127.0.0.1",
      tokens: values.tokens ?? fromEnv("SLAP_TOKENS"),
      streamName: fromEnv("SLAP_STREAM"),
      logLevel: fromEnv("LOG_LEVEL"),
    },
    {
      nats: "--nats (or NATS_URL)", natsUser: "NATS_USER", natsPassword: "NATS_PASSWORD", replicas: "SLAP_REPLICAS",
      staleAfterMs: "SLAP_STALE_AFTER_MS",
      data: "--data (or SLAP_DATA)",
      port: "--port (or PORT)",
      host: "--host (or HOST)",
      tokens: "--tokens (or SLAP_TOKENS)",
      streamName: "SLAP_STREAM",
      logLevel: "LOG_LEVEL",
    },
  );
  bothOrNeither(args);
  return withoutUndefined(args);
}

export const masterCommand: Command = {
  name: "master",
  summary: "run the master: the HTTP API over the event log",
  env: MASTER_ENV,
  help: `usage: slap master [--nats URL] [--data DIR] [--port N] [--host H] [--tokens FILE]

Runs the master: it takes requests over HTTP (see services/master/API.md), appends events to the
log and answers from read models. Without --nats the log is the embedded one in DIR. Ctrl-C
(SIGINT) or SIGTERM stops it cleanly.

options:
  --nats URL    NATS server(s) with JetStream: the event log (env NATS_URL; default: embedded log)
  --data DIR    the embedded log's folder (env SLAP_DATA, default ./data)
  --port N      HTTP port (env PORT, default 8080; 0 picks a free one)
  --host H      HTTP address (env HOST, default 127.0.0.1)
  --tokens FILE the API tokens it accepts (env SLAP_TOKENS, default DIR/tokens.json; created
                at first start with one admin token, written to DIR/admin.token, mode 0600)

NATS_USER and NATS_PASSWORD log in to NATS (see slap nats-config); SLAP_REPLICAS (1, 3, 5) sets
the replicas of the stream when it is created. LOG_LEVEL (fatal … trace, silent) sets the log
level; logs are JSON lines.`,
  async run(argv, io) {
    const args = parseMasterArgs(argv, io.env);
    if (args === HELP) return printHelp(io, masterCommand);
    const [{ runMaster }, { dashboardFiles }, { withAllocator }] = await Promise.all([import("@slap/master"), import("@slap/dashboard"), import("./alongside.js")]);
    const stop = io.stopSignal();
    // On the embedded log the master's process owns the store, so the allocator runs beside it; with NATS allocators are their own replicas.
    const running = await startService("master", async () =>
      runMaster(args, { dashboard: await dashboardFiles(), ...(args.nats === undefined ? { alongside: withAllocator } : {}) }),
    );
    io.stderr.write(`master listening on ${running.url} (Ctrl-C stops)\n`);
    await until(stop);
    await running.stop();
    return 0;
  },
};

// ---------------------------------------------------------------------------------------------
// slap allocator
// ---------------------------------------------------------------------------------------------

const allocatorArgv = {
  options: { nats: { type: "string" }, data: { type: "string" }, replica: { type: "string" } },
} as const;

const AllocatorArgs = z.object({
  nats: z.string().min(1).optional(),
  ...natsConfigFields,
  data: z.string().min(1),
  replica: z.string().regex(/^[A-Za-z0-9_-]{1,64}$/, "must be 1-64 characters of A-Z, a-z, 0-9, _ or -").optional(),
  streamName: z.string().regex(/^[A-Za-z0-9_-]{1,64}$/, "must be 1-64 characters of A-Z, a-z, 0-9, _ or -").optional(),
  logLevel: LogLevel.optional(),
});

export interface AllocatorArgs {
  /** NATS credentials (env only: a password is never a flag) and the stream's replicas when created. */
  natsUser?: string;
  natsPassword?: string;
  replicas?: 1 | 3 | 5;
  nats?: string;
  streamName?: string;
  data: string;
  replica?: string;
  logLevel?: z.infer<typeof LogLevel>;
}

/** The environment variables `slap allocator` reads. */
export const ALLOCATOR_ENV = ["NATS_URL", "NATS_USER", "NATS_PASSWORD", "SLAP_REPLICAS", "SLAP_DATA", "ALLOCATOR_REPLICA", "SLAP_STREAM", "LOG_LEVEL"] as const;

export function parseAllocatorArgs(argv: readonly string[], env: Io["env"]): AllocatorArgs | typeof HELP {
  const split = splitArgv(allocatorArgv, argv);
  if (split === HELP) return HELP;
  const { values } = split;
  const fromEnv = envReader(env, ALLOCATOR_ENV);
  const args = validate(
    AllocatorArgs,
    {
      nats: values.nats ?? fromEnv("NATS_URL"),
      natsUser: fromEnv("NATS_USER"),
      natsPassword: fromEnv("NATS_PASSWORD"),
      replicas: fromEnv("SLAP_REPLICAS"),
      data: values.data ?? fromEnv("SLAP_DATA") ?? "./data",
      replica: values.replica ?? fromEnv("ALLOCATOR_REPLICA"),
      streamName: fromEnv("SLAP_STREAM"),
      logLevel: fromEnv("LOG_LEVEL"),
    },
    { nats: "--nats (or NATS_URL)", natsUser: "NATS_USER", natsPassword: "NATS_PASSWORD", replicas: "SLAP_REPLICAS", data: "--data (or SLAP_DATA)", replica: "--replica (or ALLOCATOR_REPLICA)", streamName: "SLAP_STREAM", logLevel: "LOG_LEVEL" },
  );
  bothOrNeither(args);
  return withoutUndefined(args);
}

export const allocatorCommand: Command = {
  name: "allocator",
  summary: "run an allocator: places requested instances on free partitions",
  env: ALLOCATOR_ENV,
  help: `usage: slap allocator [--nats URL] [--data DIR] [--replica NAME]

Runs an allocator: it follows the event log and places each requested instance on a free
partition of a computer that has its release installed. Ctrl-C (SIGINT) or SIGTERM stops it
cleanly.

options:
  --nats URL       NATS server(s) with JetStream: the event log (env NATS_URL; default: embedded log)
  --data DIR       the embedded log's folder, and the allocator's checkpoints (env SLAP_DATA, default ./data)
  --replica NAME   this replica's name, when several allocators run

NATS_USER and NATS_PASSWORD log in to NATS (see slap nats-config); SLAP_REPLICAS (1, 3, 5) sets
the replicas of the stream when it is created. LOG_LEVEL (fatal … trace, silent) sets the log
level; logs are JSON lines.`,
  async run(argv, io) {
    const args = parseAllocatorArgs(argv, io.env);
    if (args === HELP) return printHelp(io, allocatorCommand);
    const { runAllocator } = await import("@slap/allocator");
    const stop = io.stopSignal();
    const running = await startService("allocator", () => runAllocator(args));
    io.stderr.write(`allocator running${args.replica === undefined ? "" : ` (replica ${args.replica})`} (Ctrl-C stops)\n`);
    await until(stop);
    await running.stop();
    return 0;
  },
};

// ---------------------------------------------------------------------------------------------
// slap node
// ---------------------------------------------------------------------------------------------

const nodeArgv = {
  options: {
    nats: { type: "string" },
    master: { type: "string" },
    computer: { type: "string" },
    partitions: { type: "string" },
    root: { type: "string" },
    "port-base": { type: "string" },
    "ports-per-partition": { type: "string" },
    address: { type: "string" },
    "token-file": { type: "string" },
  },
} as const;

const NodeArgs = z.object({
  nats: z.string().min(1, "is required: the event log's NATS URL"),
  ...natsConfigFields,
  token: z.string().min(16, "must be at least 16 characters").optional(),
  tokenFile: z.string().min(1).optional(),
  master: z.url({ error: "must be the master's URL, like http://127.0.0.1:8080" }),
  computer: z.string({ error: "is required: this computer's id" }).regex(/^[A-Za-z0-9_-]{1,64}$/, "must be 1-64 characters of A-Z, a-z, 0-9, _ or -"),
  partitions: z.coerce.number({ error: "must be a number" }).int().min(1).max(10_000),
  root: z.string().min(1),
  portBase: z.coerce.number({ error: "must be a port number" }).int().min(1_024).max(65_535).optional(),
  portsPerPartition: z.coerce.number({ error: "must be a number" }).int().min(1).max(65_535).optional(),
  address: z.ipv4({ error: "must be an IPv4 address" }).optional(),
  streamName: z.string().regex(/^[A-Za-z0-9_-]{1,64}$/, "must be 1-64 characters of A-Z, a-z, 0-9, _ or -").optional(),
  partitionUsers: z.enum(["auto", "off"], { error: "must be auto or off" }).optional(),
  heartbeatMs: z.coerce.number({ error: "must be a number of milliseconds" }).int().min(100).max(86_400_000).optional(),
  profileTimeoutMs: z.coerce.number({ error: "must be a number of milliseconds" }).int().min(100).max(86_400_000).optional(),
  runTimeoutMs: z.coerce.number({ error: "must be a number of milliseconds" }).int().min(100).max(86_400_000).optional(),
  promiseTimeoutMs: z.coerce.number({ error: "must be a number of milliseconds" }).int().min(100).max(86_400_000).optional(),
  logLevel: LogLevel.optional(),
});

/** The environment variables `slap node` reads. */
export const NODE_ENV = [
  "NATS_URL",
  "NATS_USER",
  "NATS_PASSWORD",
  "SLAP_MASTER",
  "SLAP_TOKEN",
  "SLAP_TOKEN_FILE",
  "SLAP_COMPUTER",
  "SLAP_PARTITIONS",
  "SLAP_ROOT",
  "SLAP_PORT_BASE",
  "SLAP_PORTS_PER_PARTITION",
  "SLAP_ADDRESS",
  "SLAP_STREAM",
  "SLAP_PARTITION_USERS",
  "SLAP_HEARTBEAT_MS",
  "SLAP_PROFILE_TIMEOUT_MS",
  "SLAP_RUN_TIMEOUT_MS",
  "SLAP_PROMISE_TIMEOUT_MS",
  "LOG_LEVEL",
] as const;

/** The config `runNode` gets: flags first, then the `NODE_ENV` variables. */
export interface NodeArgs {
  /** NATS credentials (env only: a password is never a flag) and the stream's replicas when created. */
  natsUser?: string;
  natsPassword?: string;
  replicas?: 1 | 3 | 5;
  nats: string;
  /** The node's API token, or the file holding it (read when the node starts). */
  token?: string;
  tokenFile?: string;
  master: string;
  computer: string;
  partitions: number;
  root: string;
  portBase?: number;
  portsPerPartition?: number;
  address?: string;
  streamName?: string;
  partitionUsers?: "auto" | "off";
  heartbeatMs?: number;
  profileTimeoutMs?: number;
  runTimeoutMs?: number;
  promiseTimeoutMs?: number;
  logLevel?: z.infer<typeof LogLevel>;
}

export function parseNodeArgs(argv: readonly string[], env: Io["env"]): NodeArgs | typeof HELP {
  const split = splitArgv(nodeArgv, argv);
  if (split === HELP) return HELP;
  const { values } = split;
  const fromEnv = envReader(env, NODE_ENV);
  const args = validate(
    NodeArgs,
    {
      nats: values.nats ?? fromEnv("NATS_URL") ?? "",
      natsUser: fromEnv("NATS_USER"),
      natsPassword: fromEnv("NATS_PASSWORD"),
      master: values.master ?? fromEnv("SLAP_MASTER") ?? "http://127.0.0.1:8080",
      // The flag wins over the environment, as everywhere: --token-file, then SLAP_TOKEN, then SLAP_TOKEN_FILE.
      token: values["token-file"] === undefined ? fromEnv("SLAP_TOKEN") : undefined,
      tokenFile: values["token-file"] ?? fromEnv("SLAP_TOKEN_FILE"),
      computer: values.computer ?? fromEnv("SLAP_COMPUTER"),
      partitions: values.partitions ?? fromEnv("SLAP_PARTITIONS") ?? "10",
      root: values.root ?? fromEnv("SLAP_ROOT") ?? "./srv",
      portBase: values["port-base"] ?? fromEnv("SLAP_PORT_BASE"),
      portsPerPartition: values["ports-per-partition"] ?? fromEnv("SLAP_PORTS_PER_PARTITION"),
      address: values.address ?? fromEnv("SLAP_ADDRESS"),
      streamName: fromEnv("SLAP_STREAM"),
      partitionUsers: fromEnv("SLAP_PARTITION_USERS"),
      heartbeatMs: fromEnv("SLAP_HEARTBEAT_MS"),
      profileTimeoutMs: fromEnv("SLAP_PROFILE_TIMEOUT_MS"),
      runTimeoutMs: fromEnv("SLAP_RUN_TIMEOUT_MS"),
      promiseTimeoutMs: fromEnv("SLAP_PROMISE_TIMEOUT_MS"),
      logLevel: fromEnv("LOG_LEVEL"),
    },
    {
      nats: "--nats (or NATS_URL)", natsUser: "NATS_USER", natsPassword: "NATS_PASSWORD", replicas: "SLAP_REPLICAS",
      master: "--master (or SLAP_MASTER)",
      token: "SLAP_TOKEN",
      tokenFile: "--token-file (or SLAP_TOKEN_FILE)",
      computer: "--computer (or SLAP_COMPUTER)",
      partitions: "--partitions (or SLAP_PARTITIONS)",
      root: "--root (or SLAP_ROOT)",
      portBase: "--port-base (or SLAP_PORT_BASE)",
      portsPerPartition: "--ports-per-partition (or SLAP_PORTS_PER_PARTITION)",
      address: "--address (or SLAP_ADDRESS)",
      streamName: "SLAP_STREAM",
      partitionUsers: "SLAP_PARTITION_USERS",
      heartbeatMs: "SLAP_HEARTBEAT_MS",
      profileTimeoutMs: "SLAP_PROFILE_TIMEOUT_MS",
      runTimeoutMs: "SLAP_RUN_TIMEOUT_MS",
      promiseTimeoutMs: "SLAP_PROMISE_TIMEOUT_MS",
      logLevel: "LOG_LEVEL",
    },
  );
  // The token itself is never a flag (argv is visible to every local user); the file is read when the node starts.
  if (args.token === undefined && args.tokenFile === undefined) throw new UsageError("the node's API token is required: SLAP_TOKEN, or --token-file (or SLAP_TOKEN_FILE) naming the file that holds it");
  bothOrNeither(args);
  return withoutUndefined(args);
}

export const nodeCommand: Command = {
  name: "node",
  summary: "run a node agent: formats a computer, installs releases, runs its instances",
  env: NODE_ENV,
  help: `usage: slap node --nats URL --computer ID [--token-file FILE] [--master URL] [--partitions N] [--root DIR] [--port-base N] [--address IP]

Runs the node agent of one computer: it registers the computer and its partitions, installs
the releases supplied to it, and deploys and supervises the instances placed on it (see
services/node/README.md). It follows the event log over NATS and writes through the master.
Ctrl-C (SIGINT) or SIGTERM stops it cleanly (its services are stopped).

options:
  --nats URL        NATS server(s) with JetStream: the event log (env NATS_URL; required)
  --master URL      the master (env SLAP_MASTER, default http://127.0.0.1:8080)
  --computer ID     this computer's id (env SLAP_COMPUTER; required)
  --token-file FILE the file holding this node's API token (env SLAP_TOKEN_FILE), or the
                    token itself in env SLAP_TOKEN (required): the master's token file lists it
                    with role node for this computer
  --partitions N    how many partitions to format (env SLAP_PARTITIONS, default 10)
  --root DIR        where partitions and software live (env SLAP_ROOT, default ./srv)
  --port-base N     first port of the partitions' port blocks, 100 per partition (env
                    SLAP_PORT_BASE, default 20000): nodes sharing a host need distinct ranges
  --ports-per-partition N
                    the size of each partition's port block (env SLAP_PORTS_PER_PARTITION,
                    default 100): the last port, base + partitions * N - 1, must be <= 65535
  --address IP      the address the partitions' services listen on and publish (env
                    SLAP_ADDRESS, default 127.0.0.1): the host's address when nodes are apart

SLAP_PARTITION_USERS=off runs every partition as the node's user (default auto: one unix user
per partition when the node runs as root). SLAP_HEARTBEAT_MS (default 10000) paces the node's
heartbeats to the master; SLAP_PROFILE_TIMEOUT_MS and SLAP_RUN_TIMEOUT_MS (default 600000) and
SLAP_PROMISE_TIMEOUT_MS (default 20000) bound a profile, a one-shot and a promise.

NATS_USER and NATS_PASSWORD log in to NATS (see slap nats-config); SLAP_REPLICAS (1, 3, 5) sets
the replicas of the stream when it is created. LOG_LEVEL (fatal … trace, silent) sets the log
level; logs are JSON lines.`,
  async run(argv, io) {
    const args = parseNodeArgs(argv, io.env);
    if (args === HELP) return printHelp(io, nodeCommand);
    const { runNode } = await import("@slap/node");
    const stop = io.stopSignal();
    const running = await startService("node", () => runNode(args, { handleSignals: false }));
    io.stderr.write(`node ${args.computer} running with ${args.partitions} partitions in ${args.root} (Ctrl-C stops)\n`);
    await until(stop);
    await running.stop();
    return 0;
  },
};

/** NATS_USER and NATS_PASSWORD go together. */
function bothOrNeither(args: { natsUser?: string | undefined; natsPassword?: string | undefined }): void {
  if ((args.natsUser === undefined) !== (args.natsPassword === undefined)) throw new UsageError("NATS_USER and NATS_PASSWORD: set both or neither");
}

/** Starts a service; a failure to start (the log is locked, NATS unreachable, the port taken) is one line, exit 1. */
async function startService<T>(name: string, start: () => Promise<T>): Promise<T> {
  try {
    return await start();
  } catch (error) {
    throw new CliError(`the ${name} could not start: ${error instanceof Error ? error.message : String(error)}`, 1, { cause: error });
  }
}

type Defined<T> = { [K in keyof T]: Exclude<T[K], undefined> };

/** Drops the keys whose value is undefined: an absent option stays absent (exactOptionalPropertyTypes). */
function withoutUndefined<T extends object>(value: T): Defined<T> {
  return Object.fromEntries(Object.entries(value).filter(([, v]) => v !== undefined)) as Defined<T>;
}
