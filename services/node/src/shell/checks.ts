import { execFile, spawn } from "node:child_process";
import { closeSync, fchownSync, openSync } from "node:fs";
import { chown, mkdir } from "node:fs/promises";
import { connect } from "node:net";
import { join } from "node:path";
import type { PromiseReport } from "./master-client.js";
import type { PromiseCheck } from "./profile.js";
import type { PartitionUser } from "./users.js";

/** Runs a one-shot to completion (no shell), its output appended to `var/log/<name>.log`; rejects on a non-zero exit. */
export async function runOnce(partitionPath: string, name: string, spec: { command: string[]; env: Record<string, string>; cwd: string }, owner?: PartitionUser): Promise<void> {
  const created = await mkdir(join(partitionPath, "var", "log"), { recursive: true });
  if (owner !== undefined && created !== undefined) {
    for (const dir of [join(partitionPath, "var"), join(partitionPath, "var", "log")]) await chown(dir, owner.uid, owner.gid);
  }
  const fd = openSync(join(partitionPath, "var", "log", `${name}.log`), "a");
  const [file, ...args] = spec.command as [string, ...string[]];
  try {
    if (owner !== undefined) fchownSync(fd, owner.uid, owner.gid);
    await new Promise<void>((resolve, reject) => {
      const child = spawn(file, args, { cwd: spec.cwd, env: spec.env, stdio: ["ignore", fd, fd], ...(owner === undefined ? {} : { uid: owner.uid, gid: owner.gid }) });
      child.once("error", (error) => reject(new Error(`run ${name} could not start: ${error.message}`)));
      child.once("close", (code, signal) => {
        if (code === 0) resolve();
        else reject(new Error(`run ${name} ${code === null ? `was killed by ${signal ?? "a signal"}` : `exited with code ${code}`}`));
      });
    });
  } finally {
    closeSync(fd);
  }
}

interface CheckOptions {
  cwd: string;
  env: Record<string, string>;
  timeoutMs: number;
  /** Command promises run as the partition's user when set. */
  owner?: PartitionUser | undefined;
}

function attempt(check: PromiseCheck, options: CheckOptions): Promise<string> {
  if ("command" in check) {
    const [file, ...args] = check.command as [string, ...string[]];
    const as = options.owner === undefined ? {} : { uid: options.owner.uid, gid: options.owner.gid };
    return new Promise((resolve, reject) => {
      execFile(file, args, { cwd: options.cwd, env: options.env, timeout: options.timeoutMs, ...as }, (error, stdout, stderr) => {
        if (error === null) resolve(stdout.trim().slice(0, 1_000) || "ok");
        else reject(new Error(`${stderr || stdout || error.message}`.trim().slice(-2_000)));
      });
    });
  }
  if ("http" in check) {
    return fetch(check.http, { signal: AbortSignal.timeout(options.timeoutMs) }).then(async (response) => {
      await response.arrayBuffer();
      if (response.status >= 400) throw new Error(`GET ${check.http}: HTTP ${response.status}`);
      return `GET ${check.http}: HTTP ${response.status}`;
    });
  }
  return new Promise((resolve, reject) => {
    const socket = connect({ host: check.tcp.host, port: check.tcp.port });
    socket.setTimeout(options.timeoutMs);
    socket.once("connect", () => {
      socket.destroy();
      resolve(`tcp ${check.tcp.host}:${check.tcp.port} accepts connections`);
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
 * started need a moment to listen). The result carries the last message.
 */
export async function checkPromise(name: string, check: PromiseCheck, options: CheckOptions): Promise<PromiseReport> {
  const started = Date.now();
  const deadline = started + options.timeoutMs;
  for (;;) {
    const left = Math.max(100, deadline - Date.now());
    try {
      const message = await attempt(check, { ...options, timeoutMs: left });
      return { name, ok: true, message, durationMs: Date.now() - started };
    } catch (error) {
      const message = error instanceof Error ? error.message : String(error);
      if (Date.now() + 200 >= deadline) return { name, ok: false, message: message || "failed", durationMs: Date.now() - started };
      await new Promise((r) => setTimeout(r, 200));
    }
  }
}
