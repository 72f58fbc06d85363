import { execFileSync, spawn } from "node:child_process";
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
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

/**
 * A certificate authority and a certificate it signs for 127.0.0.1 and localhost, made with
 * openssl in `dir` (PEM files, valid one day): for tests of TLS (the master's HTTPS, NATS).
 */
export function testCertificates(dir: string): { ca: string; cert: string; key: string } {
  const file = (name: string) => join(dir, name);
  const openssl = (...args: string[]) => execFileSync("openssl", args, { stdio: ["ignore", "ignore", "pipe"] });
  openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=slap test CA", "-keyout", file("ca.key"), "-out", file("ca.pem"));
  openssl("req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=127.0.0.1", "-keyout", file("server.key"), "-out", file("server.csr"));
  writeFileSync(file("san.ext"), "subjectAltName=IP:127.0.0.1,DNS:localhost\n");
  openssl("x509", "-req", "-in", file("server.csr"), "-CA", file("ca.pem"), "-CAkey", file("ca.key"), "-CAcreateserial", "-days", "1", "-extfile", file("san.ext"), "-out", file("server.pem"));
  return { ca: file("ca.pem"), cert: file("server.pem"), key: file("server.key") };
}
