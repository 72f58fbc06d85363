import assert from "node:assert/strict";
import { spawn, type ChildProcess } from "node:child_process";
import { randomBytes } from "node:crypto";
import { readdir, readFile } from "node:fs/promises";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { fileURLToPath, pathToFileURL } from "node:url";
import { pino } from "pino";
import { Allocator } from "@slap/allocator";
import { JetStreamEventStore } from "@slap/eventstore-jetstream";
import { eventually, as, callJson, freePortBlock, processGone, startNatsServer, tempDir, testToken, tokenFile, type NatsServer } from "@slap/testkit";
import { runMaster, type RunningMaster } from "@slap/master";
import { softwareDir } from "@slap/node";

// A real node process (services/node/src/main.ts, configured from the environment) that the test
// stops with SIGSTOP: it truly stops answering, its services run on.
const REPO = fileURLToPath(new URL("../../", import.meta.url));
const NODE_MAIN = fileURLToPath(new URL("../../services/node/src/main.ts", import.meta.url));
const WEB = pathToFileURL(fileURLToPath(new URL("../../services/node/test-releases/web", import.meta.url))).href;
const COMPUTER = `COMP-LIVE-${randomBytes(3).toString("hex")}`;
const GHOST = `COMP-GHOST-${randomBytes(3).toString("hex")}`;
const HEARTBEAT_MS = 300;
const STALE_AFTER_MS = 1_500;

const logger = pino({ level: "silent" });
const admin = as.admin();
const alice = as.user("alice");

let server: NatsServer;
let stores: JetStreamEventStore[] = [];
let master: RunningMaster;
let allocator: Allocator;
let child: ChildProcess | undefined;
let childExited: Promise<void> = Promise.resolve();
let childLog = "";
let stopped = false;
let dir: { path: string; dispose(): Promise<void> };
let siteId = "";
let servicePid = 0;

const call = (method: string, path: string, headers: Record<string, string>, body?: unknown, url = master.url) => callJson(`${url}${path}`, method, headers, body);


interface Liveness {
  state: string;
  lastSeen: string | null;
}
interface Instance {
  instanceId: string;
  placement: { computerId: string; partitionId: string } | null;
  node?: (Liveness & { computerId: string }) | null;
  status: { status: string; at: string; processes: Array<{ name: string; state: string; pid?: number }> } | null;
  serial: number;
}

async function computer(url = master.url): Promise<{ liveness?: Liveness }> {
  const { status, body } = await call("GET", `/v1/computers/${COMPUTER}`, admin, undefined, url);
  assert.equal(status, 200, JSON.stringify(body));
  return body.computer as { liveness?: Liveness };
}

async function details(instanceId: string): Promise<{ instance: Instance; answer: { status: string } }> {
  const { status, body } = await call("GET", `/v1/instances/${instanceId}`, alice);
  assert.equal(status, 200, JSON.stringify(body));
  return body as unknown as { instance: Instance; answer: { status: string } };
}

