/**
 * Who may do what, against a real master (embedded log in a temp dir, its allocator, real HTTP):
 * every route refuses a caller without a valid token; a user reaches only their own trees; a
 * node's token speaks only for its own computer and, as a partition, only for what that
 * partition holds. Each refusal is counted; the last test adds them up.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { after, before, describe, it, type TestContext } from "node:test";
import { MasterClient } from "@slap/api";
import { instanceIdFor } from "@slap/events";
import { as, callJson, captureLogger, tempDir, testToken, tokenFile } from "@slap/testkit";
import { dashboardFiles } from "@slap/dashboard";
import { runMaster, type RunningMaster } from "@slap/master";
import { withAllocator } from "../alongside.fixture.js";

/** The dashboard's pages and files, as the master serves them. */
const DASHBOARD = await dashboardFiles();
const DASHBOARD_PATHS = ["/", "/dashboard", ...Object.keys(DASHBOARD).filter((f) => f !== "index.html").map((f) => `/dashboard/${f}`)];

const RELEASE = "file:///software/auth-test";
const OTHER_RELEASE = "file:///software/auth-test-other";

type Headers = Record<string, string>;
const alice = as.user("alice");
const bob = as.user("bob");
const admin = as.admin();
const comp1 = as.node("COMP-1");
const comp2 = as.node("COMP-2");

let dir: Awaited<ReturnType<typeof tempDir>>;
let master: RunningMaster;
const { logger, lines } = captureLogger();

/** Alice's instance on COMP-1, bob's two on COMP-2 (b3 to be destroyed), and where each runs. */
const a1 = instanceIdFor({ kind: "user", userId: "alice" }, "site");
const b2 = instanceIdFor({ kind: "user", userId: "bob" }, "db");
const b3 = instanceIdFor({ kind: "user", userId: "bob" }, "old");
const placement: Record<string, { computerId: string; partitionId: string }> = {};
/** Headers of the partition holding an instance (its node's token plus x-slap-partition). */
const holderOf = (instanceId: string): Headers => as.partition(placement[instanceId]!.computerId, placement[instanceId]!.partitionId);

const call = (method: string, path: string, headers: Headers, body?: unknown) => callJson(`${master.url}${path}`, method, headers, body);

/** The log's head position, as the master has read it. */
async function head(): Promise<number> {
  const { body } = await call("GET", "/healthz", {});
  return body.position as number;
}

const CODES = { 401: "Unauthorized", 403: "Forbidden", 404: "NotFound" } as const;
type Refusal = keyof typeof CODES;
/** Refusals answered so far, by status; and events of others' trees left out of a reader's log. */
const counted = { 401: 0, 403: 0, 404: 0, filtered: 0 };

/** Asks, expects the refusal `status` with its error code, and that nothing was appended. */
async function refused(status: Refusal, method: string, path: string, headers: Headers, body?: unknown): Promise<Record<string, unknown>> {
  const before = await head();
  const answer = await call(method, path, headers, body ?? (method === "POST" ? {} : undefined));
  const what = `${method} ${path} as ${JSON.stringify(headers)}: ${JSON.stringify(answer.body)}`;
  assert.equal(answer.status, status, what);
  assert.equal((answer.body.error as { code?: string } | undefined)?.code, CODES[status], what);
  assert.equal(await head(), before, `${what}: nothing appended`);
  counted[status]++;
  return answer.body;
}

async function ok(method: string, path: string, headers: Headers, body?: unknown): Promise<Record<string, unknown>> {
  const answer = await call(method, path, headers, body);
  assert.ok(answer.status === 200 || answer.status === 202, `${method} ${path}: ${answer.status} ${JSON.stringify(answer.body)}`);
  return answer.body;
}

function report(t: TestContext, what: string, before: typeof counted): void {
  const delta = (key: keyof typeof counted) => counted[key] - before[key];
  const total = delta(401) + delta(403) + delta(404);
  t.diagnostic(`${what}: ${total} refusals (401×${delta(401)}, 403×${delta(403)}, 404×${delta(404)})${delta("filtered") > 0 ? `, ${delta("filtered")} events filtered out` : ""}`);
}

