import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { readdir, readFile } from "node:fs/promises";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { fileURLToPath, pathToFileURL } from "node:url";
import { pino } from "pino";
import { eventually, as, callJson, freePortBlock, tempDir, testToken, tokenFile } from "@slap/testkit";
import { runMaster, type RunningMaster } from "@slap/master";
import { withAllocator } from "../alongside.fixture.js";
import { Node } from "@slap/node";

// The node's timeouts, against a real master (embedded log, its own allocator): a promise, a
// one-shot and a profile that never end.
const SLOW = pathToFileURL(fileURLToPath(new URL("../../services/node/test-releases/slow", import.meta.url))).href;
const COMPUTER = `COMP-SLOW-${randomBytes(3).toString("hex")}`;
const RUN = randomBytes(4).toString("hex");
const PROMISE_TIMEOUT_MS = 1_500;
const RUN_TIMEOUT_MS = 1_500;
const PROFILE_TIMEOUT_MS = 6_000;

const logger = pino({ level: "silent" });
const alice = as.user("alice");
let dir: { path: string; dispose(): Promise<void> };
let master: RunningMaster;
let node: Node;

const call = (method: string, path: string, body?: unknown) => callJson(`${master.url}${path}`, method, alice, body);

interface Details {
  instance: {
    instanceId: string;
    serial: number;
    placement: { partitionId: string } | null;
    status: { status: string; message: string | null; at: string } | null;
  };
  answer: { status: string };
}

async function details(instanceId: string): Promise<Details> {
  const { status, body } = await call("GET", `/v1/instances/${instanceId}`);
  assert.equal(status, 200, JSON.stringify(body));
  return body as unknown as Details;
}


const untilStatus = (instanceId: string, status: string, after = 0): Promise<Details> =>
  eventually(`${instanceId} to report ${status}`, async () => {
    const d = await details(instanceId);
    return d.instance.status?.status === status && Date.parse(d.instance.status.at) > after ? d : undefined;
  });

async function request(reference: string, mode: string, marker = "none"): Promise<string> {
  const { status, body } = await call("POST", "/v1/requests", { releaseUrl: SLOW, reference, parameters: { mode, marker } });
  assert.ok(status === 200 || status === 202, JSON.stringify(body));
  return body.instanceId as string;
}

/** Processes whose argv holds `marker` (the hanging commands and their children), from /proc. */
async function processesWith(marker: string): Promise<number[]> {
  const pids: number[] = [];
  for (const entry of await readdir("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    const cmdline = await readFile(`/proc/${entry}/cmdline`, "utf8").catch(() => "");
    // A zombie has an empty command line: it is gone.
    if (cmdline.split("\0").some((arg) => arg.startsWith(marker))) pids.push(Number(entry));
  }
  return pids;
}

/** How many times the profile of the instance in `partitionId` was entered. */
async function runs(partitionId: string): Promise<number> {
  const text = await readFile(join(dir.path, "srv", partitionId, "entered"), "utf8").catch(() => "");
  return text.split("\n").filter(Boolean).length;
}

before(async () => {
  dir = await tempDir("slap-timeouts-");
  const tokens = tokenFile(join(dir.path, "tokens"), { users: ["alice"], computers: [COMPUTER] });
  master = await runMaster({ data: join(dir.path, "data"), tokens, port: 0, host: "127.0.0.1", logLevel: "silent" }, { logger, alongside: withAllocator });
  node = new Node({
    masterUrl: master.url,
    token: testToken.node(COMPUTER),
    computerId: COMPUTER,
    partitions: 5,
    root: join(dir.path, "srv"),
    portBase: await freePortBlock(5 * 10),
    portsPerPartition: 10,
    partitionUsers: "off",
    promiseTimeoutMs: PROMISE_TIMEOUT_MS,
    runTimeoutMs: RUN_TIMEOUT_MS,
    profileTimeoutMs: PROFILE_TIMEOUT_MS,
    logger,
  });
  await node.start();
  assert.equal((await callJson(`${master.url}/v1/computers/${COMPUTER}/supply`, "POST", as.admin(), { releaseUrl: SLOW })).status, 200);
});

after(async () => {
  await node?.stop();
  await master?.stop();
  for (const pid of await processesWith(`slap-test-${RUN}`)) process.kill(pid, "SIGKILL");
  await dir?.dispose();
});

describe("the node times out what hangs: promises, one-shots and profiles", () => {
  it("kills a promise whose command never ends (it ignores SIGTERM and started a child) at its timeout: status error", async () => {
    const marker = `slap-test-${RUN}-promise`;
    const id = await request("stuck-promise", "hang-promise", `${RUN}-promise`);
    const d = await untilStatus(id, "error");
    assert.match(d.instance.status!.message ?? "", /^promise forever failed: timed out after 1\.5 s \(killed\)/);
    await eventually("the promise's processes to be gone", async () => ((await processesWith(marker)).length === 0 ? true : undefined), 5_000);
  });

  it("kills a one-shot (slap.run) that never ends at its timeout, with what it started: status error", async () => {
    const marker = `slap-test-${RUN}-run`;
    const id = await request("stuck-run", "hang-run", `${RUN}-run`);
    const d = await untilStatus(id, "error");
    assert.equal(d.instance.status!.message, "run forever timed out after 1.5 s (killed)");
    await eventually("the one-shot's processes to be gone", async () => ((await processesWith(marker)).length === 0 ? true : undefined), 5_000);
  });

  it("ends a profile that never resolves in error, goes on with the other instances meanwhile, and tries it again at the next trigger only", async () => {
    const stuck = await request("stuck-profile", "hang-profile");
    const processing = await untilStatus(stuck, "processing");
    const partition = (await details(stuck)).instance.placement!.partitionId;
    await eventually("the stuck profile to be entered", async () => ((await runs(partition)) === 1 ? true : undefined));

    // Another instance is deployed while that profile hangs.
    const fine = await request("fine", "ok");
    const started = await untilStatus(fine, "started");
    const timedOut = await untilStatus(stuck, "error");
    assert.equal(timedOut.instance.status!.message, "profile timed out after 6 s");
    assert.ok(Date.parse(started.instance.status!.at) < Date.parse(timedOut.instance.status!.at), "the other instance was deployed while the profile hung");
    assert.ok(Date.parse(timedOut.instance.status!.at) - Date.parse(processing.instance.status!.at) >= PROFILE_TIMEOUT_MS - 100);

    // Not a tight loop: other changes (a bang of the other instance, processed) do not run it again.
    const fineSerial = (await details(fine)).instance.serial;
    assert.equal((await call("POST", `/v1/instances/${fine}/bang`, { message: "a change elsewhere" })).status, 200);
    await eventually("the other instance to be processed again", async () => {
      const d = await details(fine);
      return d.instance.serial > fineSerial && d.instance.status?.status === "started" && Date.parse(d.instance.status.at) > Date.parse(started.instance.status!.at) ? true : undefined;
    });
    await node.idle();
    assert.equal(await runs(partition), 1, "the timed-out profile is not run again by itself");

    // The next trigger of its own (a bang) runs it again, and it times out again.
    const before = Date.parse(timedOut.instance.status!.at);
    assert.equal((await call("POST", `/v1/instances/${stuck}/bang`, { message: "try again" })).status, 200);
    await untilStatus(stuck, "processing", before);
    await eventually("the stuck profile to be entered again", async () => ((await runs(partition)) === 2 ? true : undefined));
    const again = await untilStatus(stuck, "error", before);
    assert.equal(again.instance.status!.message, "profile timed out after 6 s");
  });
});
