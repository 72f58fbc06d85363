/**
 * `slap show | stop | start | destroy | bang | instances | request --parameters-file` as
 * processes (`node bin/slap.mjs`) against a real master (embedded log, an allocator beside it):
 * a child instance is reached by its path, and changing its state keeps its parameters and
 * creates nothing.
 */
import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { instanceIdFor } from "@slap/events";
import { runMaster, type RunningMaster } from "@slap/master";
import { as, callJson, captureLogger, eventually, runSlap, tempDir, testToken, tokenFile } from "@slap/testkit";
import { withAllocator } from "./alongside.js";

const WEBAPP = "file:///software/webapp";
const KVDB = "file:///software/kvdb";
const COMPUTER = "COMP-V";

let dir: Awaited<ReturnType<typeof tempDir>>;
let master: RunningMaster;

const call = (method: string, path: string, headers: Record<string, string>, body?: unknown) => callJson(`${master.url}${path}`, method, headers, body);

/** `slap …` as alice, in a process of its own. */
const slap = (...args: string[]) => runSlap(args, { SLAP_MASTER: master.url, SLAP_TOKEN: testToken.user("alice"), SLAP_DATA: join(dir.path, "nothing") });

interface View {
  instanceId: string;
  reference: string;
  parameters: Record<string, string>;
  requestedState: string;
  destroyed: boolean;
  placement: { computerId: string; partitionId: string } | null;
}

async function instances(): Promise<View[]> {
  const { status, body } = await call("GET", "/v1/instances", as.admin());
  assert.equal(status, 200);
  return body.instances as View[];
}

const appId = instanceIdFor({ kind: "user", userId: "alice" }, "my-webapp");
const kvId = instanceIdFor({ kind: "tree", treeId: appId }, "kvdb");
const byId = async (id: string): Promise<View> => (await instances()).find((i) => i.instanceId === id)!;

before(async () => {
  dir = await tempDir("slap-verbs-int-");
  const { logger } = captureLogger();
  master = await runMaster(
    { port: 0, host: "127.0.0.1", data: join(dir.path, "data"), tokens: tokenFile(join(dir.path, "tokens"), { users: ["alice"], computers: [COMPUTER] }) },
    { logger, alongside: withAllocator },
  );
  const partitions = Array.from({ length: 3 }, (_, i) => ({ partitionId: `slappart${i}`, address: `10.0.9.${i + 1}`, ports: { from: 20_000 + i * 100, to: 20_099 + i * 100 } }));
  assert.equal((await call("POST", "/v1/computers", as.node(COMPUTER), { computerId: COMPUTER, partitions })).status, 200);
  for (const releaseUrl of [WEBAPP, KVDB]) {
    assert.equal((await call("POST", `/v1/computers/${COMPUTER}/supply`, as.admin(), { releaseUrl })).status, 200);
    assert.equal((await call("POST", `/v1/computers/${COMPUTER}/software`, as.node(COMPUTER), { releaseUrl, status: "available" })).status, 200);
  }
  // alice's webapp, placed; its partition requests its kvdb (a child: reference kvdb in the webapp's tree).
  const params = join(dir.path, "webapp.yaml");
  writeFileSync(params, "title: Hello from YAML\nworkers: 3\n");
  const requested = await slap("request", WEBAPP, "my-webapp", "--parameters-file", params, "--no-wait", "--json");
  assert.equal(requested.code, 2, requested.stderr);
  const app = await eventually("the webapp to be placed", async () => ((await byId(appId))?.placement === null ? undefined : byId(appId)));
  // Kept as typed (a number stays a number): the release's schema, when it has one, says what it takes.
  assert.deepEqual(app.parameters, { title: "Hello from YAML", workers: 3 });
  const partition = as.partition(app.placement!.computerId, app.placement!.partitionId);
  assert.equal((await call("POST", "/v1/requests", partition, { releaseUrl: KVDB, reference: "kvdb", parameters: { "port-offset": "7" } })).status, 202);
  await eventually("the kvdb to be placed", async () => ((await byId(kvId))?.placement === null ? undefined : true));
});

after(async () => {
  await master?.stop();
  await dir?.dispose();
});

