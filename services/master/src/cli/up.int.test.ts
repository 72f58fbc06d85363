import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { chmod } from "node:fs/promises";
import { randomBytes } from "node:crypto";
import { fileURLToPath } from "node:url";
import { after, describe, it } from "node:test";
import { removePartitionUsers } from "@slap/node";
import { tempDir } from "@slap/testkit";

const REPO = fileURLToPath(new URL("../../../../", import.meta.url));
const BIN = `${REPO}bin/slap.mjs`;
const computer = `COMP-UP-${randomBytes(3).toString("hex")}`;
const PARTITIONS = 3;

/** Runs `slap up` until its web app is ready, fetches the page, then Ctrl-C; returns what it printed. */
async function upOnce(data: string): Promise<{ output: string; page: string; code: number | null }> {
  const child = spawn(process.execPath, [BIN, "up", "--data", data, "--port", "0", "--partitions", String(PARTITIONS), "--computer", computer, "--port-base", "38000"], {
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
  child.kill("SIGINT");
  const code = await exited;
  return { output, page, code };
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
    assert.match(first.page, /connected to kvdb at .*: visits = 1/);

    const second = await upOnce(data.path);
    assert.equal(second.code, 0, second.output);
    assert.match(second.output, /same state as last time: nothing re-created/);
    assert.match(second.page, /visits = 2/, "the kvdb's data survived the restart");
  });
});
