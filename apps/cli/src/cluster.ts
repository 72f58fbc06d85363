/**
 * `slap cluster` (`npm run cluster`): the distributed system on one machine, every service its
 * own OS process over NATS JetStream — nats-server, a master, two allocator replicas and two
 * nodes — with the tutorial's pair deployed (the example webapp, which requests its kvdb).
 */
import { spawn, type ChildProcess } from "node:child_process";
import { constants } from "node:fs";
import { access, mkdir, readFile } from "node:fs/promises";
import { join, resolve } from "node:path";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";
import { z } from "zod";
import { Token, describeSettings, envNamesOf, logLevelSetting, usageOf, type ConfigDescription, type ConfigOf, type Settings } from "@slap/events";
import { NODE_SETTINGS, portsFitRule } from "@slap/node";
import { CliError, HELP, printHelp, readSettings, settingsArgv, splitArgv, until, type Command, type Io } from "./args.js";
import { MasterClient, type RequestBody } from "./client.js";
import { settle } from "./instances.js";
import { UP_REFERENCE, UP_RELEASES, answers } from "./up.js";
import { MASTER_SETTINGS, newToken, sha256Of, writeSecretFile, type TokenFile } from "@slap/master";
import { natsConfigFiles } from "./nats-config.js";

const REPO = fileURLToPath(new URL("../../../", import.meta.url));
const BIN = join(REPO, "bin", "slap.mjs");

/** Ports of one partition (the node's default block size). */
const PORTS_PER_PARTITION = Number(NODE_SETTINGS.portsPerPartition.default);
/** How long a child has to stop after SIGTERM before it gets SIGKILL. */
const STOP_TIMEOUT_MS = 10_000;
/** How long the services have to come up (nats, master, nodes registered). */
const START_TIMEOUT_MS = 60_000;
/** Allocators and nodes `slap cluster` runs. */
export const CLUSTER_ALLOCATORS = ["allocator-1", "allocator-2"] as const;
export const CLUSTER_NODES = 2;

/**
 * The flags of `slap cluster`: its own, and the master's and the node's settings it passes on to
 * its processes (same checks as `slap master` and `slap node`), narrowed for a cluster on one machine.
 */
const { env: _portBaseEnv, ...portBase } = NODE_SETTINGS.portBase;
const CLUSTER_SETTINGS = {
  dir: { schema: z.string().min(1), flag: "dir", placeholder: "DIR", default: "./cluster-data", help: "nats-server's store, allocators' checkpoints, nodes' roots" },
  port: { ...MASTER_SETTINGS.port, help: "the master's HTTP port" },
  nats: { schema: z.string().min(1).optional(), flag: "nats", placeholder: "URL", help: "use this NATS server (JetStream) instead of starting one" },
  partitions: {
    ...NODE_SETTINGS.partitions,
    // The webapp and its kvdb take one partition each; two nodes of up to 100 on one machine.
    schema: NODE_SETTINGS.partitions.schema.min(2, "must be at least 2: the webapp and its kvdb take one each").max(100, "must be at most 100"),
    help: "partitions per node",
  },
  portBase: { ...portBase, note: `node K gets the block from N + (K-1) * partitions * ${PORTS_PER_PARTITION}` },
  computerPrefix: {
    schema: Token.max(60, "must be 1-60 characters of A-Z, a-z, 0-9, _ or -"),
    flag: "computer-prefix",
    placeholder: "P",
    default: "COMP",
    help: "computer ids are P-1 and P-2",
  },
  logLevel: { ...logLevelSetting, help: "the services' log level" },
} as const satisfies Settings;

const CLUSTER_CONFIG: ConfigDescription<typeof CLUSTER_SETTINGS> = {
  settings: CLUSTER_SETTINGS,
  // The nodes' blocks one after the other: as one node with all their partitions.
  rules: [(config, name) => portsFitRule({ portBase: config.portBase, partitions: CLUSTER_NODES * config.partitions }, (key) => (key === "partitions" ? `${CLUSTER_NODES} × ${name(key)}` : name(key)))],
};
export type ClusterArgs = ConfigOf<typeof CLUSTER_SETTINGS>;

/** The environment variables `slap cluster` reads (its children get the whole environment): its settings', `NATS_URL` when it finds no nats-server, `PATH`. */
export const CLUSTER_ENV = [...envNamesOf(CLUSTER_SETTINGS), "NATS_URL", "PATH"] as const;