async function placedWithin(instanceId: string): Promise<{ computerId: string; partitionId: string }> {
  const deadline = Date.now() + 15_000;
  for (;;) {
    const { body } = await call("GET", `/v1/instances/${instanceId}`, admin);
    const where = (body.instance as { placement: { computerId: string; partitionId: string } | null } | undefined)?.placement;
    if (where) return where;
    if (Date.now() > deadline) assert.fail(`${instanceId} not placed: ${JSON.stringify(body)}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

const register = (computerId: string, base: number) => ({
  computerId,
  networkId: "net-auth",
  partitions: [0, 1].map((n) => ({ partitionId: `slappart${n}`, address: `10.9.${base % 100}.${n + 1}`, ports: { from: base + n * 100, to: base + n * 100 + 99 } })),
});

before(async () => {
  dir = await tempDir("slap-auth-int-");
  master = await runMaster(
    {
      data: join(dir.path, "data"),
      tokens: tokenFile(join(dir.path, "auth"), { users: ["alice", "bob"], computers: ["COMP-1", "COMP-2"] }),
      port: 0,
      host: "127.0.0.1",
    },
    { logger, alongside: withAllocator, dashboard: DASHBOARD },
  );
  await ok("POST", "/v1/computers", comp1, register("COMP-1", 23_000));
  await ok("POST", "/v1/computers", comp2, register("COMP-2", 23_200));
  for (const [computerId, node] of [["COMP-1", comp1], ["COMP-2", comp2]] as const) {
    await ok("POST", `/v1/computers/${computerId}/supply`, admin, { releaseUrl: RELEASE });
    await ok("POST", `/v1/computers/${computerId}/software`, node, { releaseUrl: RELEASE, status: "available" });
  }
  assert.equal((await ok("POST", "/v1/requests", alice, { releaseUrl: RELEASE, reference: "site", sla: { computer_guid: "COMP-1" } })).instanceId, a1);
  assert.equal((await ok("POST", "/v1/requests", bob, { releaseUrl: RELEASE, reference: "db", sla: { computer_guid: "COMP-2" } })).instanceId, b2);
  assert.equal((await ok("POST", "/v1/requests", bob, { releaseUrl: RELEASE, reference: "old", sla: { computer_guid: "COMP-2" } })).instanceId, b3);
  for (const id of [a1, b2, b3]) placement[id] = await placedWithin(id);
  assert.equal(placement[a1]!.computerId, "COMP-1");
  assert.equal(placement[b2]!.computerId, "COMP-2");
  assert.equal(placement[b3]!.computerId, "COMP-2");
  // b3 is on its way out: requested destroyed, waiting for its node (the allocator appends nothing until then).
  await ok("POST", `/v1/instances/${b3}/state`, bob, { state: "destroyed" });
});

after(async () => {
  await master?.stop();
  await dir?.dispose();
});

describe("without a valid token", () => {
  it("every route but the public ones answers 401: no token, a malformed header, another scheme, an unknown or a too long token", async (t) => {
    const before = { ...counted };
    const document = (await ok("GET", "/openapi.json", {})) as { paths: Record<string, Record<string, { security?: unknown[] }>> };
    const operations = Object.entries(document.paths).flatMap(([path, methods]) => Object.entries(methods).map(([method, operation]) => ({ path, method, operation })));
    const isPublic = (o: (typeof operations)[number]) => Array.isArray(o.operation.security) && o.operation.security.length === 0;
    const guarded = operations.filter((o) => !isPublic(o));
    assert.deepEqual(operations.filter(isPublic).map((o) => o.path).sort(), ["/dashboard", "/healthz", "/openapi.json", "/readyz"]);
    // A floor: every route http.ts serves is described, so none escapes the loop below.
    for (const route of ["POST /v1/requests", "GET /v1/instances/{instanceId}/watch", "POST /v1/instances/{instanceId}/destroyed", "GET /v1/events/stream", "GET /v1/audit", "POST /v1/computers/{computerId}/supply"]) {
      assert.ok(guarded.some((o) => `${o.method.toUpperCase()} ${o.path}` === route), `${route} is in the OpenAPI document`);
    }
    const concrete = (path: string) => path.replace("{instanceId}", a1).replace("{computerId}", "COMP-1").replace("{reference}", "site");
    const callers: Array<[string, Headers]> = [
      ["no token", {}],
      ["a malformed header (no scheme)", { authorization: testToken.admin }],
      ["a malformed header (empty token)", { authorization: "Bearer " }],
      ["another scheme", { authorization: `Basic ${Buffer.from(`admin:${testToken.admin}`).toString("base64")}` }],
      ["an unknown token", { authorization: `Bearer ${testToken.user("mallory")}` }],
      ["a token too long", { authorization: `Bearer ${testToken.admin}${"x".repeat(512)}` }],
      ["an unknown token acting for a partition", { authorization: `Bearer ${testToken.node("COMP-9")}`, "x-slap-partition": "COMP-1/slappart0" }],
    ];
    for (const { path, method } of guarded) {
      for (const [, headers] of callers) await refused(401, method.toUpperCase(), concrete(path), headers);
    }
    // A route that does not exist is a 404 to anyone: the API is public (/openapi.json), a 401 would only mislead.
    for (const [, headers] of callers) await refused(404, "GET", "/v1/nothing-here", headers);
    assert.ok(guarded.length >= 17, `${guarded.length} guarded routes`);
    report(t, `${guarded.length} routes × ${callers.length} callers`, before);
  });

  it("the health check, the API description and the dashboard's files answer without one", async () => {
    assert.deepEqual(Object.keys(await ok("GET", "/healthz", {})).sort(), ["ok", "position"]);
    assert.equal(((await ok("GET", "/openapi.json", {})) as { openapi: string }).openapi, "3.1.0");
    assert.ok(DASHBOARD_PATHS.includes("/") && DASHBOARD_PATHS.includes("/dashboard"));
    for (const path of DASHBOARD_PATHS) {
      const response = await fetch(`${master.url}${path}`);
      assert.equal(response.status, 200, path);
      const text = await response.text();
      assert.ok(!text.includes(a1) && !text.includes("alice"), `${path} carries no data`);
    }
  });
});

describe("a user", () => {
  it("cannot see, stop, destroy, bang or watch another user's instance: 404, as if it did not exist", async (t) => {
    const before = { ...counted };
    const serial = ((await ok("GET", `/v1/instances/${b2}`, bob)).instance as { serial: number }).serial;
    await refused(404, "GET", `/v1/instances/${b2}`, alice);
    await refused(404, "GET", `/v1/instances/${b2}?secrets=1`, alice);
    await refused(404, "GET", `/v1/instances/${b2}/watch`, alice);
    await refused(404, "POST", `/v1/instances/${b2}/state`, alice, { state: "stopped" });
    await refused(404, "POST", `/v1/instances/${b2}/state`, alice, { state: "destroyed" });
    await refused(404, "POST", `/v1/instances/${b2}/bang`, alice, { message: "mine now" });
    await refused(404, "GET", "/v1/references/db", alice); // a reference names the caller's own instance: hers, none
    // Asking for bob's reference makes alice an instance of her own, never touches bob's.
    assert.notEqual((await ok("POST", "/v1/requests", alice, { releaseUrl: RELEASE, reference: "db", sla: { computer_guid: "COMP-NOWHERE" } })).instanceId, b2);
    const list = await ok("GET", "/v1/instances", alice);
    const ids = (list.instances as Array<{ instanceId: string }>).map((i) => i.instanceId);
    assert.ok(ids.includes(a1) && !ids.includes(b2) && !ids.includes(b3), ids.join(", "));
    assert.ok((list.trees as Array<{ treeId: string }>).every((tree) => tree.treeId !== b2 && tree.treeId !== b3));
    const after = (await ok("GET", `/v1/instances/${b2}`, bob)).instance as { serial: number; requestedState: string };
    assert.deepEqual([after.serial, after.requestedState], [serial, "started"], "bob's instance is untouched");
    report(t, "alice at bob's instances", before);
  });

  it("cannot speak for an instance, even her own: only the partition holding it publishes, reports or confirms destruction (403; 404 for others' instances)", async (t) => {
    const before = { ...counted };
    await refused(403, "POST", `/v1/instances/${a1}/connection`, alice, { parameters: { url: "http://forged" } });
    await refused(403, "POST", `/v1/instances/${a1}/status`, alice, { status: "started" });
    await refused(403, "POST", `/v1/instances/${a1}/destroyed`, alice);
    // Bob's instances answer as if they did not exist: ids derive from references, a 403 or 409 would tell alice they do.
    await refused(404, "POST", `/v1/instances/${b2}/connection`, alice, { parameters: { url: "http://forged" } });
    await refused(404, "POST", `/v1/instances/${b2}/status`, alice, { status: "started" });
    await refused(404, "POST", `/v1/instances/${b3}/destroyed`, alice);
    await refused(404, "POST", `/v1/instances/${b2}/destroyed`, alice);
    await refused(403, "POST", `/v1/instances/${b3}/destroyed`, admin);
    report(t, "users as partitions", before);
  });

  it("cannot register a computer, report or supply its software (403), nor act as a partition", async (t) => {
    const before = { ...counted };
    await refused(403, "POST", "/v1/computers", alice, register("COMP-3", 23_400));
    await refused(403, "POST", "/v1/computers", alice, register("COMP-1", 23_400));
    await refused(403, "POST", "/v1/computers/COMP-1/software", alice, { releaseUrl: RELEASE, status: "error" });
    await refused(403, "GET", "/v1/instances", { ...alice, "x-slap-partition": placement[a1]!.computerId + "/" + placement[a1]!.partitionId });
    await refused(403, "POST", `/v1/instances/${a1}/connection`, { ...admin, "x-slap-partition": "COMP-1/slappart0" }, { parameters: { url: "http://forged" } });
    // What a computer installs is the operator's choice: only admin supplies.
    await refused(403, "POST", "/v1/computers/COMP-2/supply", alice, { releaseUrl: OTHER_RELEASE });
    await ok("POST", "/v1/computers/COMP-2/supply", admin, { releaseUrl: OTHER_RELEASE });
    // Admin speaks for every computer.
    await ok("POST", "/v1/computers/COMP-1/software", admin, { releaseUrl: RELEASE, status: "available" });
    report(t, "alice at the computers", before);
  });

  it("reads only the events of her own trees (others' filtered out) and may not audit (403)", async (t) => {
    const before = { ...counted };
    type LogRecord = { position: number; event: { type: string; aggregate: { kind: string; treeId?: string; computerId?: string }; data: { treeId?: string; instanceId?: string } } };
    const bobs = new Set([b2, b3]);
    const aboutBob = (r: LogRecord) =>
      bobs.has(r.event.aggregate.treeId ?? "") || bobs.has(r.event.data.treeId ?? "") || (r.event.type === "PartitionReleased" && bobs.has(r.event.data.instanceId ?? ""));
    const everything = (await ok("GET", "/v1/events", admin)).events as LogRecord[];
    const ofBob = everything.filter(aboutBob);
    assert.ok(ofBob.length >= 5, `bob has events: ${ofBob.length}`);
    const seen = (await ok("GET", "/v1/events", alice)).events as LogRecord[];
    assert.deepEqual(seen.filter(aboutBob), []);
    assert.ok(seen.some((r) => r.event.aggregate.treeId === a1), "alice reads her own tree");
    counted.filtered += ofBob.length;
    assert.deepEqual((await ok("GET", `/v1/events?filter=tree.${b2}.>`, alice)).events, []);
    assert.ok(((await ok("GET", `/v1/events?filter=tree.${b2}.>`, bob)).events as unknown[]).length > 0);

    // The live stream filters the same way: read up to alice's latest event, none of bob's on the way.
    await ok("POST", `/v1/instances/${a1}/bang`, alice, { message: "last" });
    const last = await head();
    const stop = new AbortController();
    const streamed: LogRecord[] = [];
    // The stream as every client reads it (@slap/api's MasterClient); a refusal (not a 200) throws.
    const client = new MasterClient({ master: master.url, token: testToken.user("alice") });
    try {
      for await (const record of client.eventStream({ after: 0 }, AbortSignal.any([stop.signal, AbortSignal.timeout(10_000)]))) {
        streamed.push(record as unknown as LogRecord);
        if (streamed.at(-1)?.position === last) break;
      }
    } catch (error) {
      if ((error as Error).name !== "TimeoutError") throw error; // the assertion below says what was missing
    } finally {
      stop.abort();
    }
    assert.equal(streamed.at(-1)?.position, last, "the stream reached alice's latest event");
    assert.deepEqual(streamed.filter(aboutBob), []);

    await refused(403, "GET", "/v1/audit", alice);
    await refused(403, "GET", "/v1/audit", bob);
    report(t, "alice's reading", before);
  });
});

describe("a node's token", () => {
  it("speaks for its own computer only: cannot register, report software for or act as a partition of another (403)", async (t) => {
    const before = { ...counted };
    await refused(403, "POST", "/v1/computers", comp1, register("COMP-2", 23_400));
    await refused(403, "POST", "/v1/computers/COMP-2/software", comp1, { releaseUrl: RELEASE, status: "error" });
    const asComp2 = (partitionId: string): Headers => ({ ...comp1, "x-slap-partition": `COMP-2/${partitionId}` });
    const b2At = placement[b2]!.partitionId;
    await refused(403, "GET", "/v1/instances", asComp2(b2At));
    await refused(403, "GET", `/v1/instances/${b2}`, asComp2(b2At));
    await refused(403, "POST", `/v1/instances/${b2}/connection`, asComp2(b2At), { parameters: { url: "http://forged" } });
    await refused(403, "POST", `/v1/instances/${b2}/status`, asComp2(b2At), { status: "started" });
    await refused(403, "POST", `/v1/instances/${b2}/bang`, asComp2(b2At), { message: "x" });
    await refused(403, "POST", `/v1/instances/${b3}/destroyed`, asComp2(placement[b3]!.partitionId));
    await refused(403, "POST", "/v1/requests", asComp2(b2At), { releaseUrl: RELEASE, reference: "inside bob's tree" });
    // Nor may a node supply software, not even to itself: that is the operator's (admin's) order.
    await refused(403, "POST", "/v1/computers/COMP-1/supply", comp1, { releaseUrl: OTHER_RELEASE });
    await refused(403, "POST", "/v1/computers/COMP-1/supply", holderOf(a1), { releaseUrl: OTHER_RELEASE });
    report(t, "COMP-1 for COMP-2", before);
  });

  it("cannot publish, report or bang for an instance on another computer, even through its own partition", async (t) => {
    const before = { ...counted };
    for (const [label, headers] of [["node COMP-1", comp1], ["COMP-1's partition holding a1", holderOf(a1)]] as const) {
      await refused(403, "POST", `/v1/instances/${b2}/connection`, headers, { parameters: { url: `http://forged-by-${label.replace(/\W/g, "-")}` } });
      await refused(403, "POST", `/v1/instances/${b2}/status`, headers, { status: "started" });
      await refused(403, "POST", `/v1/instances/${b3}/destroyed`, headers);
      // Bang and state check visibility first: an instance outside the partition's tree is not found.
      await refused(404, "POST", `/v1/instances/${b2}/bang`, headers, { message: "x" });
      await refused(404, "POST", `/v1/instances/${b2}/state`, headers, { state: "stopped" });
      await refused(404, "GET", `/v1/instances/${b2}`, headers);
    }
    report(t, "COMP-1 at bob's instances on COMP-2", before);
  });

  it("requests only into the tree of the instance its partition holds; a node, or an empty partition, requests nothing (403)", async (t) => {
    const before = { ...counted };
    await refused(403, "POST", "/v1/requests", comp1, { releaseUrl: RELEASE, reference: "child" });
    const empty = placement[a1]!.partitionId === "slappart0" ? "slappart1" : "slappart0";
    await refused(403, "POST", "/v1/requests", as.partition("COMP-1", empty), { releaseUrl: RELEASE, reference: "child" });
    // Same reference as bob's instance: the partition's request lands in alice's tree, not bob's.
    const answer = await ok("POST", "/v1/requests", holderOf(a1), { releaseUrl: RELEASE, reference: "db", sla: { computer_guid: "COMP-NOWHERE" } });
    const child = instanceIdFor({ kind: "tree", treeId: a1 }, "db");
    assert.equal(answer.instanceId, child);
    assert.notEqual(child, b2);
    const shown = (await ok("GET", `/v1/instances/${child}`, alice)).instance as { treeId: string; requester: unknown };
    assert.equal(shown.treeId, a1);
    assert.deepEqual(shown.requester, { kind: "instance", instanceId: a1, treeId: a1 });
    await refused(404, "GET", `/v1/instances/${child}`, bob);
    report(t, "COMP-1 requesting", before);
  });

  it("may not audit, as a node or as a partition (403), and reads no other computer's events", async (t) => {
    const before = { ...counted };
    await refused(403, "GET", "/v1/audit", comp1);
    await refused(403, "GET", "/v1/audit", holderOf(a1));
    type LogRecord = { event: { aggregate: { kind: string; computerId?: string; instanceId?: string } } };
    const aboutComp2 = (r: LogRecord) => r.event.aggregate.computerId === "COMP-2" || [b2, b3].includes(r.event.aggregate.instanceId ?? "");
    const ofComp2 = ((await ok("GET", "/v1/events", admin)).events as LogRecord[]).filter(aboutComp2);
    assert.ok(ofComp2.length > 0);
    const read = (await ok("GET", "/v1/events", comp1)).events as LogRecord[];
    assert.ok(read.some((r) => r.event.aggregate.computerId === "COMP-1"), "COMP-1 reads its own computer");
    assert.deepEqual(read.filter(aboutComp2), []);
    counted.filtered += ofComp2.length;
    report(t, "COMP-1 reading", before);
  });
});

