import { spawn } from "node:child_process";
import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";

/** Whether the process is dead: no such process, or a zombie its parent did not reap yet. */
export function processGone(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch (error) {
    return (error as NodeJS.ErrnoException).code !== "EPERM";
  }
  try {
    return /^\d+ \(.*\) Z/.test(readFileSync(`/proc/${pid}/stat`, "utf8"));
  } catch {
    return true;
  }
}

/** What a `slap` process did: its exit code and everything it wrote. */
export interface SlapRun {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** The repository's root, where `bin/slap.mjs` is. */
const REPO = fileURLToPath(new URL("../../../", import.meta.url));

/**
 * Runs `node bin/slap.mjs …args` to its end, as a user would, with the test's environment:
 * the caller's `SLAP_MASTER`, `SLAP_TOKEN`, `SLAP_TOKEN_FILE`, `SLAP_DATA` and `SLAP_CA` are
 * not inherited (a test names its master and token), `env` is added.
 */
export function runSlap(args: readonly string[], env: Readonly<Record<string, string>> = {}): Promise<SlapRun> {
  const { SLAP_MASTER: _m, SLAP_TOKEN: _t, SLAP_TOKEN_FILE: _f, SLAP_DATA: _d, SLAP_CA: _c, ...inherited } = process.env;
  const child = spawn(process.execPath, ["bin/slap.mjs", ...args], { cwd: REPO, env: { ...inherited, ...env }, stdio: ["ignore", "pipe", "pipe"] });
  let stdout = "";
  let stderr = "";
  child.stdout.setEncoding("utf8").on("data", (chunk: string) => (stdout += chunk));
  child.stderr.setEncoding("utf8").on("data", (chunk: string) => (stderr += chunk));
  return new Promise((resolve, reject) => {
    child.on("error", reject);
    child.on("close", (code) => resolve({ code, stdout, stderr }));
  });
}
