import { spawn } from "node:child_process";
import { connect } from "node:net";
import type { PromiseReport } from "./master-client.js";
import { foreignAnswer } from "./ports.js";
import { terminateGroup } from "./process-group.js";
import { secondsOf, type PromiseCheck } from "./profile.js";
import { openPartitionLog } from "./beneath.js";
import type { PartitionUser } from "./users.js";

/** Output a command promise keeps (its last bytes) for its message. */
const OUTPUT_KEEP = 64 * 1024;

interface Finished {
  code: number | null;
  signal: NodeJS.Signals | null;
  /** Killed because it ran past its timeout. */
  timedOut: boolean;
  /** stdout and stderr as they came (piped output only), its last `OUTPUT_KEEP` bytes. */
  output: string;
}

/**
 * Runs an argv (no shell) in a process group of its own; past `timeoutMs` the whole group (the
 * command and whatever it started) gets SIGTERM, then SIGKILL 2 s later (`terminateGroup`). Output
 * goes to `stdio` (a file descriptor), or is kept (`"pipe"`). Rejects only when the command
 * cannot start.
 */
export function runWithTimeout(
  command: readonly string[],
  options: { cwd: string; env: Record<string, string>; timeoutMs: number; owner?: PartitionUser | undefined; stdio: number | "pipe" },
): Promise<Finished> {
  const [file, ...args] = command as [string, ...string[]];
  return new Promise((resolve, reject) => {
    const out = options.stdio === "pipe" ? "pipe" : options.stdio;
    const child = spawn(file, args, {
      cwd: options.cwd,
      env: options.env,
      stdio: ["ignore", out, out],
      detached: true,
      ...(options.owner === undefined ? {} : { uid: options.owner.uid, gid: options.owner.gid }),
    });
    let output = "";
    const keep = (chunk: Buffer): void => {
      output = (output + chunk.toString("utf8")).slice(-OUTPUT_KEEP);
    };
    child.stdout?.on("data", keep);
    child.stderr?.on("data", keep);
    let timedOut = false;
    let settled = false;
    let cancelKill = (): void => undefined;
    const finish = (code: number | null, signal: NodeJS.Signals | null): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      cancelKill();
      resolve({ code, signal, timedOut, output });
    };
    const timer = setTimeout(() => {
      timedOut = true;
      cancelKill = terminateGroup(child, () => finish(child.exitCode, child.signalCode ?? "SIGKILL"));
    }, options.timeoutMs);
    child.once("error", (error) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      cancelKill();
      reject(error);
    });
    child.once("close", (code, signal) => finish(code, signal));
  });
}

/**
 * Runs a one-shot to completion (no shell), its output appended to `var/log/<name>.log`; rejects
 * on a non-zero exit, and when it runs past `timeoutMs` (default 10 min): then it is killed, with
 * every process it started (`run <name> timed out after N s`).
 */
export async function runOnce(
  partitionPath: string,
  name: string,
  spec: { command: string[]; env: Record<string, string>; cwd: string },
  owner?: PartitionUser,
  timeoutMs = RUN_TIMEOUT_MS,
): Promise<void> {
  const log = await openPartitionLog(partitionPath, name, owner);
  let finished: Finished;
  try {
    finished = await runWithTimeout(spec.command, { cwd: spec.cwd, env: spec.env, timeoutMs, owner, stdio: log.fd }).catch((error: unknown) => {
      throw new Error(`run ${name} could not start: ${error instanceof Error ? error.message : String(error)}`);
    });
  } finally {
    await log.close();
  }
  if (finished.timedOut) throw new Error(`run ${name} timed out after ${secondsOf(timeoutMs)} s (killed)`);
  if (finished.code !== 0) throw new Error(`run ${name} ${finished.code === null ? `was killed by ${finished.signal ?? "a signal"}` : `exited with code ${finished.code}`}`);
}

/** Default of `runOnce`'s `timeoutMs`: 10 min. */
export const RUN_TIMEOUT_MS = 600_000;