export function parseClusterArgs(argv: readonly string[], env: Io["env"]): ClusterArgs | typeof HELP {
  const split = splitArgv(settingsArgv(CLUSTER_SETTINGS), argv);
  if (split === HELP) return HELP;
  const args = readSettings(CLUSTER_CONFIG, split.values, env);
  return { ...args, nats: args.nats, dir: resolve(args.dir) };
}

/** Where nats-server is looked for: `PATH`, then the sbin folders Debian's package uses. */
export async function findNatsServer(path: string | undefined): Promise<string | undefined> {
  const folders = [...(path ?? "").split(":"), "/usr/sbin", "/usr/local/sbin"].filter((f) => f !== "");
  for (const folder of folders) {
    const candidate = join(folder, "nats-server");
    try {
      await access(candidate, constants.X_OK);
      return candidate;
    } catch {
      // not there
    }
  }
  return undefined;
}

interface Exit {
  code: number | null;
  signal: NodeJS.Signals | null;
}

interface Child {
  readonly name: string;
  readonly tier: number;
  readonly process: ChildProcess;
  readonly exited: Promise<Exit>;
}

const LEVELS: Readonly<Record<number, string>> = { 10: "TRACE", 20: "DEBUG", 30: "INFO", 40: "WARN", 50: "ERROR", 60: "FATAL" };
const QUIET_KEYS = new Set(["level", "time", "pid", "hostname", "service", "msg"]);

/** One log line of a child, for a person: pino JSON becomes `LEVEL msg key=value…`; anything else stays as it is. */
export function formatChildLine(name: string, line: string): string {
  let text = line;
  try {
    const parsed: unknown = JSON.parse(line);
    if (typeof parsed === "object" && parsed !== null && "msg" in parsed) {
      const record = parsed as Record<string, unknown>;
      const level = typeof record.level === "number" ? (LEVELS[record.level] ?? String(record.level)) : "";
      const fields = Object.entries(record)
        .filter(([key]) => !QUIET_KEYS.has(key))
        .map(([key, value]) => `${key}=${typeof value === "string" ? value : JSON.stringify(value)}`);
      text = [level, String(record.msg), ...fields].filter((part) => part !== "").join(" ");
    }
  } catch {
    // not JSON: as it is
  }
  return `${name.padEnd(11)} | ${text.length > 400 ? `${text.slice(0, 397)}...` : text}`;
}

/**
 * The cluster's processes: started in order, stopped in reverse order of their tier (nodes
 * first, so they stop their services while NATS is still there; nats-server last). A child
 * that exits while nobody asked it to aborts `died`.
 */
class Processes {
  private readonly children: Child[] = [];
  private stopping = false;
  readonly died = new AbortController();
  /** The first unexpected exit: who and how. */
  death: string | undefined;

  constructor(private readonly io: Io) {}

  start(name: string, tier: number, file: string, args: readonly string[], env: NodeJS.ProcessEnv, onLine?: (line: string) => void): Child {
    // Its own process group: a Ctrl-C in the terminal reaches only `slap cluster`, which stops
    // the children in order.
    const proc = spawn(file, args, { cwd: REPO, env, stdio: ["ignore", "pipe", "pipe"], detached: true });
    const exited = new Promise<Exit>((resolveExit) => {
      proc.once("exit", (code, signal) => resolveExit({ code, signal }));
      proc.once("error", (error) => {
        this.io.stderr.write(`${formatChildLine(name, `cannot start ${file}: ${error.message}`)}\n`);
        resolveExit({ code: -1, signal: null });
      });
    });
    for (const stream of [proc.stdout, proc.stderr]) {
      createInterface({ input: stream }).on("line", (line) => {
        this.io.stderr.write(`${formatChildLine(name, line)}\n`);
        onLine?.(line);
      });
    }
    const child: Child = { name, tier, process: proc, exited };
    this.children.push(child);
    void exited.then((exit) => {
      if (this.stopping || this.died.signal.aborted) return;
      this.death = `${name} exited unexpectedly (${exit.signal === null ? `code ${exit.code}` : exit.signal})`;
      this.died.abort();
    });
    return child;
  }

  pids(): number[] {
    return this.children.flatMap((c) => (c.process.pid === undefined ? [] : [c.process.pid]));
  }

