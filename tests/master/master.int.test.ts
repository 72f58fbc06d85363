import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { instanceIdFor } from "@slap/events";
import { JetStreamEventStore } from "@slap/eventstore-jetstream";
import { Allocator } from "@slap/allocator";
import { MasterClient, type Answer } from "@slap/api";
import { as, callJson, captureLogger, startNatsServer, tempDir, testToken, tokenFile, type NatsServer } from "@slap/testkit";
import { runMaster, type RunningMaster } from "@slap/master";

const WEBAPP = "file:///software/webapp";
const KVDB = "file:///software/kvdb";

let server: NatsServer;
let master: RunningMaster;
let masterStore: JetStreamEventStore;
let allocatorStore: JetStreamEventStore;
let allocator: Allocator;
let dir: Awaited<ReturnType<typeof tempDir>>;

type Headers = Record<string, string>;
const alice: Headers = as.user("alice");
const bob: Headers = as.user("bob");
const admin: Headers = as.admin();
const node = (computerId: string): Headers => as.node(computerId);
const partition = (where: { computerId: string; partitionId: string }): Headers => as.partition(where.computerId, where.partitionId);

const call = (method: string, path: string, headers: Headers, body?: unknown) => callJson(`${master.url}${path}`, method, headers, body);

interface InstanceDetails {
  instance: { instanceId: string; placement: { computerId: string; partitionId: string } | null; serial: number; requestedState: string; host: { instanceId: string } | null };
  answer: { status: string; reason?: string; connection?: Record<string, string> };
  sharedInstances: Array<{ instanceId: string; parameters: Record<string, string> }>;
}

async function details(instanceId: string, headers: Headers = admin): Promise<InstanceDetails> {
  const { status, body } = await call("GET", `/v1/instances/${instanceId}`, headers);
  assert.equal(status, 200, JSON.stringify(body));
  return body as unknown as InstanceDetails;
}

