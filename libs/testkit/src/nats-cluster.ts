import { spawn, type ChildProcess } from "node:child_process";
import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { accepts } from "./nats-server.js";
import { freePortBlock } from "./ports.js";

/** One server of a test cluster. */
export interface ClusterServer {
  /** `server_name`, also the name JetStream reports as a stream's leader or replica. */
  readonly name: string;
  readonly url: string;
  readonly port: number;
  readonly clusterPort: number;
  /** HTTP monitoring port (`/jsz`, `/routez`, …). */
  readonly monitorPort: number;
  readonly storeDir: string;
  /** True while its process runs. */
  readonly running: boolean;
}

/**
 * A JetStream cluster of real nats-server processes on 127.0.0.1, for one test file. Each
 * server has its own `server_name`, config file and store; all ports are fixed at start (below
 * 32768, outside Linux's ephemeral range, checked free), so `restart(i)` brings a server back
 * on the same ports with the same store, as after a crash.
 */
export interface NatsCluster {
  readonly servers: readonly ClusterServer[];
  /** Client URLs of every server, to connect with all of them as seeds. */
  readonly urls: string[];
  /** Index of the server named `name`; throws when there is none. */
  indexOf(name: string): number;
  /** The end of server `i`'s log (stderr) since it was last started, for failure messages. */
  logTail(i: number): string;
  /** SIGKILL server `i` and wait for it to exit. */
  kill(i: number): Promise<void>;
  /** Start server `i` again (killing it first if it runs), same ports and store; resolves once it accepts clients. */
  restart(i: number): Promise<void>;
  /**
   * Waits until every running server reports the same JetStream meta leader, itself running,
   * and answers its name. Default timeout 20 s.
   */
  waitForMetaLeader(options?: { timeoutMs?: number }): Promise<string>;
  /** Kill every server and delete the stores and config files. */
  stop(): Promise<void>;
}

export interface StartNatsClusterOptions {
  /** Number of servers (default 3). */
  size?: number;
  binary?: string;
  /** Cluster name (default `slap-test`). */
  name?: string;
}

const START_ATTEMPTS = 4;
const LOG_TAIL = 32_000;

interface Member {
  name: string;
  port: number;
  clusterPort: number;
  monitorPort: number;
  dir: string;
  storeDir: string;
  config: string;
  child: ChildProcess | undefined;
  stderr: string;
}