  /** Stops every child, highest tier first; returns those that had to be killed. */
  async stopAll(): Promise<string[]> {
    this.stopping = true;
    const killed: string[] = [];
    const tiers = [...new Set(this.children.map((c) => c.tier))].sort((a, b) => b - a);
    for (const tier of tiers) {
      await Promise.all(
        this.children
          .filter((c) => c.tier === tier)
          .map(async (child) => {
            if (child.process.exitCode !== null || child.process.signalCode !== null) return;
            child.process.kill("SIGTERM");
            let timer: NodeJS.Timeout | undefined;
            const late = new Promise<"late">((r) => (timer = setTimeout(() => r("late"), STOP_TIMEOUT_MS)));
            const outcome = await Promise.race([child.exited, late]);
            clearTimeout(timer);
            if (outcome === "late") {
              killed.push(child.name);
              this.killGroup(child);
              await child.exited;
            }
          }),
      );
    }
    return killed;
  }

  /** Last resort when `slap cluster` itself exits: SIGKILL whatever still runs. */
  killAll(): void {
    for (const child of this.children) if (child.process.exitCode === null && child.process.signalCode === null) this.killGroup(child);
  }

  private killGroup(child: Child): void {
    const pid = child.process.pid;
    if (pid === undefined) return;
    try {
      process.kill(-pid, "SIGKILL");
    } catch {
      child.process.kill("SIGKILL");
    }
  }
}

/** Resolves with `value()` once it is defined, polling every `everyMs`, unless `signal` aborts or the time is up. */
async function eventually<T>(what: string, value: () => Promise<T | undefined> | T | undefined, signal: AbortSignal, timeoutMs = START_TIMEOUT_MS, everyMs = 100): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  while (!signal.aborted) {
    const found = await value();
    if (found !== undefined) return found;
    if (Date.now() > deadline) throw new CliError(`${what} did not happen within ${timeoutMs / 1000} s`);
    await new Promise((r) => setTimeout(r, everyMs));
  }
  throw new Interrupted();
}

class Interrupted extends Error {
  override name = "Interrupted";
}

async function natsPort(portsDir: string, pid: number): Promise<string | undefined> {
  try {
    const ports = JSON.parse(await readFile(join(portsDir, `nats-server_${pid}.ports`), "utf8")) as { nats?: string[] };
    return ports.nats?.[0];
  } catch {
    return undefined; // not written (completely) yet
  }
}

