/**
 * `slap`: the command line. `main(argv, io)` dispatches to one command and returns its exit
 * code; `run()` is the process entry (`bin/slap.mjs`). Every argument is parsed with zod; every
 * error is one line on stderr, never a stack trace: exit 64 for a usage error, 1 otherwise (`EXIT`).
 */
import { CliError, EXIT_HELP, UsageError, quoted, type Command, type Io } from "./args.js";
import { computersCommand, supplyCommand } from "./computers.js";
import { demoCommand } from "./demo.js";
import { eventsCommand } from "./events.js";
import { bangCommand, destroyCommand, instancesCommand, requestCommand, showCommand, startCommand, stopCommand } from "./instances.js";
import { allocatorCommand, masterCommand, nodeCommand } from "./services.js";
import { upCommand } from "./up.js";
import { clusterCommand } from "./cluster.js";
import { auditCommand } from "./audit.js";
import { tokenCommand } from "./token.js";
import { natsConfigCommand } from "./nats-config.js";
import cliPackage from "../package.json" with { type: "json" };

/** `slap --version`: the CLI package's version. */
export const VERSION: string = cliPackage.version;

/** In the order `slap --help` lists them. */
export const commands: readonly Command[] = [
  upCommand,
  clusterCommand,
  masterCommand,
  allocatorCommand,
  nodeCommand,
  supplyCommand,
  requestCommand,
  showCommand,
  stopCommand,
  startCommand,
  destroyCommand,
  instancesCommand,
  computersCommand,
  bangCommand,
  eventsCommand,
  auditCommand,
  tokenCommand,
  demoCommand,
  natsConfigCommand,
];

export function topHelp(): string {
  const width = Math.max(...commands.map((c) => c.name.length));
  return `usage: slap <command> [options]      (slap <command> --help for its options)

services:
${commands
  .slice(0, 5)
  .map((c) => `  ${c.name.padEnd(width)}  ${c.summary}`)
  .join("\n")}

client (talks to the master at --master URL, env SLAP_MASTER, default http://127.0.0.1:8080):
${commands
  .slice(5, -3)
  .map((c) => `  ${c.name.padEnd(width)}  ${c.summary}`)
  .join("\n")}

without a master:
${commands
  .slice(-3)
  .map((c) => `  ${c.name.padEnd(width)}  ${c.summary}`)
  .join("\n")}

environment: SLAP_MASTER, SLAP_TOKEN or SLAP_TOKEN_FILE (your API token), SLAP_CA, NATS_URL, SLAP_DATA,
PORT, HOST, LOG_LEVEL, SLAP_COMPUTER, SLAP_PARTITIONS, SLAP_ROOT, SLAP_PORT_BASE, SLAP_ADDRESS.

${EXIT_HELP}
slap --version prints the version.`;
}

/** Runs one command line; never throws. */
export async function main(argv: readonly string[], io: Io): Promise<number> {
  const [name, ...rest] = argv;
  if (name === undefined) return fail(io, undefined, new UsageError("no command given"));
  if (name === "--version" || name === "-V" || name === "version") {
    io.stdout.write(`slap ${VERSION}\n`);
    return 0;
  }
  if (name === "--help" || name === "-h" || name === "help") {
    const command = rest[0] === undefined ? undefined : commands.find((c) => c.name === rest[0]);
    if (rest[0] !== undefined && command === undefined) return fail(io, undefined, new UsageError(`unknown command ${quoted(rest[0])}`));
    io.stdout.write(`${command?.help ?? topHelp()}\n`);
    return 0;
  }
  const command = commands.find((c) => c.name === name);
  if (command === undefined) return fail(io, undefined, new UsageError(`unknown command ${quoted(name)}`));
  try {
    return await command.run(rest, io);
  } catch (error) {
    return fail(io, command, error);
  }
}

function fail(io: Io, command: Command | undefined, error: unknown): number {
  const who = command === undefined ? "slap" : `slap ${command.name}`;
  if (error instanceof UsageError) {
    const hint = command === undefined ? "slap --help" : `slap ${command.name} --help`;
    io.stderr.write(`${who}: ${oneLine(error.message)} (see ${hint})\n`);
    return error.exitCode;
  }
  if (error instanceof CliError) {
    io.stderr.write(`${who}: ${oneLine(error.message)}\n`);
    return error.exitCode;
  }
  const message = error instanceof Error ? `${error.name === "Error" ? "" : `${error.name}: `}${error.message}` : String(error);
  io.stderr.write(`${who}: ${oneLine(message)}\n`);
  return 1;
}

function oneLine(text: string): string {
  return text.replace(/\s*\n\s*/g, "; ");
}

/**
 * The process's `Io`: real env and streams; SIGINT, SIGTERM and SIGHUP (the terminal closed: the
 * cluster's children, in their own process groups, would not get it) abort `stopSignal()`, a
 * second one ends the process.
 */
export function processIo(): Io {
  let controller: AbortController | undefined;
  return {
    env: process.env,
    stdout: process.stdout,
    stderr: process.stderr,
    stopSignal() {
      if (controller === undefined) {
        const own = new AbortController();
        controller = own;
        for (const signal of ["SIGINT", "SIGTERM", "SIGHUP"] as const) {
          process.on(signal, () => {
            if (own.signal.aborted) process.exit(130);
            own.abort();
          });
        }
      }
      return controller.signal;
    },
  };
}

/**
 * The entry of `bin/slap.mjs`: runs `process.argv` and sets the exit code. A failure ends the
 * process once its output is written, even if something it opened (a half-started service's
 * connection) would keep it alive.
 */
export async function run(argv: readonly string[] = process.argv.slice(2)): Promise<void> {
  process.stdout.on("error", (error: NodeJS.ErrnoException) => {
    if (error.code === "EPIPE") process.exit(0);
  });
  const code = await main(argv, processIo());
  process.exitCode = code;
  if (code !== 0) process.stdout.write("", () => process.stderr.write("", () => process.exit(code)));
}