/** Waits (bounded) until `check` holds for the instance; the read models are pushed, so this is quick. */
async function eventually(instanceId: string, check: (d: InstanceDetails) => boolean, what: string): Promise<InstanceDetails> {
  const deadline = Date.now() + 10_000;
  for (;;) {
    const { status, body } = await call("GET", `/v1/instances/${instanceId}`, admin);
    const d = body as unknown as InstanceDetails;
    if (status === 200 && check(d)) return d;
    if (Date.now() > deadline) assert.fail(`timed out waiting for ${what}: ${JSON.stringify(d)}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

async function registerComputer(computerId: string, partitions: number, networkId = "net-1"): Promise<void> {
  const { status, body } = await call("POST", "/v1/computers", node(computerId), {
    computerId,
    networkId,
    partitions: Array.from({ length: partitions }, (_, i) => ({ partitionId: `slappart${i}`, address: `10.0.${partitions}.${i + 1}`, ports: { from: 20_000 + i * 100, to: 20_099 + i * 100 } })),
  });
  assert.equal(status, 200, JSON.stringify(body));
}

async function install(computerId: string, releaseUrl: string): Promise<void> {
  assert.equal((await call("POST", `/v1/computers/${computerId}/supply`, admin, { releaseUrl })).status, 200);
  assert.equal((await call("POST", `/v1/computers/${computerId}/software`, node(computerId), { releaseUrl, status: "available" })).status, 200);
}

before(async () => {
  server = await startNatsServer();
  dir = await tempDir("slap-master-int-");
  const { logger } = captureLogger();
  masterStore = await JetStreamEventStore.connect({ servers: server.url, logger });
  allocatorStore = await JetStreamEventStore.connect({ servers: server.url, logger });
  master = await runMaster(
    { port: 0, host: "127.0.0.1", tokens: tokenFile(dir.path, { users: ["alice", "bob"], computers: ["COMP-1", "COMP-2"] }) },
    { store: masterStore, logger },
  );
  allocator = new Allocator({ store: allocatorStore, logger });
  await allocator.start();
  await registerComputer("COMP-1", 4);
  await install("COMP-1", WEBAPP);
  await install("COMP-1", KVDB);
});

after(async () => {
  await allocator.stop();
  await master.stop();
  await masterStore.close();
  await allocatorStore.close();
  await server.dispose();
  await dir.dispose();
});

describe("the request flow over HTTP (the tutorial: an application requests its database)", () => {
  const appId = instanceIdFor({ kind: "user", userId: "alice" }, "my app");
  const dbId = instanceIdFor({ kind: "tree", treeId: appId }, "database");

  it("answers pending, places the application, then its partition requests a database and gets its parameters", async () => {
    const first = await call("POST", "/v1/requests", alice, { releaseUrl: WEBAPP, reference: "my app", parameters: { title: "Hello" } });
    assert.equal(first.status, 202);
    assert.equal(first.body.status, "pending");
    assert.equal(first.body.instanceId, appId);
    assert.equal(typeof first.body.reason, "string");

    const app = await eventually(appId, (d) => d.instance.placement !== null, "the application to be placed");
    assert.match(app.answer.reason ?? "", /allocated to COMP-1\/slappart\d, waiting for connection parameters/);
    const appPartition = partition(app.instance.placement!);

    const asked = await call("POST", "/v1/requests", appPartition, { releaseUrl: KVDB, reference: "database" });
    assert.equal(asked.status, 202);
    assert.equal(asked.body.instanceId, dbId);
    const db = await eventually(dbId, (d) => d.instance.placement !== null, "the database to be placed");
    assert.notDeepEqual(db.instance.placement, app.instance.placement);

    const serialBefore = (await details(appId)).instance.serial;
    const published = await call("POST", `/v1/instances/${dbId}/connection`, partition(db.instance.placement!), {
      parameters: { url: "http://10.0.4.2:20100", password: "s3cret" },
    });
    assert.equal(published.status, 200, JSON.stringify(published.body));

    const again = await call("POST", "/v1/requests", appPartition, { releaseUrl: KVDB, reference: "database" });
    assert.equal(again.status, 200);
    assert.deepEqual(again.body, { status: "ready", instanceId: dbId, reference: "database", connection: { url: "http://10.0.4.2:20100", password: "s3cret" } });
    assert.ok((await details(appId)).instance.serial > serialBefore, "the requester is bumped when the database publishes");
    assert.equal((await details(dbId)).answer.connection?.password, "********", "views mask secrets");
  });

  it("appends nothing when the same request comes again, and bumps once when a parameter changes", async () => {
    const head = await masterStore.head();
    const same = await call("POST", "/v1/requests", alice, { releaseUrl: WEBAPP, reference: "my app", parameters: { title: "Hello", empty: "" } });
    assert.equal(same.body.instanceId, appId);
    assert.equal(await masterStore.head(), head);
    const serial = (await details(appId)).instance.serial;
    await call("POST", "/v1/requests", alice, { releaseUrl: WEBAPP, reference: "my app", parameters: { title: "Bye" } });
    assert.equal((await details(appId)).instance.serial, serial + 1);
    assert.equal(await masterStore.head(), head + 1);
  });

  it("answers a long poll the moment the instance becomes ready", async () => {
    const id = instanceIdFor({ kind: "user", userId: "alice" }, "polled");
    const polled = call("POST", "/v1/requests?wait=8000", alice, { releaseUrl: KVDB, reference: "polled" });
    const placed = await eventually(id, (d) => d.instance.placement !== null, "placement");
    await call("POST", `/v1/instances/${id}/connection`, partition(placed.instance.placement!), { parameters: { url: "http://polled" } });
    const answer = await polled;
    assert.equal(answer.status, 200);
    assert.deepEqual(answer.body.connection, { url: "http://polled" });
  });

  it("streams a watched instance's answer now and the moment it is ready, unmasked (read with the API's client)", async () => {
    const id = instanceIdFor({ kind: "user", userId: "alice" }, "watched");
    const client = new MasterClient({ master: master.url, token: testToken.user("alice") });
    assert.equal((await client.request({ releaseUrl: KVDB, reference: "watched" })).status, "pending");
    const seen: Answer[] = [];
    const stop = new AbortController();
    const watching = (async () => {
      for await (const answer of client.watch(id, AbortSignal.any([stop.signal, AbortSignal.timeout(10_000)]))) {
        seen.push(answer);
        if (answer.status === "ready") return answer;
      }
      return undefined;
    })();
    try {
      const placed = await eventually(id, (d) => d.instance.placement !== null, "placement");
      await call("POST", `/v1/instances/${id}/connection`, partition(placed.instance.placement!), { parameters: { url: "http://watched", password: "p" } });
      assert.deepEqual(await watching, { status: "ready", instanceId: id, reference: "watched", connection: { url: "http://watched", password: "p" } });
      assert.equal(seen[0]?.status, "pending", "the first answer is the answer when the watch opened");
      // Its partition freed again, for the placement tests below.
      assert.equal((await call("POST", `/v1/instances/${id}/state`, alice, { state: "destroyed" })).status, 202);
      assert.equal((await call("POST", `/v1/instances/${id}/destroyed`, partition(placed.instance.placement!), {})).status, 200);
    } finally {
      stop.abort();
    }
  });

  it("stops the whole tree when the root is stopped", async () => {
    await call("POST", "/v1/requests", alice, { releaseUrl: WEBAPP, reference: "my app", parameters: { title: "Bye" }, state: "stopped" });
    assert.equal((await details(appId)).instance.requestedState, "stopped");
    assert.equal((await details(dbId)).instance.requestedState, "stopped");
    await call("POST", `/v1/instances/${appId}/state`, alice, { state: "started" });
    assert.equal((await details(dbId)).instance.requestedState, "started");
  });

  it("attaches a shared instance to the host chosen by instance_guid, which publishes its own parameters", async () => {
    const sharedId = instanceIdFor({ kind: "user", userId: "alice" }, "shared db");
    const asked = await call("POST", "/v1/requests", alice, { releaseUrl: KVDB, reference: "shared db", shared: true, sla: { instance_guid: dbId }, parameters: { name: "blog" } });
    assert.equal(asked.status, 202);
    const attached = await eventually(sharedId, (d) => d.instance.host !== null, "the shared instance to be attached");
    assert.equal(attached.instance.host?.instanceId, dbId);
    assert.deepEqual((await details(dbId)).sharedInstances.map((s) => [s.instanceId, s.parameters]), [[sharedId, { name: "blog" }]]);
    const host = (await details(dbId)).instance.placement!;
    const wrong = await call("POST", `/v1/instances/${sharedId}/connection`, alice, { parameters: { db: "x" } });
    assert.equal(wrong.status, 403);
    // A long poll on the shared instance is answered when its host publishes for it.
    const polled = call("POST", "/v1/requests?wait=8000", alice, { releaseUrl: KVDB, reference: "shared db", shared: true, sla: { instance_guid: dbId }, parameters: { name: "blog" } });
    const early = await Promise.race([polled.then(() => "answered"), new Promise((r) => setTimeout(() => r("pending"), 300))]);
    assert.equal(early, "pending", "the poll waits on the server before the publication");
    assert.equal((await call("POST", `/v1/instances/${sharedId}/connection`, partition(host), { parameters: { db: "blog" } })).status, 200);
    const ready = await polled;
    assert.equal(ready.status, 200);
    assert.deepEqual(ready.body.connection, { db: "blog" });
  });
});

describe("placement constraints and capacity", () => {
  it("keeps a request pending with the reason while no computer has the release, and places it once one has", async () => {
    const release = "file:///software/rare";
    const id = instanceIdFor({ kind: "user", userId: "alice" }, "rare");
    const asked = await call("POST", "/v1/requests", alice, { releaseUrl: release, reference: "rare" });
    assert.equal(asked.status, 202);
    assert.match(String(asked.body.reason), /file:\/\/\/software\/rare/);
    await registerComputer("COMP-2", 2, "net-2");
    await install("COMP-2", release);
    const placed = await eventually(id, (d) => d.instance.placement !== null, "placement once capacity appears");
    assert.equal(placed.instance.placement?.computerId, "COMP-2");
  });

  it("honours computer_guid and says why it cannot place", async () => {
    const id = instanceIdFor({ kind: "user", userId: "alice" }, "pinned");
    const asked = await call("POST", "/v1/requests", alice, { releaseUrl: KVDB, reference: "pinned", sla: { computer_guid: "COMP-NOPE" } });
    assert.equal(asked.status, 202);
    assert.match(String(asked.body.reason), /COMP-NOPE/);
    await call("POST", "/v1/requests", alice, { releaseUrl: KVDB, reference: "pinned", sla: { computer_guid: "COMP-1" } });
    const placed = await eventually(id, (d) => d.instance.placement !== null, "placement on COMP-1");
    assert.equal(placed.instance.placement?.computerId, "COMP-1");
  });
});

describe("bad input and strangers", () => {
  it("answers a caller that has seen position N (x-slap-seen) only once its read models include N", async () => {
    const head = await masterStore.head();
    let appended = false;
    const read = call("GET", "/v1/instances", { ...alice, "x-slap-seen": String(head + 1) }).then((answer) => ({ answer, appended }));
    await new Promise((r) => setTimeout(r, 150));
    appended = true;
    await call("POST", "/v1/requests", alice, { releaseUrl: KVDB, reference: "seen" });
    const { answer, appended: afterAppend } = await read;
    assert.equal(answer.status, 200);
    assert.ok(afterAppend, "the read waited for the position it named");
    const seen = instanceIdFor({ kind: "user", userId: "alice" }, "seen");
    assert.ok((answer.body.instances as Array<{ instanceId: string }>).some((i) => i.instanceId === seen));
    const bad = await call("GET", "/v1/instances", { ...alice, "x-slap-seen": "soon" });
    assert.equal(bad.status, 400);
    assert.match(JSON.stringify(bad.body), /x-slap-seen/);
  });

  it("answers 400 naming the field path, and appends nothing", async () => {
    const head = await masterStore.head();
    const bad = await call("POST", "/v1/requests", alice, { releaseUrl: "", reference: "x", parameters: { a: "x".repeat(70_000) }, state: "paused" });
    assert.equal(bad.status, 400);
    const paths = ((bad.body.error as { issues: Array<{ path: string }> }).issues ?? []).map((i) => i.path);
    for (const p of ["releaseUrl", "parameters.a", "state"]) assert.ok(paths.includes(p), `${p} in ${paths.join(", ")}`);
    const badHeader = await call("POST", "/v1/requests", { ...node("COMP-1"), "x-slap-partition": "../../etc" }, { releaseUrl: KVDB, reference: "x" });
    assert.equal(badHeader.status, 400);
    const notJson = await fetch(`${master.url}/v1/requests`, { method: "POST", headers: { ...alice, "content-type": "application/json" }, body: "{nope" });
    assert.equal(notJson.status, 400);
    assert.equal(await masterStore.head(), head);
  });

  it("answers 409 for another shared flag under the same reference, 404 for what does not exist or is not yours", async () => {
    const conflict = await call("POST", "/v1/requests", alice, { releaseUrl: KVDB, reference: "my app", shared: true });
    assert.equal(conflict.status, 409);
    const appId = instanceIdFor({ kind: "user", userId: "alice" }, "my app");
    assert.equal((await call("GET", `/v1/instances/${appId}`, bob)).status, 404);
    assert.equal((await call("GET", "/v1/instances/NOPE", alice)).status, 404);
    assert.equal((await call("POST", `/v1/instances/${appId}/bang`, bob, { message: "mine now" })).status, 404);
    const other = await call("POST", "/v1/computers/COMP-1/software", node("COMP-2"), { releaseUrl: KVDB, status: "error" });
    assert.equal(other.status, 403);
  });

  it("shows the event log only as far as the reader may see it, with secrets masked", async () => {
    const read = (headers: Headers, secrets = "") => call("GET", `/v1/events?type=ConnectionParametersPublished${secrets}`, headers);
    const published = (headers: Headers, secrets = "") => read(headers, secrets).then((r) => JSON.stringify(r.body));
    const anonymous = await read({});
    assert.equal(anonymous.status, 401);
    const shown = JSON.stringify(anonymous.body);
    assert.ok(!shown.includes("s3cret") && !shown.includes("10.0.4.2"), shown);
    assert.ok(!(await published(bob)).includes("http://10.0.4.2"));
    const own = await published(alice);
    assert.ok(own.includes("http://10.0.4.2:20100") && own.includes("********") && !own.includes("s3cret"), own);
    assert.ok((await published(admin, "&secrets=1")).includes("s3cret"));
  });

  it("audits: the read models rebuilt from the log equal the live ones; only admin may ask", async () => {
    const audit = await call("GET", "/v1/audit", admin);
    assert.equal(audit.status, 200, JSON.stringify(audit.body));
    assert.equal(audit.body.equal, true, JSON.stringify(audit.body));
    assert.equal(audit.body.rebuiltUpTo, audit.body.position);
    assert.ok((audit.body.position as number) > 10);
    assert.equal((await call("GET", "/v1/audit", alice)).status, 403);
  });

  it("serves an OpenAPI document whose request body is generated from the zod schema", async () => {
    const { status, body } = await call("GET", "/openapi.json", {});
    assert.equal(status, 200);
    const paths = body.paths as Record<string, { post?: { requestBody?: { content: Record<string, { schema: { properties?: Record<string, unknown> } }> } } }>;
    const schema = paths["/v1/requests"]?.post?.requestBody?.content["application/json"]?.schema;
    assert.ok(schema?.properties?.releaseUrl && schema.properties.sla, JSON.stringify(schema));
  });
  it("answers the dashboard's paths 404 to anyone when it was given no dashboard", async () => {
    for (const path of ["/", "/dashboard", "/dashboard/dashboard.mjs"]) {
      assert.equal((await call("GET", path, {})).status, 404, path);
      assert.equal((await call("GET", path, as.admin())).status, 404, path);
    }
  });
});
