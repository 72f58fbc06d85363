/**
 * The node follows its computer's desired state over HTTP (no log, no NATS): a change that comes
 * while a processing runs is processed after it (the node records the revision it used, not the
 * one of the moment it finished), and a node that loses its master keeps its services running and
 * resumes, when the master answers again, without processing again what did not change.
 */
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { mkdir, rm, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { Allocator } from "@slap/allocator";
import { JetStreamEventStore } from "@slap/eventstore-jetstream";
import { runMaster, type RunningMaster } from "@slap/master";
import { Node, removePartitionUsers } from "@slap/node";
import { as, callJson, captureLogger, eventually, freePortBlock, startNatsServer, tempDir, testToken, tokenFile, type NatsServer } from "@slap/testkit";

const PARTITIONS = 2;
/** A profile that waits for the file named by its `gate` parameter, runs a service, and answers its shared instances. */
const PROFILE = `import { existsSync } from "node:fs";
export default async function deploy(slap) {
  const gate = slap.parameters.gate;
  for (let i = 0; gate !== undefined && i < 1500 && !existsSync(gate); i++) await new Promise((r) => setTimeout(r, 20));
  slap.service("idle", { command: [process.execPath, "-e", "setInterval(() => {}, 60000)"] });
  slap.publish({ shared: String(slap.sharedInstances.length) });
  for (const s of slap.sharedInstances) slap.publishShared(s.instanceId, { url: "for " + s.reference });
}
`;

describe("a node on its desired state", () => {
  const { logger, lines } = captureLogger();
  const computer = `COMP-DS-${randomBytes(4).toString("hex")}`;
  const alice = as.user("alice");
  let server: NatsServer;
  let dir: Awaited<ReturnType<typeof tempDir>>;
  const stores: JetStreamEventStore[] = [];
  let master: RunningMaster;
  let allocator: Allocator;
  let node: Node;
  let release: string;
  let gate: string;
  let tokens: string;
  let port: number;

  const call = (method: string, path: string, body?: unknown) => callJson(`${master.url}${path}`, method, alice, body);
  const instance = async (id: string) => (await call("GET", `/v1/instances/${id}`)).body.instance as { status: { status: string } | null; host: unknown; connection: Record<string, string> | null };
  const request = async (reference: string, extra: Record<string, unknown> = {}) => {
    const { status, body } = await call("POST", "/v1/requests", { releaseUrl: release, reference, ...extra });
    assert.ok(status === 200 || status === 202, JSON.stringify(body));
    return body.instanceId as string;
  };
  const startMaster = async (onPort: number): Promise<RunningMaster> => {
    const store = await JetStreamEventStore.connect({ servers: server.url, logger });
    stores.push(store);
    return runMaster({ port: onPort, host: "127.0.0.1", tokens }, { store, logger });
  };

  before(async () => {
    server = await startNatsServer();
    dir = await tempDir("slap-desired-");
    release = join(dir.path, "release");
    gate = join(dir.path, "gate");
    await mkdir(release);
    await writeFile(join(release, "slap-release.json"), JSON.stringify({ name: "gated", install: [], profiles: { default: "profile.mjs" } }));
    await writeFile(join(release, "profile.mjs"), PROFILE);
    tokens = tokenFile(join(dir.path, "tokens"), { users: ["alice"], computers: [computer] });
    master = await startMaster(0);
    port = Number(new URL(master.url).port);
    const allocatorStore = await JetStreamEventStore.connect({ servers: server.url, logger });
    stores.push(allocatorStore);
    allocator = new Allocator({ store: allocatorStore, logger });
    await allocator.start();
    // No store, no NATS URL: the node has the master's URL and its token only.
    node = new Node({ masterUrl: master.url, token: testToken.node(computer), computerId: computer, partitions: PARTITIONS, root: join(dir.path, "srv"), portBase: await freePortBlock(PARTITIONS * 100), partitionUsers: "off", desiredWaitMs: 2_000, logger });
    await node.start();
    const supplied = await callJson(`${master.url}/v1/computers/${computer}/supply`, "POST", as.admin(), { releaseUrl: release });
    assert.equal(supplied.status, 200, JSON.stringify(supplied.body));
  });

  after(async () => {
    await node?.stop();
    await allocator?.stop();
    await master?.stop();
    for (const store of stores) await store.close();
    await server?.dispose();
    await dir?.dispose();
    await removePartitionUsers(computer, PARTITIONS);
  });

  it("processes a change that came during a processing once that processing is over (the revision it used is recorded, not the latest)", async () => {
    await writeFile(gate, "");
    const host = await request("host", { parameters: { gate } });
    await eventually("the host started", async () => ((await instance(host)).status?.status === "started" ? true : undefined));
    // The host's next run waits at the gate: the first shared instance starts it, the second comes during it.
    await rm(gate);
    const first = await request("tenant-1", { shared: true });
    await eventually("the host processing for tenant-1", async () => ((await instance(first)).host !== null && (await instance(host)).status?.status === "processing" ? true : undefined));
    const second = await request("tenant-2", { shared: true });
    await eventually("tenant-2 attached during the host's run", async () => ((await instance(second)).host !== null ? true : undefined));
    assert.equal((await instance(host)).status?.status, "processing", "the run is still at its gate");
    await writeFile(gate, "");
    const ready = await eventually("tenant-2 answered by its host", async () => (await instance(second)).connection ?? undefined);
    assert.deepEqual(ready, { url: "for tenant-2" });
    assert.deepEqual((await instance(host)).connection, { shared: "2" });
    assert.deepEqual((await instance(first)).connection, { url: "for tenant-1" });
  });

  it("keeps its services running while the master is gone, and resumes from the latest state without processing again what did not change", async () => {
    const entry = node.desired?.partitions.find((p) => p.instance?.reference === "host");
    assert.ok(entry !== undefined);
    const pid = node.servicePid(entry.partitionId, "idle");
    assert.ok(pid !== undefined);
    const processings = () => lines.filter((l) => l.msg === "processing instance").length;
    const before = processings();
    await master.stop();
    await eventually("the node noticing the master gone", () => Promise.resolve(lines.some((l) => String(l.msg).startsWith("desired state: the master does not answer")) ? true : undefined));
    process.kill(pid, 0);
    assert.equal(node.servicePid(entry.partitionId, "idle"), pid, "the service runs on while the master is gone");
    master = await startMaster(port);
    await eventually("the node hearing the master again", () => Promise.resolve(lines.some((l) => l.msg === "desired state: the master answers again") ? true : undefined), 30_000);
    // A change after the outage is still seen: the watch is live again.
    const later = await request("later");
    await eventually("a new instance placed after the outage started", async () => ((await instance(later)).status?.status === "started" ? true : undefined));
    assert.equal(node.servicePid(entry.partitionId, "idle"), pid, "the unchanged host was not deployed again");
    assert.equal(processings() - before, 1, "one processing: the new instance's, none of the unchanged one");
  });
});
