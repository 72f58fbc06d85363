/**
 * `slap master`, `slap allocator`, `slap node`: each service run in the foreground. Their flags,
 * variables, help and validation are the services' own configuration descriptions
 * (`MASTER_CONFIG`, `ALLOCATOR_CONFIG`, `NODE_CONFIG`): nothing here says what a setting takes.
 */
import { describeSettings, envNamesOf, usageOf, type ConfigDescription, type ConfigOf, type ReadConfigOptions, type Settings } from "@slap/events";
import { ALLOCATOR_CONFIG, ALLOCATOR_SETTINGS } from "@slap/allocator";
import { MASTER_CONFIG, MASTER_SETTINGS } from "@slap/master";
import { NODE_CONFIG, NODE_SETTINGS } from "@slap/node";
import { CliError, HELP, printHelp, readSettings, settingsArgv, splitArgv, until, type Command, type Io, type Present } from "./args.js";

// ---------------------------------------------------------------------------------------------
// slap master
// ---------------------------------------------------------------------------------------------

/** The environment variables `slap master` reads: those of the master's settings. */
export const MASTER_ENV = envNamesOf(MASTER_SETTINGS);

/** The config `runMaster` gets: the master's own settings (`MASTER_CONFIG`), each flag first, then its variable, then its default. */
export const parseMasterArgs = argsOf(MASTER_CONFIG);

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
    // On the embedded log the master's process owns the store, so the allocator runs beside it; with NATS allocators are their own replicas.
    return inForeground(
      io,
      "master",
      async () =>
        runMaster(args, {
          ...(await dashboardOrNone((line) => io.stderr.write(`${line}\n`))),
          ...(args.nats === undefined ? { alongside: withAllocator } : {}),
        }),
      (running) => `master listening on ${running.url}`,
    );
  },
};

// ---------------------------------------------------------------------------------------------
// slap allocator
// ---------------------------------------------------------------------------------------------

/** The environment variables `slap allocator` reads: those of the allocator's settings. */
export const ALLOCATOR_ENV = envNamesOf(ALLOCATOR_SETTINGS);

/** The config `runAllocator` gets: the allocator's own settings (`ALLOCATOR_CONFIG`), each flag first, then its variable, then its default. */
export const parseAllocatorArgs = argsOf(ALLOCATOR_CONFIG);

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
    return inForeground(io, "allocator", () => runAllocator(args), () => `allocator running${args.replica === undefined ? "" : ` (replica ${args.replica})`}`);
  },
};

// ---------------------------------------------------------------------------------------------
// slap node
// ---------------------------------------------------------------------------------------------

/** The environment variables `slap node` reads: those of the node's settings. */
export const NODE_ENV = envNamesOf(NODE_SETTINGS);

/**
 * The config `runNode` gets: the node's own settings (`NODE_CONFIG`), each flag first, then its
 * variable, then its default; `--token-file` wins over `SLAP_TOKEN`. The token itself is never a
 * flag (argv is visible to every local user); the file is read when the node starts.
 */
export const parseNodeArgs = argsOf(NODE_CONFIG);

export const nodeCommand: Command = {
  name: "node",
  summary: "run a node agent: formats a computer, installs releases, runs its instances",
  env: NODE_ENV,
  help: `usage: slap node ${usageOf(NODE_SETTINGS)}

Runs the node agent of one computer: it registers the computer and its partitions, installs
the releases supplied to it, and deploys and supervises the instances placed on it (see
services/node/README.md). It talks to the master only, over HTTP: it reads its computer's
desired state there (a blocking query) and writes there; it needs no NATS credentials.
Ctrl-C (SIGINT) or SIGTERM stops it cleanly (its services are stopped).

${describeSettings(NODE_SETTINGS)}`,
  async run(argv, io) {
    const args = parseNodeArgs(argv, io.env);
    if (args === HELP) return printHelp(io, nodeCommand);
    const { runNode } = await import("@slap/node");
    return inForeground(io, "node", () => runNode(args, { handleSignals: false }), () => `node ${args.computer} running with ${args.partitions} partitions in ${args.root}`);
  },
};

/** A service's command-line parser: `--help`, or its configuration read from its own description (`readSettings`). */
function argsOf<S extends Settings>(description: ConfigDescription<S>, options: ReadConfigOptions<S> = {}) {
  return (argv: readonly string[], env: Io["env"]): typeof HELP | Present<ConfigOf<S>> => {
    const split = splitArgv(settingsArgv(description.settings), argv);
    if (split === HELP) return HELP;
    return readSettings(description, split.values, env, options);
  };
}

/**
 * Runs a service in the foreground until Ctrl-C (SIGINT) or SIGTERM, saying once it runs; a
 * failure to start (the log is locked, NATS unreachable, the port taken) is one line, exit 1.
 */
async function inForeground<T extends { stop(): Promise<void> }>(io: Io, name: string, start: () => Promise<T>, started: (running: T) => string): Promise<number> {
  const stop = io.stopSignal();
  let running: T;
  try {
    running = await start();
  } catch (error) {
    throw new CliError(`the ${name} could not start: ${error instanceof Error ? error.message : String(error)}`, 1, { cause: error });
  }
  io.stderr.write(`${started(running)} (Ctrl-C stops)\n`);
  await until(stop);
  await running.stop();
  return 0;
}
