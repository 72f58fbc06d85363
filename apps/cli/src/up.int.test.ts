import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { chmod, readFile, stat } from "node:fs/promises";
import { join } from "node:path";
import { randomBytes } from "node:crypto";
import { fileURLToPath } from "node:url";
import { after, describe, it } from "node:test";
import { removePartitionUsers } from "@slap/node";
import { freePortBlock, tempDir } from "@slap/testkit";

const REPO = fileURLToPath(new URL("../../../", import.meta.url));
const BIN = `${REPO}bin/slap.mjs`;
const computer = `COMP-UP-${randomBytes(3).toString("hex")}`;
const PARTITIONS = 3;
/** The partitions' ports, the same at every start (the instances keep theirs), free on this host (kept below 60000, well inside what slap up accepts). */
const PORT_BASE = await freePortBlock(PARTITIONS * 100, { highest: 60_000 });

/** Runs `slap up` until its web app is ready, fetches the page, then Ctrl-C; returns what it printed. */
interface Ran {
  code: number | null;
  stdout: string;
  stderr: string;
}

async function upOnce(data: string): Promise<{ output: string; page: string; code: number | null; audit: Ran; history: Ran; anonymous: Ran }> {
  const child = spawn(process.execPath, [BIN, "up", "--data", data, "--port", "0", "--partitions", String(PARTITIONS), "--computer", computer, "--port-base", String(PORT_BASE)], {
    cwd: REPO,
    stdio: ["ignore", "pipe", "pipe"],
    env: { ...process.env, LOG_LEVEL: "warn" },
  });
  let output = "";
  child.stdout.on("data", (chunk: Buffer) => (output += chunk.toString()));
  child.stderr.on("data", () => undefined);
  const exited = new Promise<number | null>((resolve) => child.once("exit", (code) => resolve(code)));
  const deadline = Date.now() + 60_000;
  while (!/ready: the web app is at /.test(output)) {
    if (Date.now() > deadline || child.exitCode !== null) {
      child.kill("SIGKILL");
      assert.fail(`slap up did not get ready:\n${output}`);
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  const url = /the web app is at (\S+)/.exec(output)![1]!;
  const page = await (await fetch(url)).text();
  const masterUrl = /master: (\S+)/.exec(output)![1]!;
  // The CLI finds the admin token the master wrote in the data folder (SLAP_DATA), as after `npm start`.
  const audit = await slap(["audit", "--master", masterUrl], { SLAP_DATA: data });
  const history = await slap(["audit", "my-webapp", "--master", masterUrl], { SLAP_DATA: data });
  const anonymous = await slap(["instances", "--master", masterUrl], { SLAP_DATA: join(data, "nowhere") });
  child.kill("SIGINT");
  const code = await exited;
  return { output, page, code, audit, history, anonymous };
}

/** Runs one `slap` command to its end: exit code and stdout. */
function slap(args: string[], env: Record<string, string>): Promise<Ran> {
  const { SLAP_TOKEN: _t, SLAP_TOKEN_FILE: _f, ...inherited } = process.env;
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [BIN, ...args], { cwd: REPO, stdio: ["ignore", "pipe", "pipe"], env: { ...inherited, ...env } });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (chunk: Buffer) => (stdout += chunk.toString()));
    child.stderr.on("data", (chunk: Buffer) => (stderr += chunk.toString()));
    child.once("exit", (code) => resolve({ code, stdout, stderr }));
  });
}

describe("slap up (npm start): the whole system in one process", () => {
  let data: { path: string; dispose(): Promise<void> } | undefined;
  after(async () => {
    await data?.dispose();
    await removePartitionUsers(computer, PARTITIONS);
  });

  it("deploys the webapp and its kvdb with progress, stops cleanly, and picks up the same state on the next start", async () => {
    data = await tempDir("slap-up-");
    // mkdtemp makes it 0700; the partitions' unix users (when root) must traverse it, as they do ./data.
    await chmod(data.path, 0o755);
    const first = await upOnce(data.path);
    assert.equal(first.code, 0, first.output);
    assert.match(first.output, /my-webapp: pending/);
    assert.match(first.output, /kvdb: ready on /);
    assert.match(first.output, /stopping/);
    assert.match(first.output, /dashboard: http:\/\/\S+\/dashboard#token=slap_\S+ /);
    const masterUrl = /master: (\S+)/.exec(first.output)![1]!;
    assert.ok(first.output.includes(`CLI: SLAP_MASTER=${masterUrl} npx slap instances`), `the CLI hint names this master (--port 0): ${first.output}`);
    const adminToken = (await readFile(join(data.path, "admin.token"), "utf8")).trim();
    assert.ok(first.output.includes(`#token=${adminToken} `), "the dashboard link carries the data folder's admin token");
    assert.equal((await stat(join(data.path, "admin.token"))).mode & 0o777, 0o600);
    assert.equal((await stat(join(data.path, "tokens.json"))).mode & 0o777, 0o600);
    // Partition users traverse the data folder to their partitions, and read nothing of it: not the log of every tenant.
    assert.equal((await stat(data.path)).mode & 0o777, 0o711);
    assert.equal((await stat(join(data.path, "events.log"))).mode & 0o777, 0o600);
    assert.ok(!(await readFile(join(data.path, "tokens.json"), "utf8")).includes(adminToken), "the token file keeps only the hash");
    assert.equal(first.anonymous.code, 1, "without a token the CLI is refused");
    assert.match(first.anonymous.stderr, /Unauthorized.*SLAP_TOKEN/);
    assert.match(first.page, /connected to kvdb at .*: visits = 1/);
    assert.equal(first.audit.code, 0, first.audit.stdout);
    assert.match(first.audit.stdout, /computers: equal\ninstances: equal/);
    assert.equal(first.history.code, 0, first.history.stdout);
    for (const type of ["InstanceRequested", "PartitionAllocated", "InstanceStatusReported", "ConnectionParametersPublished"]) {
      assert.match(first.history.stdout, new RegExp(type), first.history.stdout);
    }

    const second = await upOnce(data.path);
    assert.equal(second.code, 0, second.output);
    assert.match(second.output, /same state as last time: nothing re-created/);
    assert.ok(second.output.includes(`#token=${adminToken} `), "the next start keeps the same admin token");
    assert.match(second.page, /visits = 2/, "the kvdb's data survived the restart");
  });
});
