import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { readFile, rm, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { fileURLToPath, pathToFileURL } from "node:url";
import { as, callJson, captureLogger, eventually, freePortBlock, testToken } from "@slap/testkit";
import { fakeIo, main } from "@slap/cli";
import { restartsWithin } from "@slap/node";
import { startDeployment, type Deployment } from "./deployment.fixture.js";

// What SlapOS's master does with trees, shared instances, bangs, upgrades and supplies (issue 16),
// checked through the HTTP API against a real node.
const RELEASES = fileURLToPath(new URL("../../services/node/test-releases/", import.meta.url));
const TREE = pathToFileURL(join(RELEASES, "tree")).href;
/** The same release under another URL: the "new version" an instance is upgraded to in place. */
const TREE_V2 = join(RELEASES, "tree");
const BROKEN = pathToFileURL(join(RELEASES, "broken")).href;
const TYPED = pathToFileURL(join(RELEASES, "typed")).href;
const COMPUTER = `COMP-SEM-${randomBytes(4).toString("hex")}`;
const PARTITIONS = 12;
const { logger } = captureLogger();

let deployment: Deployment;
const alice = as.user("alice");
const admin = as.admin();
const call = (method: string, path: string, headers: Record<string, string>, body?: unknown) => callJson(`${deployment.master.url}${path}`, method, headers, body);

interface Health {
  ok: boolean;
  message: string | null;
  since: string;
  promises: Array<{ name: string; ok: boolean }>;
}

interface Details {
  instance: { instanceId: string; serial: number; destroyed: boolean; releaseUrl: string; placement: { computerId: string; partitionId: string } | null; health: Health | null };
  answer: { status: string; reason?: string; blocked?: string; connection?: Record<string, string>; health?: Health };
}

async function details(instanceId: string): Promise<Details> {
  const { status, body } = await call("GET", `/v1/instances/${instanceId}?secrets=1`, admin);
  assert.equal(status, 200, JSON.stringify(body));
  return body as unknown as Details;
}

const until = (instanceId: string, what: string, check: (d: Details) => boolean, timeoutMs = 20_000): Promise<Details> =>
  eventually(what, async () => {
    const d = await details(instanceId);
    return check(d) ? d : undefined;
  }, timeoutMs);

async function request(body: Record<string, unknown>): Promise<string> {
  const { status, body: answer } = await call("POST", "/v1/requests", alice, { releaseUrl: TREE, ...body });
  assert.ok(status === 200 || status === 202, JSON.stringify(answer));
  return answer.instanceId as string;
}

async function events(type: string, instanceId: string): Promise<Array<{ position: number; event: { data: Record<string, unknown> } }>> {
  const { body } = await call("GET", `/v1/events?type=${type}&filter=tree.*.instance.${instanceId}`, admin);
  return body.events as Array<{ position: number; event: { data: Record<string, unknown> } }>;
}

/** The log position now: what happens after it is what a step caused. */
async function position(): Promise<number> {
  const { body } = await call("GET", "/healthz", admin);
  return body.position as number;
}

/** Resolves once the instance reported a processing that started after `since` and ended (started). */
const reprocessedAfter = (instanceId: string, since: number): Promise<true> =>
  eventually(`${instanceId} processed again`, async () => {
    const reported = (await events("InstanceStatusReported", instanceId)).filter((e) => e.position > since);
    return reported.some((e) => e.event.data.status === "processing") && reported.at(-1)?.event.data.status === "started" ? true : undefined;
  }, 20_000);

/** The ids of a tree's instances, root first. */
async function treeOf(rootId: string): Promise<string[]> {
  const { body } = await call("GET", "/v1/instances", admin);
  const trees = body.trees as Array<{ treeId: string; instanceIds: string[] }>;
  return trees.find((t) => t.treeId === rootId)?.instanceIds ?? [];
}

before(async () => {
  deployment = await startDeployment({
    computer: COMPUTER,
    node: { partitions: PARTITIONS, portBase: await freePortBlock(PARTITIONS * 100), promiseIntervalMs: 300, promiseTimeoutMs: 500 },
    releases: [TREE],
    logger,
  });
});

after(async () => {
  await deployment.stop();
});

describe("trees, shared instances, bangs, upgrades and supplies, as SlapOS's master (issue 16)", () => {
  let hostId = "";

  it("a shared instance follows its parameters, and requested destroyed it leaves its host's list and is reported destroyed", async () => {
    hostId = await request({ reference: "host" });
    await until(hostId, "host ready", (d) => d.answer.status === "ready");
    const sla = { instance_guid: hostId };
    const tenantId = await request({ reference: "tenant", shared: true, sla, parameters: { colour: "red" } });
    await until(tenantId, "tenant ready with red", (d) => d.answer.connection?.colour === "red" && d.answer.connection.host === "host");
    await until(hostId, "host serving tenant", (d) => d.answer.connection?.tenants === "tenant");
    await request({ reference: "tenant", shared: true, sla, parameters: { colour: "blue" } });
    await until(tenantId, "tenant ready with blue", (d) => d.answer.connection?.colour === "blue");
    await request({ reference: "tenant", shared: true, sla, parameters: { colour: "blue" }, state: "destroyed" });
    await until(tenantId, "tenant destroyed", (d) => d.answer.status === "destroyed" && d.instance.destroyed);
    await until(hostId, "host no longer serving tenant", (d) => d.answer.connection !== undefined && (d.answer.connection.tenants ?? "") === "");
  });

  it("a bang reprocesses every instance of the tree, and a bang of a shared instance its host", async () => {
    const rootId = await request({ reference: "bang-root", parameters: { depth: "2" } });
    await until(rootId, "root ready", (d) => d.answer.status === "ready");
    const members = await treeOf(rootId);
    assert.equal(members.length, 3);
    for (const id of members) await until(id, `${id} ready`, (d) => d.answer.status === "ready");
    await deployment.node.idle();
    const leaf = members[2]!;
    const since = await position();
    const before = await Promise.all(members.map(async (id) => (await details(id)).instance.serial));
    assert.equal((await call("POST", `/v1/instances/${leaf}/bang`, alice, { message: "the leaf is wrong" })).status, 200);
    for (const [n, id] of members.entries()) {
      await reprocessedAfter(id, since);
      assert.ok((await details(id)).instance.serial > before[n]!, `${id} bumped`);
    }

    const tenantId = await request({ reference: "tenant-2", shared: true, sla: { instance_guid: hostId } });
    await until(tenantId, "tenant-2 ready", (d) => d.answer.status === "ready");
    await deployment.node.idle();
    const sinceShared = await position();
    assert.equal((await call("POST", `/v1/instances/${tenantId}/bang`, alice, { message: "tenant-2 is wrong" })).status, 200);
    await reprocessedAfter(hostId, sinceShared);
  });

  it("a computer bang (its node or admin) reprocesses every instance on the computer", async () => {
    await deployment.node.idle();
    const placed = (((await call("GET", "/v1/instances", admin)).body.instances as Array<{ instanceId: string; placement: unknown; destroyed: boolean }>) ?? []).filter((i) => i.placement !== null && !i.destroyed);
    assert.ok(placed.length >= 4);
    assert.equal((await call("POST", `/v1/computers/${COMPUTER}/bang`, alice, {})).status, 403);
    const since = await position();
    const banged = await call("POST", `/v1/computers/${COMPUTER}/bang`, as.node(COMPUTER), { message: "the disk was replaced" });
    assert.equal(banged.status, 200, JSON.stringify(banged.body));
    for (const { instanceId } of placed) await reprocessedAfter(instanceId, since);
  });

  it("a three-level tree is destroyed in seconds: its children's release wakes the root's node", async () => {
    const rootId = await request({ reference: "doomed", parameters: { depth: "2" } });
    const members = await eventually("three instances", async () => {
      const ids = await treeOf(rootId);
      return ids.length === 3 ? ids : undefined;
    });
    for (const id of members) await until(id, `${id} ready`, (d) => d.answer.status === "ready");
    const started = performance.now();
    assert.ok([200, 202].includes((await call("POST", `/v1/instances/${rootId}/state`, alice, { state: "destroyed" })).status));
    // A minute is what a refused root waited before; far less is expected.
    for (const id of members) await until(id, `${id} destroyed and freed`, (d) => d.instance.destroyed && d.instance.placement === null, 30_000);
    const seconds = (performance.now() - started) / 1000;
    process.stdout.write(`# three-level tree destroyed in ${seconds.toFixed(1)} s\n`);
    assert.ok(seconds < 30, `took ${seconds} s`);
  });

  it("upgrades in place: another release under the same reference is one change, on the same partition, once the computer has it", async () => {
    const id = await request({ reference: "upgraded" });
    const first = await until(id, "ready on v1", (d) => d.answer.connection?.release === TREE);
    const partition = first.instance.placement!;
    const since = await position();
    const { status, body } = await call("POST", "/v1/requests", alice, { releaseUrl: TREE_V2, reference: "upgraded" });
    assert.equal(status, 202, JSON.stringify(body));
    assert.equal(body.instanceId, id);
    assert.equal(body.reason, `waiting for release ${TREE_V2} on ${partition.computerId}/${partition.partitionId}`);
    const changes = (await events("InstanceParametersChanged", id)).filter((e) => e.position > since);
    assert.deepEqual(changes.map((e) => e.event.data.releaseUrl), [TREE_V2]);
    assert.equal((await call("POST", `/v1/computers/${COMPUTER}/supply`, admin, { releaseUrl: TREE_V2 })).status, 200);
    const upgraded = await until(id, "ready on v2", (d) => d.answer.connection?.release === TREE_V2);
    assert.deepEqual(upgraded.instance.placement, partition);
    const allocations = await call("GET", `/v1/events?type=PartitionAllocated&after=${since}`, admin);
    assert.equal((allocations.body.events as unknown[]).length, 0, "no re-placement");
  });

  it("a crash-looping service: one pending bang at a time, each answered by a processing; a few events an hour", async () => {
    // Each processing takes 1.5 s: the exit 1 s after the first bang happens while it runs.
    const id = await request({ reference: "crashy", parameters: { crash: "yes", slow: "1500" } });
    await eventually("three bangs", async () => ((await events("InstanceBanged", id)).length >= 3 ? true : undefined), 40_000);
    await call("POST", `/v1/instances/${id}/state`, alice, { state: "destroyed" });
    await until(id, "crashy destroyed", (d) => d.instance.destroyed, 20_000);
    const { body } = await call("GET", `/v1/events?filter=tree.*.instance.${id}`, admin);
    const story = (body.events as Array<{ event: { type: string; data: { status?: string } } }>).map((e) => (e.event.type === "InstanceStatusReported" ? e.event.data.status! : e.event.type));
    const bangsAt = story.flatMap((step, n) => (step === "InstanceBanged" ? [n] : []));
    for (const [k, at] of bangsAt.slice(1).entries()) {
      const between = story.slice(bangsAt[k]! + 1, at);
      const processing = between.indexOf("processing");
      assert.ok(processing >= 0 && between.slice(processing + 1).some((s) => s === "started" || s === "error"), `a bang before the previous one was processed: ${story.join(" ")}`);
    }
    // Per bang: the bang and its processing's reports (the first bang to the last one's processing).
    const last = bangsAt.at(-1)!;
    const end = story.findIndex((s, n) => n > last && (s === "started" || s === "error"));
    const perBang = (end - bangsAt[0]! + 1) / bangsAt.length;
    const firstHour = (restartsWithin(3_600_000) + 1) * perBang;
    const laterHours = (restartsWithin(2 * 3_600_000) - restartsWithin(3_600_000)) * perBang;
    process.stdout.write(`# crash-looping instance: ${perBang.toFixed(1)} events per bang; at most ${firstHour.toFixed(0)} events in its first hour, ${laterHours.toFixed(0)} an hour after\n`);
    assert.ok(perBang <= 4, story.join(" "));
    assert.ok(firstHour <= 50 && laterHours <= 4);
  });

  it("a request nothing can progress is blocked with its cause, `slap request` exits 1 with it, and fixing the cause makes it progress", async () => {
    const slap = async (...argv: string[]) => {
      const t = fakeIo({ SLAP_MASTER: deployment.master.url, SLAP_TOKEN: testToken.user("alice") });
      return { code: await main(["request", ...argv, "--timeout", "20"], t.io), stderr: t.stderr() };
    };
    const typo = await slap(TREE, "typo", "--sla", "computer_giud=x");
    assert.equal(typo.code, 1, typo.stderr);
    assert.match(typo.stderr, /blocked: unknown SLA key computer_giud/);
    const { status, body } = await call("POST", "/v1/requests", alice, { releaseUrl: TREE, reference: "typo", sla: { computer_giud: "x" } });
    assert.equal(status, 202);
    assert.match(String(body.blocked), /unknown SLA key computer_giud/);
    const fixed = await slap(TREE, "typo");
    assert.equal(fixed.code, 0, fixed.stderr);

    assert.equal((await call("POST", `/v1/computers/${COMPUTER}/supply`, admin, { releaseUrl: BROKEN })).status, 200);
    const broken = await slap(BROKEN, "broken");
    assert.equal(broken.code, 1, broken.stderr);
    assert.match(broken.stderr, new RegExp(`blocked: release ${BROKEN} failed to install on ${COMPUTER}`));
  });

  it("carries the instance's health in its answer and view; promises are checked again periodically, an event only when a result changes", async () => {
    const id = await request({ reference: "watched", parameters: { promise: "yes" } });
    const ready = await until(id, "ready and healthy", (d) => d.answer.status === "ready" && d.answer.health?.ok === true);
    assert.deepEqual(ready.instance.health?.promises.map((p) => [p.name, p.ok]), [["flag", true]]);
    const path = join(deployment.root, ready.instance.placement!.partitionId);
    const checks = async (): Promise<number> => (await readFile(join(path, "checks"), "utf8").catch(() => "")).split("\n").length - 1;
    const since = await position();
    await writeFile(join(path, "sick"), "");
    const sick = await until(id, "failing", (d) => d.answer.health?.ok === false);
    assert.equal(sick.answer.status, "ready", "ready is published, not healthy (SlapOS's meaning)");
    assert.match(sick.answer.health!.message ?? "", /promise flag failed/);
    assert.deepEqual(sick.instance.health, sick.answer.health);
    const failingSince = sick.answer.health!.since;
    // Checked again a few times while still failing: nothing more is reported.
    const seen = await checks();
    await eventually("three more checks", async () => ((await checks()) >= seen + 3 ? true : undefined));
    assert.equal((await details(id)).answer.health?.since, failingSince);
    await rm(join(path, "sick"));
    await until(id, "healthy again", (d) => d.answer.health?.ok === true);
    const reports = (await events("InstanceStatusReported", id)).filter((e) => e.position > since);
    assert.deepEqual(reports.map((e) => e.event.data.status), ["error", "started"]);
  });

  it("typed parameters: any JSON value, checked at request time against the schema the node reported with the release, typed for the profile", async () => {
    // Requested before any node reported the release (and its schema): accepted, pending.
    const early = await call("POST", "/v1/requests", alice, { releaseUrl: TYPED, reference: "early", parameters: { n: "many" } });
    assert.equal(early.status, 202, JSON.stringify(early.body));
    assert.equal((await call("POST", `/v1/computers/${COMPUTER}/supply`, admin, { releaseUrl: TYPED })).status, 200);
    const earlyId = early.body.instanceId as string;
    const blocked = await until(earlyId, "blocked by the schema", (d) => d.answer.blocked !== undefined);
    assert.match(blocked.answer.blocked ?? "", /parameter n must be integer \(got "many"\)/);
    const { body: computer } = await call("GET", `/v1/computers/${COMPUTER}`, admin);
    const software = (computer.computer as { software: Record<string, { parametersSchema: { required?: string[] } | null }> }).software[TYPED];
    assert.deepEqual(software?.parametersSchema?.required, ["n"], "the node reported the schema with the release");

    const refuse = async (parameters: Record<string, unknown>, path: string, message: RegExp) => {
      const { status, body } = await call("POST", "/v1/requests", alice, { releaseUrl: TYPED, reference: "typed", parameters });
      assert.equal(status, 400, JSON.stringify(body));
      const error = body.error as { message: string; issues: Array<{ path: string }> };
      assert.deepEqual(error.issues.map((i) => i.path), [path]);
      assert.match(error.message, message);
    };
    await refuse({ n: "3" }, "parameters.n", /parameter n must be integer/);
    await refuse({ n: 3, frontend: { port: 70000 } }, "parameters.frontend", /parameter frontend\/port must be <= 65535/);
    await refuse({ n: 3, size: "medium" }, "parameters.size", /must match exactly one schema/);
    await refuse({ n: 3, colour: "red" }, "parameters.colour", /parameter colour is not allowed/);
    await refuse({ label: "x" }, "parameters.n", /parameter n is required/);

    const parameters = { n: 3, tls: true, frontend: { port: 8080 }, size: "small", label: "" };
    const { status, body } = await call("POST", "/v1/requests?wait=20000", alice, { releaseUrl: TYPED, reference: "typed", parameters });
    assert.equal(status, 200, JSON.stringify(body));
    const connection = body.connection as Record<string, string>;
    assert.equal(connection.types, "frontend:object,n:number,replicas:number,size:string,tls:boolean");
    assert.deepEqual(JSON.parse(connection.parameters!), { frontend: { port: 8080 }, n: 3, replicas: 2, size: "small", tls: true });
    const id = body.instanceId as string;
    // An empty value is the same as an absent one: the same request without it changes nothing.
    const since = await position();
    const { label: _, ...without } = parameters;
    assert.equal((await call("POST", "/v1/requests", alice, { releaseUrl: TYPED, reference: "typed", parameters: without })).status, 200);
    assert.equal((await events("InstanceParametersChanged", id)).filter((e) => e.position > since).length, 0);

    // The early request, fixed, progresses without a new reference.
    const fixed = await call("POST", "/v1/requests?wait=20000", alice, { releaseUrl: TYPED, reference: "early", parameters: { n: 4 } });
    assert.equal(fixed.status, 200, JSON.stringify(fixed.body));
  });

  it("a node may report a release destroyed only once it was unsupplied (409 while supplied)", async () => {
    const report = () => call("POST", `/v1/computers/${COMPUTER}/software`, as.node(COMPUTER), { releaseUrl: TREE_V2, status: "destroyed" });
    const refused = await report();
    assert.equal(refused.status, 409, JSON.stringify(refused.body));
    assert.match((refused.body.error as { message: string }).message, /unsupplied/);
  });
});