describe("slap's instance verbs on a child, by its path", () => {
  it("show my-webapp/kvdb shows the child; a bare kvdb too, as it is the only one", async () => {
    const byPath = await slap("show", "my-webapp/kvdb", "--json");
    assert.equal(byPath.code, 0, byPath.stderr);
    assert.equal((JSON.parse(byPath.stdout) as { instance: View }).instance.instanceId, kvId);
    const bare = await slap("show", "kvdb");
    assert.equal(bare.code, 0, bare.stderr);
    assert.match(bare.stdout, new RegExp(`^kvdb  \\[${kvId}\\]`));
    assert.match(bare.stdout, /port-offset = 7/);
  });

  it("events --instance takes a path too; an unknown one is an error, not an empty list", async () => {
    const events = await slap("events", "--instance", "my-webapp/kvdb");
    assert.equal(events.code, 0, events.stderr);
    assert.match(events.stdout, new RegExp(`InstanceRequested +tree\\.${appId}\\.instance\\.${kvId}`));
    assert.ok(events.stdout.split("\n").filter(Boolean).every((line) => line.includes(`instance.${kvId}`)), events.stdout);
    const unknown = await slap("events", "--instance", "nothing-like-it");
    assert.equal(unknown.code, 1);
    assert.equal(unknown.stdout, "");
    assert.equal(unknown.stderr, 'slap events: you have requested no instance under the reference "nothing-like-it" (see slap instances)\n');
  });

  it("stop, start and destroy change only the requested state: parameters kept, nothing created", async () => {
    const before = await instances();
    for (const [verb, state] of [
      ["stop", "stopped"],
      ["start", "started"],
      ["stop", "stopped"],
    ] as const) {
      const run = await slap(verb, "my-webapp/kvdb");
      assert.equal(run.code, 0, run.stderr);
      assert.match(run.stdout, new RegExp(`^kvdb \\[${kvId}\\]: requested ${state}; pending: `));
      const kv = await byId(kvId);
      assert.equal(kv.requestedState, state);
      assert.deepEqual(kv.parameters, { "port-offset": "7" }, `${verb} kept the parameters`);
    }
    const destroyed = await slap("destroy", kvId);
    assert.equal(destroyed.code, 0, destroyed.stderr);
    const after = await instances();
    assert.deepEqual(after.map((i) => i.instanceId).sort(), before.map((i) => i.instanceId).sort(), "no instance created");
    assert.equal(after.find((i) => i.instanceId === kvId)!.requestedState, "destroyed");
    assert.deepEqual(after.find((i) => i.instanceId === kvId)!.parameters, { "port-offset": "7" });
    assert.equal(after.find((i) => i.instanceId === appId)!.requestedState, "started", "the root is untouched");
  });

  it("bang by path bangs the child", async () => {
    const run = await slap("bang", "my-webapp/kvdb", "--message", "by path");
    assert.equal(run.code, 0, run.stderr);
    assert.match(run.stdout, new RegExp(`^banged kvdb \\[${kvId}\\] \\(log position \\d+\\)\\n$`));
  });

  it("an unknown path is one line naming it, exit 1, and nothing is created", async () => {
    const count = (await instances()).length;
    const run = await slap("stop", "my-webapp/nothing");
    assert.equal(run.code, 1);
    assert.equal(run.stderr, 'slap stop: you have requested no instance at the path "my-webapp/nothing" in your trees (see slap instances)\n');
    assert.equal((await instances()).length, count);
  });

  it("instances hides a destroyed instance; --all shows it; --status and --release filter", async () => {
    const kv = await byId(kvId);
    const partition = as.partition(kv.placement!.computerId, kv.placement!.partitionId);
    assert.equal((await call("POST", `/v1/instances/${kvId}/destroyed`, partition, {})).status, 200);
    await eventually("the kvdb to be destroyed", async () => ((await byId(kvId)).destroyed ? true : undefined));
    const listed = await slap("instances");
    assert.equal(listed.code, 0, listed.stderr);
    assert.match(listed.stdout, /my-webapp/);
    assert.doesNotMatch(listed.stdout, /kvdb/);
    const all = await slap("instances", "--all");
    assert.match(all.stdout, new RegExp(`└─ kvdb +destroyed .* destroyed +${kvId}`));
    const byRelease = await slap("instances", "--all", "--release", KVDB, "--json");
    assert.deepEqual((JSON.parse(byRelease.stdout) as { instances: View[] }).instances.map((i) => i.instanceId), [kvId]);
    const pending = await slap("instances", "--status", "pending", "--computer", COMPUTER, "--json");
    assert.deepEqual((JSON.parse(pending.stdout) as { instances: View[] }).instances.map((i) => i.instanceId), [appId]);
  });
});

describe("a password in a connection URL stays secret", () => {
  const PASSWORD = "hunter2-redis-pw";
  const url = `redis://:${PASSWORD}@10.0.9.1:20000`;
  const masked = "redis://:********@10.0.9.1:20000";

  before(async () => {
    const app = await byId(appId);
    const partition = as.partition(app.placement!.computerId, app.placement!.partitionId);
    assert.equal((await call("POST", `/v1/instances/${appId}/connection`, partition, { parameters: { url, "max-keys": "100" } })).status, 200);
    await eventually("the connection to be published", async () => ((await call("GET", `/v1/instances/${appId}`, as.admin())).body.answer as { status: string }).status === "ready" || undefined);
  });

  it("is masked in slap show, max-keys is not; --secrets shows it", async () => {
    const shown = await slap("show", "my-webapp");
    assert.equal(shown.code, 0, shown.stderr);
    assert.match(shown.stdout, new RegExp(`url = ${masked.replace(/[*.]/g, "\\$&")}`));
    assert.match(shown.stdout, /max-keys = 100/);
    assert.ok(!shown.stdout.includes(PASSWORD));
    assert.ok((await slap("show", "my-webapp", "--secrets")).stdout.includes(`url = ${url}`));
  });

  it("is masked in the event log and in the reads the dashboard makes, not in the requester's answer", async () => {
    const events = await call("GET", "/v1/events", as.user("alice"));
    assert.equal(events.status, 200);
    const text = JSON.stringify(events.body);
    assert.ok(text.includes(masked) && !text.includes(PASSWORD), "events masked");
    const list = JSON.stringify((await call("GET", "/v1/instances", as.user("alice"))).body);
    assert.ok(list.includes(masked) && !list.includes(PASSWORD), "instances masked");
    const answer = await call("POST", "/v1/requests", as.user("alice"), { releaseUrl: WEBAPP, reference: "my-webapp", parameters: { title: "Hello from YAML", workers: "3" } });
    assert.equal(answer.status, 200);
    assert.deepEqual((answer.body as { connection: Record<string, string> }).connection, { url, "max-keys": "100" });
  });
});