/** Starts `size` clustered JetStream servers and waits until each accepts clients (not for a meta leader: see `waitForMetaLeader`). */
export async function startNatsCluster(options: StartNatsClusterOptions = {}): Promise<NatsCluster> {
  const size = options.size ?? 3;
  const binary = options.binary ?? process.env.NATS_SERVER_BIN ?? "nats-server";
  const clusterName = options.name ?? "slap-test";
  const root = await mkdtemp(join(tmpdir(), "slap-nats-cluster-"));
  const members: Member[] = [];
  for (let i = 0; i < size; i++) {
    const dir = join(root, `n${i + 1}`);
    await mkdir(dir, { recursive: true });
    members.push({
      name: `n${i + 1}`,
      port: 0,
      clusterPort: 0,
      monitorPort: 0,
      dir,
      storeDir: join(dir, "js"),
      config: join(dir, "nats.conf"),
      child: undefined,
      stderr: "",
    });
  }

  const launch = async (member: Member): Promise<void> => {
    member.stderr = `--- ${member.name} started ${new Date().toISOString()}\n`;
    const proc = spawn(binary, ["-c", member.config], { stdio: ["ignore", "ignore", "pipe"] });
    member.child = proc;
    proc.stderr?.on("data", (chunk: Buffer) => {
      member.stderr = (member.stderr + chunk.toString()).slice(-LOG_TAIL);
    });
    await new Promise<void>((resolve, reject) => {
      proc.once("spawn", resolve);
      proc.once("error", (error) => reject(new Error(`cannot start ${binary}: ${error.message}`)));
    });
    const deadline = Date.now() + 15_000;
    for (;;) {
      if (proc.exitCode !== null) throw new ServerExited(member, proc.exitCode);
      if (Date.now() > deadline) throw new Error(`${member.name} did not accept clients in 15 s: ${member.stderr}`);
      if (await accepts(member.port)) return;
      await sleep(25);
    }
  };

  const kill = async (member: Member): Promise<void> => {
    const proc = member.child;
    member.child = undefined;
    if (proc === undefined || proc.exitCode !== null || proc.signalCode !== null) return;
    const exited = new Promise<void>((resolve) => proc.once("exit", () => resolve()));
    proc.kill("SIGKILL");
    await exited;
  };

  const stop = async (): Promise<void> => {
    await Promise.all(members.map(kill));
    await rm(root, { recursive: true, force: true });
  };

  try {
    for (let attempt = 1; ; attempt++) {
      const base = await freePortBlock(size * 3);
      members.forEach((m, i) => {
        m.port = base + i * 3;
        m.clusterPort = base + i * 3 + 1;
        m.monitorPort = base + i * 3 + 2;
      });
      for (const m of members) await writeFile(m.config, configOf(m, members, clusterName));
      try {
        await Promise.all(members.map(launch));
        break;
      } catch (error) {
        await Promise.all(members.map(kill));
        // Another process took a port between the check and the bind: pick others.
        if (!(error instanceof ServerExited && /address already in use/i.test(error.stderr)) || attempt >= START_ATTEMPTS) throw error;
      }
    }
  } catch (error) {
    await stop();
    throw error;
  }

  const byIndex = (i: number): Member => {
    const member = members[i];
    if (member === undefined) throw new RangeError(`no server ${i} in a cluster of ${size}`);
    return member;
  };

  return {
    servers: members.map((m) => ({
      get name() {
        return m.name;
      },
      get url() {
        return `nats://127.0.0.1:${m.port}`;
      },
      get port() {
        return m.port;
      },
      get clusterPort() {
        return m.clusterPort;
      },
      get monitorPort() {
        return m.monitorPort;
      },
      get storeDir() {
        return m.storeDir;
      },
      get running() {
        return m.child !== undefined && m.child.exitCode === null && m.child.signalCode === null;
      },
    })),
    urls: members.map((m) => `nats://127.0.0.1:${m.port}`),
    indexOf(name) {
      const i = members.findIndex((m) => m.name === name);
      if (i < 0) throw new RangeError(`no server named ${JSON.stringify(name)} (servers: ${members.map((m) => m.name).join(", ")})`);
      return i;
    },
    logTail: (i) => byIndex(i).stderr,
    kill: (i) => kill(byIndex(i)),
    restart: async (i) => {
      const member = byIndex(i);
      await kill(member);
      await launch(member);
    },
    waitForMetaLeader: async ({ timeoutMs = 20_000 } = {}) => {
      const deadline = Date.now() + timeoutMs;
      let seen: Array<string | undefined> = [];
      for (;;) {
        const running = members.filter((m) => m.child !== undefined && m.child.exitCode === null);
        seen = await Promise.all(running.map((m) => metaLeaderOf(m.monitorPort)));
        const leader = seen[0];
        if (leader !== undefined && seen.every((s) => s === leader) && running.some((m) => m.name === leader)) return leader;
        if (Date.now() > deadline) {
          throw new Error(
            `no JetStream meta leader agreed on in ${timeoutMs} ms (running: ${running.map((m, i) => `${m.name} sees ${seen[i] ?? "none"}`).join(", ")})`,
          );
        }
        await sleep(100);
      }
    },
    stop,
  };
}

class ServerExited extends Error {
  override name = "ServerExited";
  readonly stderr: string;
  constructor(member: Member, code: number) {
    super(`nats-server ${member.name} exited with ${code}: ${member.stderr}`);
    this.stderr = member.stderr;
  }
}

function configOf(member: Member, members: readonly Member[], clusterName: string): string {
  const routes = members.filter((m) => m !== member).map((m) => `    nats-route://127.0.0.1:${m.clusterPort}`);
  return [
    `server_name: ${member.name}`,
    `listen: 127.0.0.1:${member.port}`,
    `http: 127.0.0.1:${member.monitorPort}`,
    `jetstream {`,
    `  store_dir: ${JSON.stringify(member.storeDir)}`,
    `  max_memory_store: 256MB`,
    `  max_file_store: 2GB`,
    `}`,
    `cluster {`,
    `  name: ${clusterName}`,
    `  listen: 127.0.0.1:${member.clusterPort}`,
    `  routes: [`,
    ...routes,
    `  ]`,
    `}`,
    "",
  ].join("\n");
}

/** The meta leader a server reports on `/jsz`, or undefined when it has none or does not answer. */
async function metaLeaderOf(monitorPort: number): Promise<string | undefined> {
  try {
    const response = await fetch(`http://127.0.0.1:${monitorPort}/jsz`, { signal: AbortSignal.timeout(2_000) });
    const body = (await response.json()) as { meta_cluster?: { leader?: string } };
    const leader = body.meta_cluster?.leader;
    return leader === undefined || leader === "" ? undefined : leader;
  } catch {
    return undefined;
  }
}
