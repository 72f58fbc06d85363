import { spawn, type ChildProcess } from "node:child_process";
import { mkdir, mkdtemp, readFile, readdir, rm } from "node:fs/promises";
import { connect as tcpConnect } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";

/**
 * A real nats-server with JetStream, started for one test file: loopback only, an ephemeral
 * port (`-p -1`, read back from the ports file) and a temporary store. `restart()` keeps the
 * same port and store, so crash tests can kill it and bring it back.
 */
export interface NatsServer {
  readonly url: string;
  readonly port: number;
  readonly storeDir: string;
  /** SIGKILL (default) or SIGTERM, then wait for the process to exit. */
  stop(signal?: "SIGKILL" | "SIGTERM"): Promise<void>;
  /** Start again on the same port with the same store. */
  restart(): Promise<void>;
  /** Stop and delete the temporary folder. */
  dispose(): Promise<void>;
}

export interface StartNatsOptions {
  /** Extra command-line arguments, e.g. `["-c", configPath]`. */
  args?: string[];
  binary?: string;
}

export async function startNatsServer(options: StartNatsOptions = {}): Promise<NatsServer> {
  const binary = options.binary ?? process.env.NATS_SERVER_BIN ?? "nats-server";
  const root = await mkdtemp(join(tmpdir(), "slap-nats-"));
  const storeDir = join(root, "js");
  const portsDir = join(root, "ports");
  let child: ChildProcess | undefined;
  let port = -1;
  let stderr = "";

  const launch = async (): Promise<void> => {
    await rm(portsDir, { recursive: true, force: true });
    await mkdir(portsDir, { recursive: true });
    const args = ["-a", "127.0.0.1", "-p", String(port), "-js", "-sd", storeDir, "--ports_file_dir", portsDir, ...(options.args ?? [])];
    stderr = "";
    const proc = spawn(binary, args, { stdio: ["ignore", "ignore", "pipe"] });
    child = proc;
    proc.stderr?.on("data", (chunk: Buffer) => {
      stderr = (stderr + chunk.toString()).slice(-4_000);
    });
    const spawned = new Promise<void>((resolve, reject) => {
      proc.once("spawn", resolve);
      proc.once("error", (error) =>
        reject(new Error(`cannot start ${binary} (is nats-server installed? .ci/run installs it): ${error.message}`)),
      );
    });
    await spawned;
    const deadline = Date.now() + 15_000;
    for (;;) {
      if (proc.exitCode !== null) throw new Error(`nats-server exited with ${proc.exitCode}: ${stderr}`);
      if (Date.now() > deadline) throw new Error(`nats-server did not start in 15 s: ${stderr}`);
      if (port < 0) port = await readPort(portsDir);
      if (port > 0 && (await accepts(port))) return;
      await sleep(25);
    }
  };

  const stop = async (signal: "SIGKILL" | "SIGTERM" = "SIGKILL"): Promise<void> => {
    const proc = child;
    child = undefined;
    if (proc === undefined || proc.exitCode !== null || proc.signalCode !== null) return;
    const exited = new Promise<void>((resolve) => proc.once("exit", () => resolve()));
    proc.kill(signal);
    await exited;
  };

  await launch();
  return {
    get url() {
      return `nats://127.0.0.1:${port}`;
    },
    get port() {
      return port;
    },
    storeDir,
    stop,
    restart: async () => {
      await stop();
      await launch();
    },
    dispose: async () => {
      await stop();
      await rm(root, { recursive: true, force: true });
    },
  };
}

async function readPort(portsDir: string): Promise<number> {
  let names: string[];
  try {
    names = await readdir(portsDir);
  } catch {
    return -1;
  }
  const file = names.find((n) => n.endsWith(".ports"));
  if (file === undefined) return -1;
  try {
    const ports = JSON.parse(await readFile(join(portsDir, file), "utf8")) as { nats?: string[] };
    const url = ports.nats?.[0];
    return url === undefined ? -1 : Number(new URL(url).port);
  } catch {
    return -1; // written but not complete yet
  }
}

/** Whether something accepts TCP connections on 127.0.0.1:`port`. */
export function accepts(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = tcpConnect({ host: "127.0.0.1", port });
    socket.once("connect", () => {
      socket.destroy();
      resolve(true);
    });
    socket.once("error", () => resolve(false));
  });
}
