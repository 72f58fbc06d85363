import assert from "node:assert/strict";
import { execFile, spawnSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { readFile, stat } from "node:fs/promises";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { fileURLToPath, pathToFileURL } from "node:url";
import { as, captureLogger, freePortBlock, testToken } from "@slap/testkit";
import type { RunningMaster } from "@slap/master";
import { startDeployment, type Deployment } from "./deployment.fixture.js";
import { Node } from "@slap/node";
import { softwareDir } from "@slap/node";
import { partitionUserName, partitionUsersEnabled } from "@slap/node";

const WEB = pathToFileURL(join(fileURLToPath(new URL("../../services/node/test-releases/", import.meta.url)), "web")).href;
// Unique: the partition users are named from the computer id; removed in after().
const COMPUTER = `COMP-USERS-${randomBytes(4).toString("hex")}`;
const PARTITIONS = 2;
const ROOT = process.getuid?.() === 0;
const alice = { ...as.user("alice"), "content-type": "application/json" };

let deployment: Deployment;
let master: RunningMaster;
let node: Node;
let root: { path: string };
const { logger } = captureLogger();

interface Answer {
  status: string;
  instanceId?: string;
  connection?: Record<string, string>;
}

async function deployed(reference: string): Promise<{ instanceId: string; partitionId: string; url: string }> {
  let answer: Answer = { status: "pending" };
  const deadline = Date.now() + 30_000;
  while (answer.status !== "ready" && Date.now() < deadline) {
    const response = await fetch(`${master.url}/v1/requests?wait=5000`, { method: "POST", headers: alice, body: JSON.stringify({ releaseUrl: WEB, reference, parameters: { greeting: reference } }) });
    answer = (await response.json()) as Answer;
  }
  assert.equal(answer.status, "ready", JSON.stringify(answer));
  const response = await fetch(`${master.url}/v1/instances/${answer.instanceId}`, { headers: as.admin() });
  const body = (await response.json()) as { instance: { placement: { partitionId: string } | null } };
  return { instanceId: answer.instanceId!, partitionId: body.instance.placement!.partitionId, url: answer.connection!.url! };
}

/** The real uid of a running process (first field of the `Uid:` line of /proc/<pid>/status). */
async function processUid(pid: number): Promise<number> {
  const status = await readFile(`/proc/${pid}/status`, "utf8");
  const line = /^Uid:\s+(\d+)\s+(\d+)/m.exec(status);
  assert.ok(line !== null, status);
  assert.equal(line[1], line[2], "real and effective uid are the same");
  return Number(line[1]);
}

/** Runs `argv` as uid/gid; resolves with its exit code and output. */
function runAs(uid: number, gid: number, argv: [string, ...string[]]): Promise<{ code: number; output: string }> {
  return new Promise((resolve) => {
    execFile(argv[0], argv.slice(1), { uid, gid }, (error, stdout, stderr) => {
      resolve({ code: error === null ? 0 : typeof error.code === "number" ? error.code : -1, output: `${stdout}${stderr}` });
    });
  });
}

before(async () => {
  deployment = await startDeployment({ computer: COMPUTER, node: { partitions: PARTITIONS, portBase: await freePortBlock(PARTITIONS * 100), promiseTimeoutMs: 5_000 }, releases: [WEB], logger });
  ({ master, node } = deployment);
  root = { path: deployment.root };
});

after(async () => {
  await deployment.stop();
  if (ROOT) {
    for (let n = 0; n < PARTITIONS; n++) assert.notEqual(spawnSync("id", ["-u", partitionUserName(COMPUTER, `slappart${n}`)]).status, 0, "the test's users are removed");
  }
});

describe("partition users", () => {
  it("names users from the computer and partition, within 32 characters; \"off\" turns them off", () => {
    const name = partitionUserName("a-very-long-computer-identifier-that-goes-on-and-on", "slappart9999");
    assert.match(name, /^slap-[0-9a-f]{8}-9999$/);
    assert.ok(name.length <= 32);
    assert.notEqual(partitionUserName("COMP-A", "slappart0"), partitionUserName("COMP-B", "slappart0"));
    assert.equal(partitionUsersEnabled("off"), false);
    assert.equal(partitionUsersEnabled("auto"), ROOT);
    assert.equal(partitionUsersEnabled(undefined), ROOT);
    const off = new Node({ masterUrl: master.url, token: testToken.node(`${COMPUTER}-OFF`), computerId: `${COMPUTER}-OFF`, partitions: 1, root: root.path, logger, partitionUsers: "off" });
    assert.equal(off.partitionUsers, false);
    assert.equal(off.partitionUser("slappart0"), undefined);
  });

  // One of the next two applies, by who runs the node (CI runs as root); the other is not registered.
  if (!ROOT) it("not root: partition users stay off, every process runs as the node's user", async () => {
    assert.equal(node.partitionUsers, false);
    assert.equal(node.partitionUser("slappart0"), undefined);
    const a = await deployed("alpha");
    const pid = node.servicePid(a.partitionId, "web");
    assert.ok(pid !== undefined);
    assert.equal(await processUid(pid), process.getuid?.());
  });

  if (ROOT) it("root: each partition's processes run as its own user, who cannot read another partition's files", async () => {
    assert.equal(node.partitionUsers, true);
    assert.equal((await stat(root.path)).mode & 0o777, 0o755, "the node's root is traversable by the partition users");
    assert.equal((await stat(join(root.path, "software"))).mode & 0o777, 0o755);
    const a = await deployed("alpha");
    const b = await deployed("beta");
    assert.notEqual(a.partitionId, b.partitionId);
    const userA = node.partitionUser(a.partitionId)!;
    const userB = node.partitionUser(b.partitionId)!;
    assert.equal(userA.name, partitionUserName(COMPUTER, a.partitionId));
    assert.notEqual(userA.uid, userB.uid, "two partitions, two users");
    assert.notEqual(userA.uid, 0);
    assert.notEqual(userB.uid, 0);

    // The services run as their partition's user.
    const pidA = node.servicePid(a.partitionId, "web")!;
    const pidB = node.servicePid(b.partitionId, "web")!;
    assert.equal(await processUid(pidA), userA.uid);
    assert.equal(await processUid(pidB), userB.uid);
    assert.equal(((await (await fetch(a.url)).json()) as { greeting: string }).greeting, "alpha");

    // The partition, what the profile wrote, the one-shot's output and the logs are the user's.
    const pathA = join(root.path, a.partitionId);
    const pathB = join(root.path, b.partitionId);
    const owned = async (file: string, mode?: number): Promise<void> => {
      const s = await stat(file);
      assert.equal(s.uid, userA.uid, `${file} belongs to ${userA.name}`);
      assert.equal(s.gid, userA.gid, `${file} is in group ${userA.name}`);
      if (mode !== undefined) assert.equal(s.mode & 0o777, mode, file);
    };
    await owned(pathA, 0o750);
    await owned(join(pathA, "etc", "secrets", "password"), 0o600);
    await owned(join(pathA, "etc", "web.conf"));
    await owned(join(pathA, "srv")); // made by the one-shot "prepare", run as the user
    await owned(join(pathA, "var", "log", "web.log"));
    await owned(join(pathA, "tmp"));
    assert.ok((await stat(join(softwareDir(root.path, WEB), "server.mjs"))).mode & 0o004, "the installed release is readable by all");

    // A's user reads its own secret, not B's (nor even lists B's partition).
    const own = await runAs(userA.uid, userA.gid, ["cat", join(pathA, "etc", "secrets", "password")]);
    assert.equal(own.code, 0, own.output);
    assert.equal(own.output, await readFile(join(pathA, "etc", "secrets", "password"), "utf8"));
    const other = await runAs(userA.uid, userA.gid, ["cat", join(pathB, "etc", "secrets", "password")]);
    assert.notEqual(other.code, 0, "A's user must not read B's secret");
    assert.match(other.output, /Permission denied/);
    const list = await runAs(userA.uid, userA.gid, ["ls", pathB]);
    assert.notEqual(list.code, 0, "A's user must not list B's partition");
    // Nor from A's running service's point of view: same uid as the process above.
    const fromService = await runAs(await processUid(pidA), userA.gid, [process.execPath, "-e", `require("fs").readFileSync(${JSON.stringify(join(pathB, "etc", "web.conf"))})`]);
    assert.notEqual(fromService.code, 0);
    assert.match(fromService.output, /EACCES/);
  });

  if (ROOT) it("root: a partition's processes write in their partition and its tmp/, and nowhere else of the node (EACCES)", async () => {
    const a = await deployed("alpha");
    const b = await deployed("beta");
    const pathA = join(root.path, a.partitionId);
    const pathB = join(root.path, b.partitionId);
    const userA = node.partitionUser(a.partitionId)!;
    const pidA = node.servicePid(a.partitionId, "web")!;
    const targets = {
      own: join(pathA, "written-by-a"),
      ownTmp: join(pathA, "tmp", "written-by-a"),
      root: join(root.path, "written-by-a"),
      software: join(root.path, "software", "written-by-a"),
      release: join(softwareDir(root.path, WEB), "written-by-a"),
      otherPartition: join(pathB, "written-by-a"),
    };
    // What each write gives, done with the uid of A's running service.
    const script = `const fs = require("fs"); const out = {}; for (const [k, p] of Object.entries(${JSON.stringify(targets)})) { try { fs.writeFileSync(p, "x"); out[k] = "ok"; } catch (e) { out[k] = e.code; } } console.log(JSON.stringify(out));`;
    const result = await runAs(await processUid(pidA), userA.gid, [process.execPath, "-e", script]);
    assert.equal(result.code, 0, result.output);
    assert.deepEqual(JSON.parse(result.output), { own: "ok", ownTmp: "ok", root: "EACCES", software: "EACCES", release: "EACCES", otherPartition: "EACCES" });
  });
});