export const clusterCommand: Command = {
  name: "cluster",
  summary: "run nats-server, a master, 2 allocators and 2 nodes as processes; deploy the example webapp",
  env: CLUSTER_ENV,
  help: `usage: slap cluster ${usageOf(CLUSTER_SETTINGS)}

Runs the distributed system on this machine, every service its own process over NATS JetStream:
nats-server (when found on PATH or in /usr/sbin; otherwise the server at NATS_URL), a master,
two allocator replicas (${CLUSTER_ALLOCATORS.join(", ")}) and two nodes (P-1 and P-2). Their logs
are shown one line each, prefixed with their name (on stderr). It supplies the example releases
${UP_RELEASES.join(" and ")} to both computers, requests the webapp (${UP_REFERENCE}, which
requests its kvdb), prints progress, then the URLs of the master and of the running web app.
Ctrl-C (SIGINT) or SIGTERM stops every process (nodes first, nats-server last; SIGKILL after
${STOP_TIMEOUT_MS / 1000} s). If a process dies, the others are stopped and the exit code is 1.
The next start picks up the same state. Run it from anywhere: the processes run in the
repository root.

${describeSettings(CLUSTER_SETTINGS)}`,
  async run(argv, io) {
    const args = parseClusterArgs(argv, io.env);
    if (args === HELP) return printHelp(io, clusterCommand);
    const stop = io.stopSignal();
    const say = (line: string): void => {
      io.stdout.write(`[${new Date().toISOString().slice(11, 19)}] ${line}\n`);
    };
    const processes = new Processes(io);
    const killAll = (): void => processes.killAll();
    process.once("exit", killAll);
    const halt = AbortSignal.any([stop, processes.died.signal]);
    const env: NodeJS.ProcessEnv = { ...io.env, LOG_LEVEL: args.logLevel };
    // Each service's NATS user, when the cluster runs its own nats-server (see natsAuth below).
    const natsEnv = new Map<string, Record<string, string>>();
    // A node gets no NATS setting at all (it talks to the master only), not even one of the caller's environment.
    const nodeEnv = Object.fromEntries(Object.entries(env).filter(([key]) => !key.startsWith("NATS_")));
    const slap = (name: string, tier: number, command: readonly string[], onLine?: (line: string) => void): Child =>
      processes.start(name, tier, process.execPath, [BIN, ...command], command[0] === "node" ? nodeEnv : { ...env, ...natsEnv.get(name) }, onLine);
    let failure: Error | undefined;
    try {
      await mkdir(args.dir, { recursive: true });

      const computers = Array.from({ length: CLUSTER_NODES }, (_, k) => `${args.computerPrefix}-${k + 1}`);
      // NATS: the flag, else our own nats-server, else NATS_URL.
      let natsUrl = args.nats;
      if (natsUrl === undefined) {
        const binary = await findNatsServer(io.env.PATH);
        if (binary !== undefined) {
          const store = join(args.dir, "nats");
          await mkdir(store, { recursive: true });
          // One NATS user per service with its subject permissions (slap nats-config), new at every start.
          const auth = await natsAuth(join(args.dir, "nats-auth"));
          for (const [name, credentials] of auth.env) natsEnv.set(name, credentials);
          const nats = processes.start("nats", 0, binary, ["-c", auth.config, "-a", "127.0.0.1", "-p", "-1", "-js", "-sd", store, "--ports_file_dir", store], env);
          natsUrl = await eventually("nats-server listening", () => natsPort(store, nats.process.pid ?? 0), halt);
          say(`nats: ${natsUrl} (JetStream store in ${store}; one user per service, permissions in ${auth.config}; pid ${nats.process.pid})`);
        } else {
          natsUrl = io.env.NATS_URL;
          if (natsUrl === undefined || natsUrl === "") throw new CliError("nats-server is not on PATH (nor in /usr/sbin) and NATS_URL is not set: install nats-server or give --nats URL");
          say(`nats: ${natsUrl} (NATS_URL)`);
        }
      } else {
        say(`nats: ${natsUrl} (--nats)`);
      }

      const tokens = await writeClusterTokens(args.dir, computers);

      let listening: string | undefined;
      const master = slap("master", 1, ["master", "--nats", natsUrl, "--port", String(args.port), "--host", "127.0.0.1", "--tokens", tokens.file], (line) => {
        listening ??= /master listening on (\S+)/.exec(line)?.[1];
      });
      const masterUrl = await eventually("the master listening", () => listening, halt);
      if (!(await answers(`${masterUrl}/healthz`, halt))) {
        if (halt.aborted) throw new Interrupted();
        throw new CliError(`the master's ${masterUrl}/healthz does not answer`);
      }
      say(`master: ${masterUrl} (API, OpenAPI at ${masterUrl}/openapi.json; pid ${master.process.pid})`);
      // After the master: it creates the stream, which the allocators' NATS users may only use.
      for (const replica of CLUSTER_ALLOCATORS) {
        const allocator = slap(replica, 1, ["allocator", "--nats", natsUrl, "--replica", replica, "--data", join(args.dir, replica)]);
        say(`${replica}: pid ${allocator.process.pid}`);
      }

      computers.forEach((computer, k) => {
        const root = join(args.dir, `node-${k + 1}`);
        const portBase = args.portBase + k * args.partitions * PORTS_PER_PARTITION;
        const node = slap(`node-${k + 1}`, 2, ["node", "--master", masterUrl, "--token-file", tokens.nodeFiles[k]!, "--computer", computer, "--partitions", String(args.partitions), "--root", root, "--port-base", String(portBase)]);
        say(`node-${k + 1}: ${computer}, ${args.partitions} partitions in ${root}, ports ${portBase}-${portBase + args.partitions * PORTS_PER_PARTITION - 1} (pid ${node.process.pid})`);
      });

      say(`dashboard: ${masterUrl}/dashboard#token=${tokens.admin} (as admin)`);
      const client = new MasterClient({ master: masterUrl, token: tokens.admin });
      await eventually(
        "both computers registered",
        async () => {
          const known = new Set((await client.computers()).computers.map((c) => c.computerId));
          return computers.every((c) => known.has(c)) ? true : undefined;
        },
        halt,
        START_TIMEOUT_MS,
        200,
      );
      for (const computer of computers) for (const release of UP_RELEASES) await client.supply(computer, release, "available");
      say(`supplied ${UP_RELEASES.join(" and ")} to ${computers.join(" and ")}`);

      const body: RequestBody = {
        releaseUrl: UP_RELEASES[1],
        reference: UP_REFERENCE,
        softwareType: "default",
        parameters: { title: "slap cluster" },
        sla: {},
        shared: false,
        state: "started",
      };
      let last = "";
      const result = await settle(client, body, {
        timeoutMs: 120_000,
        stop: halt,
        onAnswer: (answer) => {
          const line = answer.status === "pending" ? `pending: ${answer.reason}` : answer.status;
          if (line !== last) say(`${UP_REFERENCE}: ${(last = line)}`);
        },
      });
      if (halt.aborted) throw new Interrupted();
      const url = result.answer.status === "ready" ? result.answer.connection.url : undefined;
      if (url !== undefined && (await answers(new URL("/healthz", url).href, halt))) say(`ready: the web app is at ${url}`);
      else if (!halt.aborted) say("the web app is not ready after 2 minutes; the cluster goes on (see the logs)");
      say(`master: ${masterUrl}   (SLAP_MASTER=${masterUrl} SLAP_TOKEN_FILE=${tokens.adminFile} npx slap computers)`);
      say("Ctrl-C stops everything");
      await until(halt);
    } catch (error) {
      if (!(error instanceof Interrupted)) failure = error instanceof Error ? error : new CliError(String(error));
    }
    say(processes.death === undefined ? "stopping" : `${processes.death}: stopping the others`);
    const killed = await processes.stopAll();
    process.off("exit", killAll);
    say(killed.length === 0 ? "stopped" : `stopped; ${killed.join(", ")} did not stop within ${STOP_TIMEOUT_MS / 1000} s: killed`);
    if (processes.death !== undefined) throw new CliError(processes.death);
    if (failure !== undefined) throw failure;
    return killed.length === 0 ? 0 : 1;
  },
};