/** The pids of the processes running this test's web service (its server.mjs), from /proc. */
async function webProcesses(): Promise<number[]> {
  const script = join(softwareDir(join(dir.path, "srv"), WEB), "server.mjs");
  const pids: number[] = [];
  for (const entry of await readdir("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    const cmdline = await readFile(`/proc/${entry}/cmdline`, "utf8").catch(() => "");
    if (cmdline.split("\0").includes(script)) pids.push(Number(entry));
  }
  return pids;
}

before(async () => {
  server = await startNatsServer();
  dir = await tempDir("slap-liveness-");
  stores = await Promise.all([0, 1, 2].map(() => JetStreamEventStore.connect({ servers: server.url, logger })));
  const tokens = tokenFile(join(dir.path, "tokens"), { users: ["alice"], computers: [COMPUTER, GHOST] });
  master = await runMaster({ port: 0, host: "127.0.0.1", tokens, staleAfterMs: STALE_AFTER_MS, logLevel: "silent" }, { store: stores[0]!, logger });
  allocator = new Allocator({ store: stores[1]!, logger });
  await allocator.start();
  child = spawn(process.execPath, ["--import", "tsx", NODE_MAIN], {
    cwd: REPO,
    env: {
      ...process.env,
      NATS_URL: server.url,
      SLAP_MASTER: master.url,
      SLAP_TOKEN: testToken.node(COMPUTER),
      SLAP_COMPUTER: COMPUTER,
      SLAP_PARTITIONS: "2",
      SLAP_ROOT: join(dir.path, "srv"),
      SLAP_PORT_BASE: String(await freePortBlock(2 * 10)),
      SLAP_PORTS_PER_PARTITION: "10",
      SLAP_PARTITION_USERS: "off",
      SLAP_HEARTBEAT_MS: String(HEARTBEAT_MS),
      LOG_LEVEL: "info",
    },
    stdio: ["ignore", "ignore", "pipe"],
  });
  child.stderr!.on("data", (chunk: Buffer) => {
    childLog = (childLog + chunk.toString()).slice(-50_000);
  });
  const spawned = child;
  childExited = new Promise((resolve) => spawned.once("exit", () => resolve()));
  await eventually("the node to register its computer", async () => ((await call("GET", `/v1/computers/${COMPUTER}`, admin)).status === 200 ? true : undefined));
  assert.equal((await call("POST", `/v1/computers/${COMPUTER}/supply`, admin, { releaseUrl: WEB })).status, 200);
  const requested = await call("POST", "/v1/requests", alice, { releaseUrl: WEB, reference: "site", parameters: { greeting: "still here" } });
  siteId = requested.body.instanceId as string;
  await eventually("the site to be ready and started", async () => {
    const d = await details(siteId);
    return d.answer.status === "ready" && d.instance.status?.status === "started" ? d : undefined;
  });
});

after(async () => {
  if (child !== undefined && child.exitCode === null && child.signalCode === null) {
    if (stopped) child.kill("SIGCONT");
    child.kill("SIGTERM");
    const killer = setTimeout(() => child?.kill("SIGKILL"), 10_000);
    await childExited;
    clearTimeout(killer);
  }
  // A service left behind by a node killed the hard way.
  for (const pid of await webProcesses().catch(() => [])) process.kill(pid, "SIGKILL");
  await allocator?.stop();
  await master?.stop();
  for (const store of stores) await store.close();
  await server?.dispose();
  await dir?.dispose();
});

describe("a node that stops answering is shown as such, and nothing moves when it comes back", () => {
  it("shows a node that heartbeats as responsive: its computer and the instance placed on it", async () => {
    const live = await eventually("the computer to be responsive", async () => {
      const c = await computer();
      return c.liveness?.state === "responsive" ? c.liveness : undefined;
    });
    assert.ok(live.lastSeen !== null && !Number.isNaN(Date.parse(live.lastSeen)), JSON.stringify(live));
    const { instance } = await details(siteId);
    assert.equal(instance.node?.computerId, COMPUTER);
    assert.equal(instance.node?.state, "responsive");
    const list = await call("GET", "/v1/computers", alice);
    const listed = (list.body.computers as Array<{ computerId: string; liveness?: Liveness }>).find((c) => c.computerId === COMPUTER);
    assert.equal(listed?.liveness?.state, "responsive");
    servicePid = instance.status!.processes.find((p) => p.name === "web")!.pid!;
    assert.deepEqual(await webProcesses(), [servicePid]);
  });

  it("shows a stopped node (SIGSTOP) unresponsive since it was last heard from, its instance too, and the answer stays ready", async () => {
    child!.kill("SIGSTOP");
    stopped = true;
    const silent = await eventually("the computer to be unresponsive", async () => {
      const c = await computer();
      return c.liveness?.state === "unresponsive" ? c.liveness : undefined;
    });
    assert.ok(silent.lastSeen !== null);
    assert.ok(Date.now() - Date.parse(silent.lastSeen) > STALE_AFTER_MS, JSON.stringify(silent));
    // Nothing is heard while it is stopped: the last time stays put.
    await new Promise((r) => setTimeout(r, HEARTBEAT_MS * 2));
    assert.deepEqual((await computer()).liveness, silent);

    const { instance, answer } = await details(siteId);
    assert.deepEqual(instance.node, { computerId: COMPUTER, state: "unresponsive", lastSeen: silent.lastSeen });
    assert.equal(answer.status, "ready", "the answer keeps its meaning: placed and published");
    const listed = (await call("GET", "/v1/instances", alice)).body.instances as Instance[];
    assert.equal(listed.find((i) => i.instanceId === siteId)?.node?.state, "unresponsive");
    const byReference = await call("GET", "/v1/references/site", alice);
    assert.equal((byReference.body.instance as Instance).node?.state, "unresponsive");

    // As of a past moment there is no liveness: it is now, not history.
    const at = (await call("GET", "/healthz", admin)).body.position as number;
    const then = await call("GET", `/v1/computers/${COMPUTER}?at=${at}`, admin);
    assert.equal((then.body.computer as { liveness?: unknown }).liveness, undefined);
    const instancesThen = (await call("GET", `/v1/instances?at=${at}`, alice)).body.instances as Instance[];
    assert.equal(instancesThen.find((i) => i.instanceId === siteId)?.node, undefined);

    // The service runs on meanwhile.
    assert.ok(!processGone(servicePid));
  });

  it("shows it responsive again once it continues (SIGCONT): one allocation per instance, the same service process, no second one", async () => {
    const allocationsBefore = await allocations();
    child!.kill("SIGCONT");
    stopped = false;
    await eventually("the computer to be responsive again", async () => ((await computer()).liveness?.state === "responsive" ? true : undefined));
    await eventually("the instance's node to be responsive again", async () => ((await details(siteId)).instance.node?.state === "responsive" ? true : undefined));

    // A processing after the return (a bang) leaves the running service alone.
    const { instance: before } = await details(siteId);
    assert.equal((await call("POST", `/v1/instances/${siteId}/bang`, alice, { message: "after the pause" })).status, 200);
    const after = await eventually("the site to be processed again after the bang", async () => {
      const d = await details(siteId);
      return d.instance.serial > before.serial && d.instance.status?.status === "started" && Date.parse(d.instance.status.at) > Date.parse(before.status!.at) ? d : undefined;
    });
    assert.equal(after.instance.status!.processes.find((p) => p.name === "web")?.pid, servicePid, "the same service process");
    assert.deepEqual(await webProcesses(), [servicePid], "one process per service");
    const allocated = await allocations();
    assert.deepEqual(allocated, allocationsBefore, "no new allocation while the node was silent nor after");
    assert.deepEqual(allocated, { [siteId]: 1 }, "exactly one PartitionAllocated per instance");
  });

  it("takes a heartbeat only from the computer's own node: another node or a user is refused, an unregistered computer is not found", async () => {
    assert.equal((await call("POST", `/v1/computers/${COMPUTER}/heartbeat`, as.node(COMPUTER))).status, 200);
    const answered = await call("POST", `/v1/computers/${COMPUTER}/heartbeat`, as.node(COMPUTER));
    assert.equal((answered.body.liveness as Liveness).state, "responsive");
    assert.equal((await call("POST", `/v1/computers/${COMPUTER}/heartbeat`, as.node(GHOST))).status, 403);
    assert.equal((await call("POST", `/v1/computers/${COMPUTER}/heartbeat`, alice)).status, 403);
    assert.equal((await call("POST", `/v1/computers/${COMPUTER}/heartbeat`, admin)).status, 403);
    assert.equal((await call("POST", `/v1/computers/${GHOST}/heartbeat`, as.node(GHOST))).status, 404);
    assert.equal((await call("POST", `/v1/computers/${COMPUTER}/heartbeat`, {})).status, 401);
  });

  it("a master that just started knows nothing of the node until it hears from it (liveness is not in the log)", async () => {
    const second = await runMaster({ port: 0, host: "127.0.0.1", tokens: tokenFile(join(dir.path, "tokens2"), { computers: [COMPUTER] }), staleAfterMs: 60_000, logLevel: "silent" }, { store: stores[2]!, logger });
    try {
      await eventually("the second master to have the computer", async () => ((await call("GET", `/v1/computers/${COMPUTER}`, admin, undefined, second.url)).status === 200 ? true : undefined));
      assert.deepEqual((await computer(second.url)).liveness, { state: "unknown", lastSeen: null });
      // Any call with the node's token is a sign of life, not only a heartbeat.
      assert.equal((await call("GET", "/v1/whoami", as.node(COMPUTER), undefined, second.url)).status, 200);
      assert.equal((await computer(second.url)).liveness?.state, "responsive");
    } finally {
      await second.stop();
    }
  });
});

/** How many `PartitionAllocated` each instance has in the log. */
async function allocations(): Promise<Record<string, number>> {
  const { body } = await call("GET", "/v1/events?type=PartitionAllocated", admin);
  const counts: Record<string, number> = {};
  for (const { event } of body.events as Array<{ event: { data: { instanceId: string } } }>) counts[event.data.instanceId] = (counts[event.data.instanceId] ?? 0) + 1;
  return counts;
}
