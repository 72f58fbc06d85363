import { z } from "zod";
import { CliError, HELP, fromEnv, printHelp, splitArgv, until, validate, type Command, type Io } from "./args.js";

const LogLevel = z.enum(["fatal", "error", "warn", "info", "debug", "trace", "silent"], {
  error: "must be one of fatal, error, warn, info, debug, trace, silent",
});

// ---------------------------------------------------------------------------------------------
// slap master
// ---------------------------------------------------------------------------------------------

const masterArgv = {
  options: { nats: { type: "string" }, data: { type: "string" }, port: { type: "string" }, host: { type: "string" } },
} as const;

const MasterArgs = z.object({
  nats: z.string().min(1).optional(),
  data: z.string().min(1),
  port: z.coerce.number({ error: "must be a port number" }).int().min(0).max(65_535),
  host: z.string().min(1),
  streamName: z.string().regex(/^[A-Za-z0-9_-]{1,64}$/, "must be 1-64 characters of A-Z, a-z, 0-9, _ or -").optional(),
  logLevel: LogLevel.optional(),
});

/** The config `runMaster` gets: flags first, then `NATS_URL`, `SLAP_DATA`, `PORT`, `HOST`, `LOG_LEVEL`, then defaults. */
export interface MasterArgs {
  nats?: string;
  streamName?: string;
  data: string;
  port: number;
  host: string;
  logLevel?: z.infer<typeof LogLevel>;
}

export function parseMasterArgs(argv: readonly string[], env: Io["env"]): MasterArgs | typeof HELP {
  const split = splitArgv(masterArgv, argv);
  if (split === HELP) return HELP;
  const { values } = split;
  const args = validate(
    MasterArgs,
    {
      nats: values.nats ?? fromEnv(env, "NATS_URL"),
      data: values.data ?? fromEnv(env, "SLAP_DATA") ?? "./data",
      port: values.port ?? fromEnv(env, "PORT") ?? "8080",
      host: values.host ?? fromEnv(env, "HOST") ?? "127.0.0.1",
      streamName: fromEnv(env, "SLAP_STREAM"),
      logLevel: fromEnv(env, "LOG_LEVEL"),
    },
    { nats: "--nats (or NATS_URL)", data: "--data (or SLAP_DATA)", port: "--port (or PORT)", host: "--host (or HOST)", streamName: "SLAP_STREAM", logLevel: "LOG_LEVEL" },
  );
  return withoutUndefined(args);
}

export const masterCommand: Command = {
  name: "master",
  summary: "run the master: the HTTP API over the event log",
  help: `usage: slap master [--nats URL] [--data DIR] [--port N] [--host H]

Runs the master: it takes requests over HTTP (see services/master/API.md), appends events to the
log and answers from read models. Without --nats the log is the embedded one in DIR. Ctrl-C
(SIGINT) or SIGTERM stops it cleanly.

options:
  --nats URL    NATS server(s) with JetStream: the event log (env NATS_URL; default: embedded log)
  --data DIR    the embedded log's folder (env SLAP_DATA, default ./data)
  --port N      HTTP port (env PORT, default 8080; 0 picks a free one)
  --host H      HTTP address (env HOST, default 127.0.0.1)

LOG_LEVEL (fatal … trace, silent) sets the log level; logs are JSON lines.`,
  async run(argv, io) {
    const args = parseMasterArgs(argv, io.env);
    if (args === HELP) return printHelp(io, masterCommand);
    const { runMaster } = await import("../main.js");
    const stop = io.stopSignal();
    const running = await startService("master", () => runMaster(args));
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
  data: z.string().min(1),
  replica: z.string().regex(/^[A-Za-z0-9_-]{1,64}$/, "must be 1-64 characters of A-Z, a-z, 0-9, _ or -").optional(),
  streamName: z.string().regex(/^[A-Za-z0-9_-]{1,64}$/, "must be 1-64 characters of A-Z, a-z, 0-9, _ or -").optional(),
  logLevel: LogLevel.optional(),
});

export interface AllocatorArgs {
  nats?: string;
  streamName?: string;
  data: string;
  replica?: string;
  logLevel?: z.infer<typeof LogLevel>;
}

export function parseAllocatorArgs(argv: readonly string[], env: Io["env"]): AllocatorArgs | typeof HELP {
  const split = splitArgv(allocatorArgv, argv);
  if (split === HELP) return HELP;
  const { values } = split;
  const args = validate(
    AllocatorArgs,
    {
      nats: values.nats ?? fromEnv(env, "NATS_URL"),
      data: values.data ?? fromEnv(env, "SLAP_DATA") ?? "./data",
      replica: values.replica ?? fromEnv(env, "ALLOCATOR_REPLICA"),
      streamName: fromEnv(env, "SLAP_STREAM"),
      logLevel: fromEnv(env, "LOG_LEVEL"),
    },
    { nats: "--nats (or NATS_URL)", data: "--data (or SLAP_DATA)", replica: "--replica (or ALLOCATOR_REPLICA)", streamName: "SLAP_STREAM", logLevel: "LOG_LEVEL" },
  );
  return withoutUndefined(args);
}