/**
 * The cluster's API tokens, new at every start: an admin token and one per node, each in its own
 * file (mode 0600) in `dir`, and the master's token file listing their hashes.
 */
async function writeClusterTokens(dir: string, computers: readonly string[]) {
  const admin = newToken();
  const nodes = computers.map(() => newToken());
  const file: TokenFile = {
    tokens: [
      { role: "admin", name: "slap cluster", sha256: sha256Of(admin) },
      ...computers.map((computer, k) => ({ role: "node" as const, computer, name: `slap cluster node-${k + 1}`, sha256: sha256Of(nodes[k]!) })),
    ],
  };
  const adminFile = join(dir, "admin.token");
  const nodeFiles = computers.map((_, k) => join(dir, `node-${k + 1}.token`));
  await writeSecretFile(adminFile, `${admin}\n`);
  await Promise.all(nodes.map((token, k) => writeSecretFile(nodeFiles[k]!, `${token}\n`)));
  await writeSecretFile(join(dir, "tokens.json"), `${JSON.stringify(file, null, 2)}\n`);
  return { admin, adminFile, nodeFiles, file: join(dir, "tokens.json") };
}

/**
 * The NATS users of the cluster's own nats-server (as `slap nats-config` writes them, into `dir`,
 * 0700/0600): its configuration file, and each service's `NATS_USER`/`NATS_PASSWORD` by the
 * cluster's process names (master, allocator-N). The nodes have none: they talk to the master only.
 */
async function natsAuth(dir: string): Promise<{ config: string; env: Map<string, Record<string, string>> }> {
  const files = natsConfigFiles({ allocators: CLUSTER_ALLOCATORS.length });
  await mkdir(dir, { recursive: true, mode: 0o700 });
  for (const { name, text } of files) await writeSecretFile(join(dir, name), text);
  const credentials = (file: string): Record<string, string> => {
    const env = files.find((f) => f.name === file)?.env ?? {};
    return { NATS_USER: env.NATS_USER ?? "", NATS_PASSWORD: env.NATS_PASSWORD ?? "" };
  };
  const env = new Map<string, Record<string, string>>([
    ["master", credentials("master.env")],
    ...CLUSTER_ALLOCATORS.map((name): [string, Record<string, string>] => [name, credentials(`${name}.env`)]),
  ]);
  return { config: join(dir, "nats.conf"), env };
}