describe("what a user learns of others' instances", () => {
  const tenant = instanceIdFor({ kind: "user", userId: "alice" }, "tenant");

  before(async () => {
    // Bob's db becomes a ready host; alice attaches a shared instance to it (she can compute its id).
    await ok("POST", `/v1/instances/${b2}/connection`, holderOf(b2), { parameters: { url: "http://b2" } });
    await ok("POST", "/v1/requests", alice, { releaseUrl: RELEASE, reference: "tenant", shared: true, parameters: { api_key: "alice-key" }, sla: { instance_guid: b2 } });
    const deadline = Date.now() + 15_000;
    while (((await ok("GET", `/v1/instances/${tenant}`, alice)).instance as { host: unknown }).host === null) {
      if (Date.now() > deadline) assert.fail("alice's shared instance was not attached to bob's host");
      await new Promise((r) => setTimeout(r, 20));
    }
  });

  it("the host's owner does not see other users' shared instances on it, nor their parameters", async () => {
    const shown = await ok("GET", `/v1/instances/${b2}?secrets=1`, bob);
    assert.deepEqual(shown.sharedInstances, [], JSON.stringify(shown.sharedInstances));
    assert.ok(!JSON.stringify(shown).includes("alice-key"));
    const own = await ok("GET", `/v1/instances/${tenant}`, alice);
    assert.equal((own.instance as { host: { instanceId: string } }).host.instanceId, b2, "alice's instance is on bob's host");
  });

  it("the computers show that others' partitions are held, not by which instance", async () => {
    const partitionsOf = async (headers: Headers) => {
      const { computers } = (await ok("GET", "/v1/computers", headers)) as { computers: Array<{ computerId: string; partitions: Record<string, { instanceId: string | null }> }> };
      return computers.find((c) => c.computerId === "COMP-2")!.partitions;
    };
    const byAlice = JSON.stringify(await partitionsOf(alice));
    assert.ok(!byAlice.includes(b2) && !byAlice.includes(b3), byAlice);
    assert.match(byAlice, /\(another tree\)/);
    assert.ok(JSON.stringify(await partitionsOf(bob)).includes(b2), "bob sees his own");
    assert.ok(JSON.stringify(await partitionsOf(admin)).includes(b2), "admin sees all");
    const one = (await ok("GET", "/v1/computers/COMP-2", alice)) as { computer: unknown };
    assert.ok(!JSON.stringify(one).includes(b2));
  });

  it("reading the events of another's tree tells nothing: next is the head, as for a tree that does not exist", async () => {
    const position = await head();
    const bobs = await ok("GET", `/v1/events?filter=${encodeURIComponent(`tree.${b2}.>`)}`, alice);
    const nobody = await ok("GET", `/v1/events?filter=${encodeURIComponent("tree.NOBODY.>")}`, alice);
    assert.deepEqual(bobs, { events: [], next: position });
    assert.deepEqual(nobody, { events: [], next: position });
  });

  it("a shared request naming another's instance as its host learns nothing of it from its pending reason", async () => {
    const named = await ok("POST", "/v1/requests", alice, { releaseUrl: OTHER_RELEASE, reference: "probe", shared: true, sla: { instance_guid: b3 } });
    const unknown = await ok("POST", "/v1/requests", alice, { releaseUrl: OTHER_RELEASE, reference: "probe-2", shared: true, sla: { instance_guid: "NOBODY" } });
    assert.equal(named.status, "pending");
    assert.equal(String(named.reason).replace(b3, "X"), String(unknown.reason).replace("NOBODY", "X"), `${String(named.reason)} / ${String(unknown.reason)}`);
    assert.ok(!String(named.reason).includes("file://"), String(named.reason));
  });

  it("a caller without a token cannot hold a request open with x-slap-seen", async () => {
    const warnings = () => lines.filter((line) => line.msg === "x-slap-seen names a position this master has not reached: answering anyway").length;
    const before = warnings();
    const answer = await call("GET", "/healthz", { "x-slap-seen": "999999999" });
    assert.equal(answer.status, 200);
    assert.equal(warnings(), before, "the header of an unauthenticated caller is not waited for");
  });
});

