/**
 * `slap master`, `slap allocator`, `slap node`: each service run in the foreground. Their flags,
 * variables, help and validation are the services' own configuration descriptions
 * (`MASTER_CONFIG`, `ALLOCATOR_CONFIG`, `NODE_CONFIG`): nothing here says what a setting takes.
 */
import { describeSettings, envNamesOf, usageOf } from "@slap/events";
import { ALLOCATOR_CONFIG, ALLOCATOR_SETTINGS } from "@slap/allocator";
import { MASTER_CONFIG, MASTER_SETTINGS } from "@slap/master";
import { NODE_CONFIG, NODE_SETTINGS } from "@slap/node";
import { CliError, HELP, printHelp, readSettings, settingsArgv, splitArgv, until, type Command, type Io } from "./args.js";

// ---------------------------------------------------------------------------------------------
// slap master
// ---------------------------------------------------------------------------------------------

/** The environment variables `slap master` reads: those of the master's settings. */
export const MASTER_ENV = envNamesOf(MASTER_SETTINGS);

/** The config `runMaster` gets: the master's own settings (`MASTER_CONFIG`), each flag first, then its variable, then its default. */
export function parseMasterArgs(argv: readonly string[], env: Io["env"]) {
  const split = splitArgv(settingsArgv(MASTER_SETTINGS), argv);
  if (split === HELP) return HELP;
  return readSettings(MASTER_CONFIG, split.values, env);
}

export const masterCommand: Command = {
  name: "master",
  summary: "run the master: the HTTP API over the event log",
  env: MASTER_ENV,
  help: `usage: slap master ${usageOf(MASTER_SETTINGS)}

Runs the master: it takes requests over HTTP (see services/master/API.md), appends events to the
log and answers from read models. Without --nats the log is the embedded one in DIR. Ctrl-C
(SIGINT) or SIGTERM stops it cleanly.

${describeSettings(MASTER_SETTINGS)}`,
  async run(argv, io) {
    const args = parseMasterArgs(argv, io.env);
    if (args === HELP) return printHelp(io, masterCommand);
    const [{ runMaster }, { dashboardOrNone, withAllocator }] = await Promise.all([import("@slap/master"), import("./alongside.js")]);
    const stop = io.stopSignal();
    // On the embedded log the master's process owns the store, so the allocator runs beside it; with NATS allocators are their own replicas.
    const running = await startService("master", async () =>
      runMaster(args, {
        ...(await dashboardOrNone((line) => io.stderr.write(`${line}\n`))),
        ...(args.nats === undefined ? { alongside: withAllocator } : {}),
      }),
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

/** The environment variables `slap allocator` reads: those of the allocator's settings. */
export const ALLOCATOR_ENV = envNamesOf(ALLOCATOR_SETTINGS);

/** The config `runAllocator` gets: the allocator's own settings (`ALLOCATOR_CONFIG`), each flag first, then its variable, then its default. */
export function parseAllocatorArgs(argv: readonly string[], env: Io["env"]) {
  const split = splitArgv(settingsArgv(ALLOCATOR_SETTINGS), argv);
  if (split === HELP) return HELP;
  return readSettings(ALLOCATOR_CONFIG, split.values, env);
}

export const allocatorCommand: Command = {
  name: "allocator",
  summary: "run an allocator: places requested instances on free partitions",
  env: ALLOCATOR_ENV,
  help: `usage: slap allocator ${usageOf(ALLOCATOR_SETTINGS)}

Runs an allocator: it follows the event log and places each requested instance on a free
partition of a computer that has its release installed. Ctrl-C (SIGINT) or SIGTERM stops it
cleanly.

${describeSettings(ALLOCATOR_SETTINGS)}`,
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

/** The environment variables `slap node` reads: those of the node's settings. */
export const NODE_ENV = envNamesOf(NODE_SETTINGS);

/** What `slap node` requires that `runNode` does without (a program may pass its store in). */
const NODE_REQUIRED = ["nats"] as const;

/**
 * The config `runNode` gets: the node's own settings (`NODE_CONFIG`), each flag first, then its
 * variable, then its default; `--token-file` wins over `SLAP_TOKEN`. The token itself is never a
 * flag (argv is visible to every local user); the file is read when the node starts.
 */
export function parseNodeArgs(argv: readonly string[], env: Io["env"]) {
  const split = splitArgv(settingsArgv(NODE_SETTINGS), argv);
  if (split === HELP) return HELP;
  return readSettings(NODE_CONFIG, split.values, env, { required: NODE_REQUIRED });
}

export const nodeCommand: Command = {
  name: "node",
  summary: "run a node agent: formats a computer, installs releases, runs its instances",
  env: NODE_ENV,
  help: `usage: slap node ${usageOf(NODE_SETTINGS, { required: NODE_REQUIRED })}

Runs the node agent of one computer: it registers the computer and its partitions, installs
the releases supplied to it, and deploys and supervises the instances placed on it (see
services/node/README.md). It follows the event log over NATS and writes through the master.
Ctrl-C (SIGINT) or SIGTERM stops it cleanly (its services are stopped).

${describeSettings(NODE_SETTINGS, { required: NODE_REQUIRED })}`,
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
