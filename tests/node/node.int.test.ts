import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { readdir, readFile, stat, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { fileURLToPath, pathToFileURL } from "node:url";
import { Allocator } from "@slap/allocator";
import { JetStreamEventStore } from "@slap/eventstore-jetstream";
import { eventually as poll, as, callJson, captureLogger, freePortBlock, startNatsServer, tempDir, testToken, tokenFile, type NatsServer } from "@slap/testkit";
// The master package exports no runner yet; its main module is the one way to start one in a test.
import { runMaster, type RunningMaster } from "@slap/master";
import { Node, pidFileOf, SERVICE_MARK } from "@slap/node";
import { softwareDir } from "@slap/node";
import { removePartitionUsers } from "@slap/node";

const RELEASES = fileURLToPath(new URL("../../services/node/test-releases/", import.meta.url));
const WEB = pathToFileURL(join(RELEASES, "web")).href;
const BROKEN = pathToFileURL(join(RELEASES, "broken")).href;
// Unique: as root the node makes one unix user per partition, named from the computer id (removed in after()).
const COMPUTER = `COMP-NODE-${randomBytes(4).toString("hex")}`;
const PARTITIONS = 6;

let server: NatsServer;
let master: RunningMaster;
let masterStore: JetStreamEventStore;
let allocatorStore: JetStreamEventStore;
let allocator: Allocator;
let node: Node;
/** First port of the partitions' ports (100 each), free on this host. */
let portBase: number;
let root: { path: string; dispose(): Promise<void> };
let tokens: { path: string; dispose(): Promise<void> };
const { logger } = captureLogger();

type Headers = Record<string, string>;
const alice: Headers = as.user("alice");
const admin: Headers = as.admin();

const call = (method: string, path: string, headers: Headers, body?: unknown) => callJson(`${master.url}${path}`, method, headers, body);

interface Details {
  instance: {
    instanceId: string;
    placement: { computerId: string; partitionId: string } | null;
    serial: number;
    destroyed: boolean;
    status: { status: string; message: string | null; waitingFor: string[]; processes: Array<{ name: string; state: string; pid?: number }> } | null;
    lastBang: { message: string; service: string | null; exitCode: number | null } | null;
  };
  answer: { status: string; connection?: Record<string, string> };
}

async function details(instanceId: string): Promise<Details> {
  const { status, body } = await call("GET", `/v1/instances/${instanceId}?secrets=1`, admin);
  assert.equal(status, 200, JSON.stringify(body));
  return body as unknown as Details;
}

/** Polls until the probe answers (testkit's `eventually`, 15_000 ms by default here). */
const eventually = <T>(what: string, probe: () => Promise<T | undefined>, timeoutMs = 15_000): Promise<T> => poll(what, probe, timeoutMs);

const untilInstance = (instanceId: string, what: string, check: (d: Details) => boolean, timeoutMs?: number): Promise<Details> =>
  eventually(what, async () => {
    const d = await details(instanceId);
    return check(d) ? d : undefined;
  }, timeoutMs);

async function request(reference: string, parameters: Record<string, string> = {}, state = "started"): Promise<string> {
  const { status, body } = await call("POST", "/v1/requests", alice, { releaseUrl: WEB, reference, parameters, state });
  assert.ok(status === 200 || status === 202, JSON.stringify(body));
  return body.instanceId as string;
}

async function getJson(url: string): Promise<Record<string, unknown>> {
  const response = await fetch(url, { signal: AbortSignal.timeout(2_000) });
  return (await response.json()) as Record<string, unknown>;
}

/** Every file of a partition (but logs) with its content and modification time. */
async function snapshot(dir: string): Promise<Record<string, string>> {
  const out: Record<string, string> = {};
  for (const entry of await readdir(dir, { recursive: true, withFileTypes: true })) {
    if (!entry.isFile()) continue;
    const full = join(entry.parentPath, entry.name);
    if (full.includes(`${join(dir, "var", "log")}`)) continue;
    out[full] = `${(await stat(full)).mtimeMs} ${await readFile(full, "utf8")}`;
  }
  return out;
}

/** `url` is http://127.0.0.1:<port>/ on a port of the node's partitions. */
function assertPartitionUrl(url: string): void {
  const port = Number(/^http:\/\/127\.0\.0\.1:(\d+)\/$/.exec(url)?.[1]);
  assert.ok(port >= portBase && port < portBase + PARTITIONS * 100, `${url} is not on a partition port (${portBase}-${portBase + PARTITIONS * 100 - 1})`);
}

function newNode(maxPeriodicityMs?: number): Node {
  return new Node({
    masterUrl: master.url,
    token: testToken.node(COMPUTER),
    computerId: COMPUTER,
    partitions: PARTITIONS,
    root: root.path,
    portBase,
    logger,
    promiseTimeoutMs: 5_000,
    ...(maxPeriodicityMs === undefined ? {} : { maxPeriodicityMs }),
  });
}

before(async () => {
  server = await startNatsServer();
  portBase = await freePortBlock(PARTITIONS * 100);
  root = await tempDir("slap-node-");
  tokens = await tempDir("slap-node-tokens-");
  masterStore = await JetStreamEventStore.connect({ servers: server.url, logger });
  allocatorStore = await JetStreamEventStore.connect({ servers: server.url, logger });
  master = await runMaster(
    { port: 0, host: "127.0.0.1", tokens: tokenFile(tokens.path, { users: ["alice"], computers: [COMPUTER] }) },
    { store: masterStore, logger },
  );
  allocator = new Allocator({ store: allocatorStore, logger });
  await allocator.start();
  node = newNode();
  await node.start();
  assert.equal((await call("POST", `/v1/computers/${COMPUTER}/supply`, admin, { releaseUrl: WEB })).status, 200);
});

after(async () => {
  await node.stop();
  await allocator.stop();
  await master.stop();
  await masterStore.close();
  await allocatorStore.close();
  await server.dispose();
  await root.dispose();
  await tokens.dispose();
  await removePartitionUsers(COMPUTER, PARTITIONS);
});

describe("the node agent, against a real master, allocator and nats-server", () => {
  let siteId = "";
  let sitePartition = "";
  let firstPassword = "";

  it("formats its partitions (mode 0750) and installs the supplied release", async () => {
    for (let n = 0; n < PARTITIONS; n++) assert.equal((await stat(join(root.path, `slappart${n}`))).mode & 0o777, 0o750);
    await eventually("the release to be available", async () => {
      const { body } = await call("GET", `/v1/computers/${COMPUTER}`, admin);
      const software = (body.computer as { software: Record<string, { status: string }> }).software[WEB];
      return software?.status === "available" ? true : undefined;
    });
    assert.equal(await readFile(join(softwareDir(root.path, WEB), "installed.txt"), "utf8"), "ok\n");
  });

  it("deploys an instance: its service answers, connection parameters are published, the request answers ready", async () => {
    siteId = await request("site", { greeting: "hi there" });
    const answer = await call("POST", "/v1/requests?wait=20000", alice, { releaseUrl: WEB, reference: "site", parameters: { greeting: "hi there" } });
    assert.equal(answer.body.status, "ready", JSON.stringify(answer.body));
    const connection = answer.body.connection as Record<string, string>;
    assertPartitionUrl(connection.url ?? "");
    assert.equal((await getJson(connection.url!)).greeting, "hi there");
    const d = await untilInstance(siteId, "status started", (x) => x.instance.status?.status === "started");
    sitePartition = d.instance.placement!.partitionId;
    const path = join(root.path, sitePartition);
    firstPassword = await readFile(join(path, "etc", "secrets", "password"), "utf8");
    assert.equal(connection.password, firstPassword);
    assert.equal((await stat(join(path, "etc", "secrets", "password"))).mode & 0o777, 0o600);
    assert.equal(await readFile(join(path, "etc", "web-rendered.conf"), "utf8"), `greeting = hi there\nport = ${connection.url!.split(":")[2]!.slice(0, 5)}\n`);
    const declared = JSON.parse(await readFile(join(path, "etc", "service", "web.json"), "utf8")) as { command: string[] };
    assert.equal(declared.command.length, 2);
    assert.equal(d.instance.status?.processes[0]?.state, "running");
  });

  it("processing again changes nothing in the partition and keeps the generated secret", async () => {
    const path = join(root.path, sitePartition);
    await node.idle();
    const before = await snapshot(path);
    const pid = node.servicePid(sitePartition, "web");
    const rounds = 20;
    const started = performance.now();
    for (let i = 0; i < rounds; i++) {
      node.reprocessAll();
      await node.idle();
    }
    const perInstance = (performance.now() - started) / rounds;
    logger.info({ perInstanceMs: perInstance }, "no-change reprocessing time");
    process.stdout.write(`# no-change reprocessing: ${perInstance.toFixed(1)} ms per instance (${rounds} rounds)\n`);
    assert.deepEqual(await snapshot(path), before);
    assert.equal(node.servicePid(sitePartition, "web"), pid, "an unchanged service is left running");
  });

  it("a restarted node stops what a dead node left running, brings the services back with the same secret", async () => {
    await node.stop();
    // What a node killed with SIGKILL leaves behind: its service still running, its pid file.
    const path = join(root.path, sitePartition);
    const declared = JSON.parse(await readFile(join(path, "etc", "service", "web.json"), "utf8")) as { command: [string, ...string[]]; env: Record<string, string>; cwd: string };
    // As the node started it: as the partition's user (when root), with the service's mark.
    const user = node.partitionUser(sitePartition);
    const leftover = spawn(declared.command[0], declared.command.slice(1), {
      cwd: declared.cwd,
      env: { ...declared.env, [SERVICE_MARK]: `${path}#web` },
      stdio: "ignore",
      ...(user === undefined ? {} : { uid: user.uid, gid: user.gid }),
    });
    const gone = new Promise((resolve) => leftover.once("exit", resolve));
    await writeFile(pidFileOf(path, "web"), JSON.stringify({ pid: leftover.pid, command: declared.command }));
    const siteUrl = (await details(siteId)).answer.connection!.url!;
    assert.equal((await eventually("the leftover to listen", () => getJson(siteUrl))).pid, leftover.pid);
    node = newNode();
    await node.start();
    const url = (await details(siteId)).answer.connection!.url!;
    const body = await eventually("the service to answer again", () => getJson(url));
    assert.equal(body.greeting, "hi there");
    assert.equal(await readFile(join(root.path, sitePartition, "etc", "secrets", "password"), "utf8"), firstPassword);
    assert.equal((await details(siteId)).answer.connection!.password, firstPassword);
    await gone;
    assert.notEqual(body.pid, leftover.pid);
  });

  it("a killed service is banged and restarted", async () => {
    await node.idle();
    const pid = node.servicePid(sitePartition, "web");
    assert.ok(pid !== undefined);
    const serial = (await details(siteId)).instance.serial;
    process.kill(pid, "SIGKILL");
    const banged = await untilInstance(siteId, "a bang", (d) => d.instance.lastBang !== null && d.instance.serial > serial);
    assert.match(banged.instance.lastBang!.message, /^service web was killed by SIGKILL/);
    const { body } = await call("GET", `/v1/events?type=InstanceBanged&filter=tree.*.instance.${siteId}`, admin);
    assert.equal((body.events as unknown[]).length, 1);
    const newPid = await eventually("the service to run again", () => Promise.resolve(node.servicePid(sitePartition, "web")));
    assert.notEqual(newPid, pid);
    const url = banged.answer.connection!.url!;
    assert.equal((await eventually("the service to answer", () => getJson(url))).pid, newPid);
  });

  it("a profile requesting another instance waits for it, then resumes once it publishes", async () => {
    const frontId = await request("front", { backend: "back" });
    const front = await untilInstance(frontId, "front started", (d) => d.answer.status === "ready" && d.instance.status?.status === "started", 20_000);
    const statuses = await call("GET", `/v1/events?type=InstanceStatusReported&filter=tree.*.instance.${frontId}`, admin);
    const reported = (statuses.body.events as Array<{ event: { data: { status: string; waitingFor?: string[] } } }>).map((e) => e.event.data);
    assert.ok(reported.some((s) => s.status === "waiting" && s.waitingFor?.includes("back")), JSON.stringify(reported));
    assert.equal(reported.at(-1)?.status, "started");
    const body = await getJson(front.answer.connection!.url!);
    assertPartitionUrl(String(body.backend));
  });

  it("bad parameters are refused at request time naming the parameter (the node reported the release's schema), without touching the partition's services", async () => {
    const bad = await call("POST", "/v1/requests", alice, { releaseUrl: WEB, reference: "bad", parameters: { greeting: "NOT LOWER" } });
    assert.equal(bad.status, 400, JSON.stringify(bad.body));
    assert.match(JSON.stringify(bad.body), /parameter greeting must match pattern/);
    const siteBefore = node.servicePid(sitePartition, "web");
    const colour = await call("POST", "/v1/requests", alice, { releaseUrl: WEB, reference: "site", parameters: { greeting: "hi there", colour: "red" } });
    assert.equal(colour.status, 400, JSON.stringify(colour.body));
    assert.match(JSON.stringify(colour.body), /parameter colour is not allowed/);
    await node.idle();
    assert.equal(node.servicePid(sitePartition, "web"), siteBefore);
    assert.equal((await details(siteId)).instance.status?.status, "started");
  });

  it("stop stops the services, start brings them back, destroy wipes and frees the partition for a new request", async () => {
    const url = (await details(siteId)).answer.connection!.url!;
    await call("POST", `/v1/instances/${siteId}/state`, alice, { state: "stopped" });
    await untilInstance(siteId, "status stopped", (d) => d.instance.status?.status === "stopped");
    assert.equal(node.servicePid(sitePartition, "web"), undefined);
    await assert.rejects(getJson(url));
    await call("POST", `/v1/instances/${siteId}/state`, alice, { state: "started" });
    await untilInstance(siteId, "status started", (d) => d.instance.status?.status === "started");
    assert.equal((await getJson(url)).greeting, "hi there");

    await call("POST", `/v1/instances/${siteId}/state`, alice, { state: "destroyed" });
    await untilInstance(siteId, "destroyed", (d) => d.instance.destroyed && d.instance.placement === null);
    assert.deepEqual(await readdir(join(root.path, sitePartition)), []);
    await assert.rejects(getJson(url));
    // Three partitions were taken (front, back and the destroyed one) of six: three new requests take three of the four free.
    const a = await request("again-1");
    const b = await request("again-2");
    const c = await request("again-3");
    const placed = await Promise.all([a, b, c].map((id) => untilInstance(id, "placed and started", (d) => d.instance.status?.status === "started")));
    assert.ok(placed.some((d) => d.instance.placement?.partitionId === sitePartition), "the freed partition is reused");
  });

  it("a service that keeps exiting is banged with its exit code and log tail, and restarted with back-off", async () => {
    await call("POST", `/v1/instances/${(await details((await request("again-3")))).instance.instanceId}/state`, alice, { state: "destroyed" });
    const crashId = await request("crashy", { crash: "yes" });
    const first = await untilInstance(crashId, "a bang", (d) => d.instance.lastBang !== null);
    assert.match(first.instance.lastBang!.message, /^service web exited with code 4 \(restarting in 1000 ms\)/);
    assert.equal(first.instance.lastBang!.exitCode, 4);
    assert.equal(first.instance.lastBang!.service, "web");
    assert.match(first.instance.lastBang!.message, /dying on purpose/);
    // The exit 1 s later is not banged if the first bang's processing is still running (one pending bang at a time).
    const second = await untilInstance(crashId, "a second bang", (d) => /restarting in (2000|4000) ms/.test(d.instance.lastBang?.message ?? ""), 15_000);
    assert.ok(second.instance.serial > first.instance.serial);
    await call("POST", `/v1/instances/${crashId}/state`, alice, { state: "destroyed" });
    await untilInstance(crashId, "destroyed", (d) => d.instance.destroyed);
  });

  it("a release whose install step fails is reported in error with its log", async () => {
    assert.equal((await call("POST", `/v1/computers/${COMPUTER}/supply`, admin, { releaseUrl: BROKEN })).status, 200);
    const software = await eventually("the broken release in error", async () => {
      const { body } = await call("GET", `/v1/computers/${COMPUTER}`, admin);
      const s = (body.computer as { software: Record<string, { status: string; log: string | null }> }).software[BROKEN];
      return s?.status === "error" ? s : undefined;
    });
    assert.match(software.log ?? "", /boom: the compiler is missing/);
    assert.match(software.log ?? "", /exited with code 3/);
  });

  it("processes an unchanged instance again once its maximum periodicity has passed", async () => {
    await node.stop();
    node = newNode(1_000);
    await node.start();
    await node.idle();
    const frontId = (await call("POST", "/v1/requests", alice, { releaseUrl: WEB, reference: "front", parameters: { backend: "back" } })).body.instanceId as string;
    const serial = (await details(frontId)).instance.serial;
    const count = async (): Promise<number> => {
      const { body } = await call("GET", `/v1/events?type=InstanceStatusReported&filter=tree.*.instance.${frontId}`, admin);
      return (body.events as Array<{ event: { data: { status: string } } }>).filter((e) => e.event.data.status === "started").length;
    };
    const before = await count();
    await eventually("two more processings", async () => ((await count()) >= before + 2 ? true : undefined), 6_000);
    assert.equal((await details(frontId)).instance.serial, serial, "nothing changed: the periodicity alone reprocessed it");
  });
});
