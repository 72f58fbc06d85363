// Release code runs as its partition, never as the node (DESIGN.md, "Profile processes"): on a
// node running as root with partition users, a profile process cannot read what the node or
// another partition keeps, a profile stuck in a synchronous loop is cut at its timeout while the
// node goes on (other deployments, heartbeats), and a profile may be any executable (shell-site).
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { chmod, mkdir, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { fileURLToPath, pathToFileURL } from "node:url";
import { as, captureLogger, eventually, freePortBlock, tempDir } from "@slap/testkit";
import type { RunningMaster } from "@slap/master";
import { startDeployment, type Deployment } from "./deployment.fixture.js";

const ROOT = process.getuid?.() === 0;
/** The repository root: the node resolves the example's relative URL from it. */
const REPO = fileURLToPath(new URL("../../", import.meta.url));
const WEB = pathToFileURL(fileURLToPath(new URL("../../services/node/test-releases/web", import.meta.url))).href;
const SHELL_SITE = "examples/software/shell-site";
const COMPUTER = `COMP-ISO-${randomBytes(4).toString("hex")}`;
const PARTITIONS = 5;
const PROFILE_TIMEOUT_MS = 8_000;
const alice = { ...as.user("alice"), "content-type": "application/json" };

interface Details {
  answer: { status: string; connection?: Record<string, string> };
  instance: { status: { status: string; message?: string; at: string } | null; placement: { partitionId: string } | null };
}

let deployment: Deployment;
let master: RunningMaster;
let secrets: { path: string; dispose(): Promise<void> };
let snoopUrl: string;
let tokenPath: string;

/** A release whose default profile tries to read the files named by its parameters, and whose `loop` profile never returns. */
async function snoopRelease(folder: string): Promise<void> {
  await mkdir(folder, { recursive: true });
  await writeFile(
    join(folder, "slap-release.json"),
    JSON.stringify({ name: "snoop", install: [], profiles: { default: "profile.mjs", loop: "loop.mjs" }, parameters: { type: "object", properties: {}, additionalProperties: true } }),
  );
  await writeFile(
    join(folder, "profile.mjs"),
    `import { readdirSync, readFileSync } from "node:fs";
const attempt = (read) => { try { read(); return "read"; } catch (error) { return error.code ?? String(error); } };
export default async function deploy(slap) {
  const p = slap.parameters;
  slap.publish({
    token: attempt(() => readFileSync(p.token)),
    secret: attempt(() => readFileSync(p.secret)),
    root: attempt(() => readdirSync("/root")),
    uid: String(process.getuid()),
    gid: String(process.getgid()),
  });
}
`,
  );
  await writeFile(join(folder, "loop.mjs"), "export default async function deploy(slap) {\n  slap.publish({ never: 'reached' });\n  while (true) {}\n}\n");
}

async function post(path: string, body: unknown): Promise<Record<string, unknown>> {
  const response = await fetch(`${master.url}${path}`, { method: "POST", headers: alice, body: JSON.stringify(body) });
  return (await response.json()) as Record<string, unknown>;
}

async function details(instanceId: string): Promise<Details> {
  return (await (await fetch(`${master.url}/v1/instances/${instanceId}`, { headers: as.admin() })).json()) as Details;
}

/** Requests until the master answers ready (30 s at most). */
async function ready(releaseUrl: string, reference: string, parameters: Record<string, string> = {}, softwareType?: string): Promise<{ instanceId: string; connection: Record<string, string> }> {
  const body = { releaseUrl, reference, parameters, ...(softwareType === undefined ? {} : { softwareType }) };
  return eventually(`${reference} to be ready`, async () => {
    const answer = await post("/v1/requests?wait=2000", body);
    const instanceId = typeof answer.instanceId === "string" ? answer.instanceId : undefined;
    if (answer.status !== "ready" || instanceId === undefined) throw new Error(`answer ${JSON.stringify(answer)}, status ${JSON.stringify(instanceId === undefined ? null : (await details(instanceId)).instance.status)}`);
    return { instanceId, connection: answer.connection as Record<string, string> };
  }, 40_000, 50);
}

async function liveness(): Promise<{ state: string; lastSeen: string | null }> {
  const body = (await (await fetch(`${master.url}/v1/computers/${COMPUTER}`, { headers: as.admin() })).json()) as { computer: { liveness: { state: string; lastSeen: string | null } } };
  return body.computer.liveness;
}

before(async () => {
  secrets = await tempDir("slap-iso-");
  await chmod(secrets.path, 0o755);
  // The node's token file as an operator keeps it: 0600, owned by root (in a folder anyone may traverse).
  tokenPath = join(secrets.path, "node.token");
  await writeFile(tokenPath, "node-token-not-for-profiles\n", { mode: 0o600 });
  const snoop = join(secrets.path, "snoop");
  await snoopRelease(snoop);
  await chmod(snoop, 0o755);
  snoopUrl = pathToFileURL(snoop).href;
  deployment = await startDeployment({
    computer: COMPUTER,
    node: { partitions: PARTITIONS, portBase: await freePortBlock(PARTITIONS * 100), cwd: REPO, profileTimeoutMs: PROFILE_TIMEOUT_MS, heartbeatMs: 200, promiseTimeoutMs: 10_000 },
    releases: [WEB, snoopUrl, SHELL_SITE],
    logger: captureLogger().logger,
  });
  master = deployment.master;
});

after(async () => {
  await deployment.stop();
  await secrets.dispose();
});

describe("profiles run as their partition, in a process of their own", () => {
  if (ROOT) it("root: a profile is its partition's user and cannot read the node's token file, another partition's secret, nor /root (EACCES each)", async () => {
    const victim = await ready(WEB, "victim", { greeting: "hi" });
    const victimPartition = (await details(victim.instanceId)).instance.placement!.partitionId;
    const secret = join(deployment.root, victimPartition, "etc", "secrets", "password");
    const snooper = await ready(snoopUrl, "snooper", { token: tokenPath, secret });
    const partitionId = (await details(snooper.instanceId)).instance.placement!.partitionId;
    const user = deployment.node.partitionUser(partitionId)!;
    assert.notEqual(user.uid, 0);
    assert.deepEqual(snooper.connection, { token: "EACCES", secret: "EACCES", root: "EACCES", uid: String(user.uid), gid: String(user.gid) });
  });

  it("cuts a profile stuck in `while (true) {}` at its timeout, while another partition deploys and the master sees the node's heartbeats", async () => {
    const loop = await post("/v1/requests", { releaseUrl: snoopUrl, reference: "looper", softwareType: "loop" });
    const loopId = String(loop.instanceId);
    await eventually("the loop's processing to start", async () => ((await details(loopId)).instance.status?.status === "processing" ? true : undefined), 20_000, 20);
    const seenBefore = (await liveness()).lastSeen;
    const other = await ready(WEB, "during-the-loop", { greeting: "still here" });
    const greeting = ((await (await fetch(other.connection.url!)).json()) as { greeting: string }).greeting;
    assert.equal(greeting, "still here");
    const during = await eventually("a heartbeat during the loop", async () => {
      const live = await liveness();
      return live.lastSeen !== null && live.lastSeen !== seenBefore ? live : undefined;
    }, 3_000, 50);
    assert.equal(during.state, "responsive");
    const stillLooping = (await details(loopId)).instance.status;
    assert.equal(stillLooping?.status, "processing", "the heartbeat and the other deployment came while the profile looped");
    const timedOut = await eventually("the loop to time out", async () => {
      const status = (await details(loopId)).instance.status;
      return status?.status === "error" ? status : undefined;
    }, PROFILE_TIMEOUT_MS + 10_000, 50);
    assert.equal(timedOut.message, `profile timed out after ${PROFILE_TIMEOUT_MS / 1000} s`);
    const answer = (await details(loopId)).answer;
    assert.notEqual(answer.status, "ready", `nothing of the killed processing was applied (no publication): ${JSON.stringify(answer)}`);
    assert.equal(answer.connection?.never, undefined);
  });

  it("deploys shell-site, whose profile is a shell script: its page answers at the URL it published", async () => {
    const site = await ready(SHELL_SITE, "shell-site", { title: "a page from sh" });
    assert.match(site.connection.url!, /^http:\/\/.+:\d+\/$/);
    assert.equal(site.connection.title, "a page from sh");
    const page = await (await fetch(site.connection.url!)).text();
    assert.match(page, /<h1>a page from sh<\/h1>/);
  });
});