describe("a computer's desired state", () => {
  interface Desired {
    computerId: string;
    revision: number;
    position: number;
    partitions: Array<{ partitionId: string; revision: number; instance: { instanceId: string } | null }>;
  }
  const desired = async (computerId: string, headers: Headers, query = ""): Promise<Desired> => (await ok("GET", `/v1/computers/${computerId}/desired${query}`, headers)) as unknown as Desired;

  it("is served to its own node (and admin) only: another computer's node, its partitions, a user or nobody are refused", async (t) => {
    const before = { ...counted };
    await refused(403, "GET", "/v1/computers/COMP-1/desired", comp2);
    await refused(403, "GET", "/v1/computers/COMP-1/desired?index=0&wait=5000", comp2);
    await refused(403, "GET", "/v1/computers/COMP-1/desired", holderOf(b2));
    await refused(403, "GET", "/v1/computers/COMP-1/desired", alice);
    await refused(403, "GET", "/v1/computers/COMP-2/desired", bob);
    await refused(401, "GET", "/v1/computers/COMP-1/desired", {});
    await refused(401, "GET", "/v1/computers/COMP-1/desired", { authorization: "Bearer not-a-known-token-0123456789" });
    // A node asking for a computer that does not exist learns nothing either: it is not its own.
    await refused(403, "GET", "/v1/computers/COMP-9/desired", comp1);
    assert.equal((await desired("COMP-1", admin)).computerId, "COMP-1");
    report(t, "desired state", before);
  });

  it("holds only the computer's own partitions and the instances they hold, nothing of another computer", async () => {
    const state = await desired("COMP-1", comp1);
    assert.equal(state.computerId, "COMP-1");
    assert.deepEqual(state.partitions.map((p) => p.partitionId), ["slappart0", "slappart1"]);
    assert.deepEqual(state.partitions.flatMap((p) => (p.instance === null ? [] : [p.instance.instanceId])), [a1]);
    assert.equal(state.partitions.find((p) => p.instance !== null)?.partitionId, placement[a1]!.partitionId);
    const text = JSON.stringify(state);
    for (const other of [b2, b3, "COMP-2", "bob"]) assert.ok(!text.includes(other), `COMP-1's desired state names ${other}: ${text}`);
    const asPartition = await desired("COMP-1", holderOf(a1));
    assert.deepEqual(asPartition.partitions, state.partitions);
  });

  it("answers a blocking query once the computer's own state changes, not for another computer's change nor a status report", async () => {
    const start = await desired("COMP-1", comp1);
    const entryOf = (state: Desired) => state.partitions.find((p) => p.partitionId === placement[a1]!.partitionId)!;
    let answered: Desired | undefined;
    const poll = desired("COMP-1", comp1, `?index=${start.revision}&wait=20000`).then((state) => (answered = state));
    await ok("POST", `/v1/instances/${b2}/bang`, bob, { message: "another computer's change" });
    await ok("POST", `/v1/instances/${a1}/status`, holderOf(a1), { status: "processing" });
    const quiet = await head();
    // The master has folded both commits (a read after them answers at their position) and the watch is still waiting.
    assert.ok((await desired("COMP-1", comp1)).position >= quiet);
    assert.equal(answered, undefined, "a commit that touches no partition of COMP-1 wakes none of its watchers");
    assert.equal((await desired("COMP-1", comp1)).revision, start.revision);
    await ok("POST", `/v1/instances/${a1}/bang`, alice, { message: "reprocess" });
    const next = await poll;
    assert.ok(next.revision > start.revision, JSON.stringify(next));
    assert.ok(entryOf(next).revision > entryOf(start).revision, "the banged instance's partition has a newer revision");
    const audit = await ok("GET", "/v1/audit", admin);
    assert.equal(audit.equal, true, JSON.stringify(audit));
    assert.ok((audit.models as Array<{ name: string }>).some((m) => m.name === "desired"), "the audit covers the desired states");
  });
});