interface CheckOptions {
  cwd: string;
  env: Record<string, string>;
  timeoutMs: number;
  /** Command promises run as the partition's user when set. */
  owner?: PartitionUser | undefined;
  /**
   * The partition the promise is of: an `http`/`tcp` promise on its address and one of its ports
   * holds only when the socket that answers is the partition's own (`foreignAnswer`).
   */
  partition?: { path: string; address: string; ports: { from: number; to: number } } | undefined;
}

/** The host and port an `http` promise's URL reaches (the scheme's default port when it names none). */
function httpTarget(url: string): { host: string; port: number } | undefined {
  try {
    const parsed = new URL(url);
    const port = parsed.port === "" ? (parsed.protocol === "https:" ? 443 : 80) : Number(parsed.port);
    return { host: parsed.hostname, port };
  } catch {
    return undefined;
  }
}

/** Fails when what answered on the partition's own address and port is not the partition's (see `CheckOptions.partition`). */
async function ownAnswer(options: CheckOptions, target: { host: string; port: number } | undefined): Promise<void> {
  if (options.partition === undefined || target === undefined) return;
  const foreign = await foreignAnswer({ ...options.partition, user: options.owner }, target.host, target.port);
  if (foreign !== undefined) throw new Error(foreign);
}

/** One try of a promise, given `leftMs` of its `options.timeoutMs`. */
function attempt(check: PromiseCheck, options: CheckOptions, leftMs: number): Promise<string> {
  if ("command" in check) {
    return runWithTimeout(check.command, { cwd: options.cwd, env: options.env, timeoutMs: leftMs, owner: options.owner, stdio: "pipe" }).then(
      (finished) => {
        const output = finished.output.trim();
        if (finished.timedOut) throw new Error(`timed out after ${secondsOf(options.timeoutMs)} s (killed)${output === "" ? "" : `: ${output.slice(-1_000)}`}`);
        if (finished.code === 0) return output.slice(0, 1_000) || "ok";
        const how = finished.code === null ? `killed by ${finished.signal ?? "a signal"}` : `exit code ${finished.code}`;
        throw new Error((output || how).slice(-2_000));
      },
      (error: unknown) => {
        throw new Error(`could not start: ${error instanceof Error ? error.message : String(error)}`);
      },
    );
  }
  if ("http" in check) {
    return fetch(check.http, { signal: AbortSignal.timeout(leftMs) }).then(async (response) => {
      await response.arrayBuffer();
      await ownAnswer(options, httpTarget(check.http));
      if (response.status >= 400) throw new Error(`GET ${check.http}: HTTP ${response.status}`);
      return `GET ${check.http}: HTTP ${response.status}`;
    });
  }
  return new Promise((resolve, reject) => {
    const socket = connect({ host: check.tcp.host, port: check.tcp.port });
    socket.setTimeout(leftMs);
    socket.once("connect", () => {
      // Asked while the connection is open: the listener that took it still listens.
      ownAnswer(options, check.tcp)
        .then(() => resolve(`tcp ${check.tcp.host}:${check.tcp.port} accepts connections`), reject)
        .finally(() => socket.destroy());
    });
    socket.once("timeout", () => {
      socket.destroy();
      reject(new Error(`tcp ${check.tcp.host}:${check.tcp.port}: timed out`));
    });
    socket.once("error", (error) => reject(new Error(`tcp ${check.tcp.host}:${check.tcp.port}: ${error.message}`)));
  });
}

/**
 * Checks a promise, retrying every 200 ms until it holds or `timeoutMs` passed (services just
 * started need a moment to listen). The result carries the last message. A command still running
 * at the deadline is killed with every process it started (`timed out after N s (killed)`).
 */
export async function checkPromise(name: string, check: PromiseCheck, options: CheckOptions): Promise<PromiseReport> {
  const started = Date.now();
  const deadline = started + options.timeoutMs;
  for (;;) {
    const left = Math.max(100, deadline - Date.now());
    try {
      const message = await attempt(check, options, left);
      return { name, ok: true, message, durationMs: Date.now() - started };
    } catch (error) {
      const message = error instanceof Error ? error.message : String(error);
      if (Date.now() + 200 >= deadline) return { name, ok: false, message: message || "failed", durationMs: Date.now() - started };
      await new Promise((r) => setTimeout(r, 200));
    }
  }
}