export const allocatorCommand: Command = {
  name: "allocator",
  summary: "run an allocator: places requested instances on free partitions",
  help: `usage: slap allocator [--nats URL] [--data DIR] [--replica NAME]

Runs an allocator: it follows the event log and places each requested instance on a free
partition of a computer that has its release installed. Ctrl-C (SIGINT) or SIGTERM stops it
cleanly.

options:
  --nats URL       NATS server(s) with JetStream: the event log (env NATS_URL; default: embedded log)
  --data DIR       the embedded log's folder, and the allocator's checkpoints (env SLAP_DATA, default ./data)
  --replica NAME   this replica's name, when several allocators run

LOG_LEVEL (fatal … trace, silent) sets the log level; logs are JSON lines.`,
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
  options: { nats: { type: "string" }, master: { type: "string" }, computer: { type: "string" }, partitions: { type: "string" }, root: { type: "string" } },
} as const;

const NodeArgs = z.object({
  nats: z.string().min(1, "is required: the event log's NATS URL"),
  master: z.url({ error: "must be the master's URL, like http://127.0.0.1:8080" }),
  computer: z.string({ error: "is required: this computer's id" }).regex(/^[A-Za-z0-9_-]{1,64}$/, "must be 1-64 characters of A-Z, a-z, 0-9, _ or -"),
  partitions: z.coerce.number({ error: "must be a number" }).int().min(1).max(10_000),
  root: z.string().min(1),
  streamName: z.string().regex(/^[A-Za-z0-9_-]{1,64}$/, "must be 1-64 characters of A-Z, a-z, 0-9, _ or -").optional(),
  logLevel: LogLevel.optional(),
});

/** The config `runNode` gets: flags first, then `NATS_URL`, `SLAP_MASTER`, `SLAP_COMPUTER`, `SLAP_PARTITIONS`, `SLAP_ROOT`, `LOG_LEVEL`. */
export interface NodeArgs {
  nats: string;
  master: string;
  computer: string;
  partitions: number;
  root: string;
  streamName?: string;
  logLevel?: z.infer<typeof LogLevel>;
}

export function parseNodeArgs(argv: readonly string[], env: Io["env"]): NodeArgs | typeof HELP {
  const split = splitArgv(nodeArgv, argv);
  if (split === HELP) return HELP;
  const { values } = split;
  const args = validate(
    NodeArgs,
    {
      nats: values.nats ?? fromEnv(env, "NATS_URL") ?? "",
      master: values.master ?? fromEnv(env, "SLAP_MASTER") ?? "http://127.0.0.1:8080",
      computer: values.computer ?? fromEnv(env, "SLAP_COMPUTER"),
      partitions: values.partitions ?? fromEnv(env, "SLAP_PARTITIONS") ?? "10",
      root: values.root ?? fromEnv(env, "SLAP_ROOT") ?? "./srv",
      streamName: fromEnv(env, "SLAP_STREAM"),
      logLevel: fromEnv(env, "LOG_LEVEL"),
    },
    {
      nats: "--nats (or NATS_URL)",
      master: "--master (or SLAP_MASTER)",
      computer: "--computer (or SLAP_COMPUTER)",
      partitions: "--partitions (or SLAP_PARTITIONS)",
      root: "--root (or SLAP_ROOT)",
      streamName: "SLAP_STREAM",
      logLevel: "LOG_LEVEL",
    },
  );
  return withoutUndefined(args);
}

export const nodeCommand: Command = {
  name: "node",
  summary: "run a node agent: formats a computer, installs releases, runs its instances",
  help: `usage: slap node --nats URL --computer ID [--master URL] [--partitions N] [--root DIR]

Runs the node agent of one computer: it registers the computer and its partitions, installs
the releases supplied to it, and deploys and supervises the instances placed on it (see
services/node/README.md). It follows the event log over NATS and writes through the master.
Ctrl-C (SIGINT) or SIGTERM stops it cleanly (its services are stopped).

options:
  --nats URL        NATS server(s) with JetStream: the event log (env NATS_URL; required)
  --master URL      the master (env SLAP_MASTER, default http://127.0.0.1:8080)
  --computer ID     this computer's id (env SLAP_COMPUTER; required)
  --partitions N    how many partitions to format (env SLAP_PARTITIONS, default 10)
  --root DIR        where partitions and software live (env SLAP_ROOT, default ./srv)

LOG_LEVEL (fatal … trace, silent) sets the log level; logs are JSON lines.`,
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