describe("the allowed paths", () => {
  it("each token is who it says; alice and bob see their own; a partition speaks for what it holds; a node for its computer", async () => {
    assert.deepEqual((await ok("GET", "/v1/whoami", alice)).actor, { kind: "user", userId: "alice" });
    assert.deepEqual((await ok("GET", "/v1/whoami", admin)).actor, { kind: "user", userId: "admin" });
    assert.deepEqual((await ok("GET", "/v1/whoami", comp1)).actor, { kind: "node", computerId: "COMP-1" });
    assert.deepEqual((await ok("GET", "/v1/whoami", holderOf(a1))).actor, { kind: "partition", ...placement[a1] });

    assert.equal(((await ok("GET", `/v1/instances/${a1}`, alice)).instance as { instanceId: string }).instanceId, a1);
    assert.equal(((await ok("GET", `/v1/instances/${b2}`, bob)).instance as { instanceId: string }).instanceId, b2);
    assert.equal(((await ok("GET", "/v1/references/site", alice)).instance as { instanceId: string }).instanceId, a1);

    await ok("POST", `/v1/instances/${a1}/connection`, holderOf(a1), { parameters: { url: "http://10.9.0.1:23000" } });
    await ok("POST", `/v1/instances/${a1}/status`, holderOf(a1), { status: "started" });
    await ok("POST", `/v1/instances/${a1}/bang`, holderOf(a1), { message: "restarted" });
    const answer = await call("POST", "/v1/requests", alice, { releaseUrl: RELEASE, reference: "site", sla: { computer_guid: "COMP-1" } });
    assert.deepEqual([answer.status, answer.body.connection], [200, { url: "http://10.9.0.1:23000" }]);

    await ok("POST", "/v1/computers/COMP-1/software", comp1, { releaseUrl: RELEASE, status: "available", log: "rebuilt" });
    await ok("POST", "/v1/computers", comp2, register("COMP-2", 23_200));
    await ok("POST", `/v1/instances/${b3}/destroyed`, holderOf(b3));
    assert.equal(((await ok("GET", `/v1/instances/${b3}`, bob)).instance as { destroyed: boolean }).destroyed, true);

    const audit = await ok("GET", "/v1/audit", admin);
    assert.equal(audit.equal, true, JSON.stringify(audit));
  });

  it("adds up: every refusal counted, and each 401 logged once as a warning", (t) => {
    const refusals = counted[401] + counted[403] + counted[404];
    t.diagnostic(`in all: ${refusals} refusals (401×${counted[401]}, 403×${counted[403]}, 404×${counted[404]}), ${counted.filtered} events filtered out`);
    const warned = lines.filter((line) => line.msg === "request refused: not authenticated");
    assert.equal(warned.length, counted[401]);
    assert.ok(warned.every((line) => line.level === 40 && typeof line.reason === "string" && !String(line.reason).includes(testToken.admin)), "the warning names no token");
    assert.ok(counted[401] > 100 && counted[403] > 20 && counted[404] > 10, JSON.stringify(counted));
  });
});
