/**
 * Real service processes for fault-injection tests: a `slap` service (`node bin/slap.mjs …`)
 * started as its own OS process (its own process group), its output appended to a log file,
 * killed with SIGKILL and started again with the same arguments, environment and data folders.
 * Plus what the tests read from `/proc`: a process's command line and the processes running a
 * given command.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { closeSync, openSync } from "node:fs";
import { open, readFile, readdir, stat } from "node:fs/promises";
import { fileURLToPath } from "node:url";
import { setTimeout as sleep } from "node:timers/promises";
import { readTail } from "@slap/node";

const REPO = fileURLToPath(new URL("../../", import.meta.url));
const BIN = `${REPO}bin/slap.mjs`;

export interface ServiceSpec {
  /** Its name in reports: `master`, `allocator-1`, `node-2`. */
  name: string;
  /** The `slap` command line after `bin/slap.mjs`, e.g. `["master", "--port", "8080"]`. */
  args: string[];
  env: NodeJS.ProcessEnv;
  /** Every start appends stdout and stderr here. */
  logFile: string;
  /** A line in the log that says this start is ready (the CLI's "… listening on" / "… running"). */
  ready: RegExp;
}

/**
 * One service process. `start()` resolves once the service says it is ready; a start that exits
 * first (its dependency is still coming back, say) is tried again until the deadline.
 */
export class ServiceProcess {
  private child: ChildProcess | undefined;
  private exited: Promise<void> = Promise.resolve();
  /** Starts that exited before they were ready. */
  failedStarts = 0;
  /** Exits after ready that nobody asked for (not `kill9`, not `stop`): how and when. */
  readonly died: string[] = [];
  private ready = false;
  private stopping = false;

  constructor(readonly spec: ServiceSpec) {}

  get name(): string {
    return this.spec.name;
  }

  get pid(): number | undefined {
    return this.running ? this.child?.pid : undefined;
  }

  get running(): boolean {
    return this.child !== undefined && this.child.exitCode === null && this.child.signalCode === null;
  }

  /** Starts the process and waits until it is ready, starting it again when it exits before that. */
  async start(timeoutMs = 60_000): Promise<void> {
    if (this.running) throw new Error(`${this.name} is already running (pid ${this.child?.pid})`);
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const offset = await sizeOf(this.spec.logFile);
      const child = this.spawnOnce();
      for (;;) {
        if (await this.logSays(offset)) {
          this.ready = true;
          return;
        }
        if (!this.running) break;
        if (Date.now() > deadline) {
          await this.kill9();
          throw new Error(`${this.name} (pid ${child.pid}) was not ready within ${timeoutMs / 1000} s\n${await this.tail()}`);
        }
        await sleep(100);
      }
      this.failedStarts++;
      if (Date.now() > deadline) throw new Error(`${this.name} could not start within ${timeoutMs / 1000} s\n${await this.tail()}`);
      await sleep(500);
    }
  }

  /** SIGKILL to the service's process only: what it started (a node's services) stays behind, as after a crash. */
  async kill9(): Promise<void> {
    const child = this.child;
    if (child === undefined || !this.running) return;
    this.stopping = true;
    child.kill("SIGKILL");
    await this.exited;
  }

  /** SIGTERM, then SIGKILL to its whole process group after `timeoutMs`. Answers whether it stopped by itself. */
  async stop(timeoutMs = 15_000): Promise<boolean> {
    const child = this.child;
    if (child === undefined || !this.running) return true;
    this.stopping = true;
    child.kill("SIGTERM");
    let timer: NodeJS.Timeout | undefined;
    const late = new Promise<"late">((resolve) => (timer = setTimeout(() => resolve("late"), timeoutMs)));
    const outcome = await Promise.race([this.exited, late]);
    clearTimeout(timer);
    if (outcome !== "late") return true;
    try {
      if (child.pid !== undefined) process.kill(-child.pid, "SIGKILL");
    } catch {
      child.kill("SIGKILL");
    }
    await this.exited;
    return false;
  }

  /**
   * Last resort (synchronous, for `process.on("exit")`): SIGKILL the running process's group. The
   * services a killed node left behind are not in it: find them by their command line.
   */
  killGroup(): void {
    const pid = this.pid;
    if (pid === undefined) return;
    try {
      process.kill(-pid, "SIGKILL");
    } catch {
      // gone already
    }
  }

  /** The last lines of its log (every start). */
  async tail(lines = 30): Promise<string> {
    const text = (await readTail(this.spec.logFile, 16_384)) ?? "(no log)";
    return `--- ${this.name}: ${this.spec.logFile} (end) ---\n${text.split("\n").slice(-lines).join("\n")}`;
  }

  private spawnOnce(): ChildProcess {
    const fd = openSync(this.spec.logFile, "a");
    let child: ChildProcess;
    try {
      child = spawn(process.execPath, [BIN, ...this.spec.args], { cwd: REPO, env: this.spec.env, stdio: ["ignore", fd, fd], detached: true });
    } finally {
      closeSync(fd);
    }
    this.child = child;
    this.ready = false;
    this.stopping = false;
    this.exited = new Promise((resolve) => {
      child.once("exit", (code, signal) => {
        if (this.ready && !this.stopping) this.died.push(`${this.name} (pid ${child.pid}) exited by itself at ${new Date().toISOString()}: ${signal ?? `code ${code}`}`);
        resolve();
      });
      child.once("error", () => resolve());
    });
    return child;
  }

  private async logSays(offset: number): Promise<boolean> {
    try {
      const handle = await open(this.spec.logFile, "r");
      try {
        const { size } = await handle.stat();
        if (size <= offset) return false;
        const buffer = Buffer.alloc(size - offset);
        await handle.read(buffer, 0, buffer.length, offset);
        return this.spec.ready.test(buffer.toString("utf8"));
      } finally {
        await handle.close();
      }
    } catch {
      return false;
    }
  }
}

async function sizeOf(path: string): Promise<number> {
  try {
    return (await stat(path)).size;
  } catch {
    return 0;
  }
}


/** A process's argv from `/proc/<pid>/cmdline`; undefined when it is gone (or a zombie, whose cmdline is empty). */
export async function commandLine(pid: number): Promise<string[] | undefined> {
  try {
    const argv = (await readFile(`/proc/${pid}/cmdline`, "utf8")).split("\0").filter((a) => a !== "");
    return argv.length === 0 ? undefined : argv;
  } catch {
    return undefined;
  }
}

/** The pids of the live processes whose argv is exactly `argv`. */
export async function processesRunning(argv: readonly string[]): Promise<number[]> {
  const found: number[] = [];
  for (const entry of await readdir("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    const running = await commandLine(Number(entry));
    if (running !== undefined && running.length === argv.length && running.every((a, i) => a === argv[i])) found.push(Number(entry));
  }
  return found;
}
