/**
 * "As of" reads and `slap events --since` over a real embedded log: one instance's life
 * (requested, placed, ready, destroyed) at times the test decides, read back at each moment.
 */
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { instanceIdFor, streamKeyOf, type InstanceView } from "@slap/events";
import { EmbeddedEventStore } from "@slap/eventstore-embedded";
import { partitionAllocatedEvent } from "@slap/placement";
import { as, callJson, captureLogger, tempDir, testToken, tokenFile } from "@slap/testkit";
import { join } from "node:path";
import { monotonicFactory } from "ulid";
import { fakeIo, main } from "@slap/cli";
import { runMaster, type RunningMaster } from "@slap/master";

const KVDB = "file:///software/kvdb";
const at = (minute: number, second = 0): string => new Date(Date.UTC(2026, 10, 23, 10, minute, second)).toISOString();

/** The moments of the story: each step happens at its minute. */
const REGISTERED = at(0);
const REQUESTED = at(1);
const PLACED = at(2);
const PUBLISHED = at(3);
const DESTROYING = at(4);
const DESTROYED = at(5);

type Headers = Record<string, string>;
const alice: Headers = as.user("alice");
const bob: Headers = as.user("bob");
const node: Headers = as.node("COMP-1");
const holder: Headers = as.partition("COMP-1", "slappart0");

let dir: Awaited<ReturnType<typeof tempDir>>;
let store: EmbeddedEventStore;
let master: RunningMaster;
let stopped = false;
let now = new Date(REGISTERED);
/** The log position after each step of the story. */
const positions: Record<string, number> = {};

const call = (path: string, headers: Headers, method = "GET", body?: unknown) => callJson(`${master.url}${path}`, method, headers, body);
const instanceId = instanceIdFor({ kind: "user", userId: "alice" }, "db");

async function step(name: string, time: string, act: () => Promise<void>): Promise<void> {
  now = new Date(time);
  await act();
  positions[name] = await store.head();
}

async function ok(path: string, headers: Headers, method = "GET", body?: unknown): Promise<Record<string, unknown>> {
  const answer = await call(path, headers, method, body);
  assert.ok(answer.status < 300, `${method} ${path}: ${answer.status} ${JSON.stringify(answer.body)}`);
  return answer.body;
}

interface Details {
  instance: InstanceView;
  answer: { status: string; reason?: string; connection?: Record<string, string> };
  asOf: { time: string | null; position: number };
}

before(async () => {
  dir = await tempDir("slap-asof-");
  const { logger } = captureLogger();
  store = await EmbeddedEventStore.open({ dir: dir.path, logger });
  // No allocator: the test places the instance itself, at the time it chooses.
  const tokens = tokenFile(join(dir.path, "auth"), { users: ["alice", "bob"], computers: ["COMP-1"] });
  master = await runMaster({ port: 0, host: "127.0.0.1", tokens }, { store, logger, clock: () => now });

  await step("registered", REGISTERED, async () => {
    await ok("/v1/computers", node, "POST", {
      computerId: "COMP-1",
      partitions: [{ partitionId: "slappart0", address: "10.0.0.1", ports: { from: 20_000, to: 20_099 } }],
    });
    await ok("/v1/computers/COMP-1/supply", as.admin(), "POST", { releaseUrl: KVDB });
    await ok("/v1/computers/COMP-1/software", node, "POST", { releaseUrl: KVDB, status: "available" });
  });
  await step("requested", REQUESTED, async () => {
    await ok("/v1/requests", alice, "POST", { releaseUrl: KVDB, reference: "db", parameters: { size: "1" } });
  });
  await step("placed", PLACED, async () => {
    const instance = master.master.instance(instanceId)!;
    const event = partitionAllocatedEvent(instance, { computerId: "COMP-1", partitionId: "slappart0" }, { id: monotonicFactory()(), time: PLACED });
    const { version } = await store.readStream(streamKeyOf(event.aggregate));
    const { position } = await store.append([event], { expectedVersion: version });
    await master.master.settled(position);
  });
  await step("published", PUBLISHED, async () => {
    await ok(`/v1/instances/${instanceId}/connection`, holder, "POST", { parameters: { url: "kv://10.0.0.1:20000", password: "s3cret" } });
  });
  await step("destroying", DESTROYING, async () => {
    await ok(`/v1/instances/${instanceId}/state`, alice, "POST", { state: "destroyed" });
  });
  await step("destroyed", DESTROYED, async () => {
    await ok(`/v1/instances/${instanceId}/destroyed`, holder, "POST", {});
  });
});

after(async () => {
  if (!stopped) {
    await master?.stop();
    await store?.close();
  }
  await dir?.dispose();
});

describe("reads as of a past moment (asOf=<time>, at=<position>)", () => {
  it("answers each moment of an instance's life with the state of that moment: pending, placed, ready, destroyed", async () => {
    const asOf = async (time: string): Promise<Details> => (await ok(`/v1/instances/${instanceId}?asOf=${encodeURIComponent(time)}`, alice)) as unknown as Details;

    const requested = await asOf(at(1, 30));
    assert.equal(requested.answer.status, "pending");
    assert.equal(requested.instance.placement, null);
    assert.deepEqual(requested.asOf, { time: at(1, 30), position: positions.requested });

    const placed = await asOf(at(2, 30));
    assert.deepEqual(placed.instance.placement, { computerId: "COMP-1", partitionId: "slappart0" });
    assert.equal(placed.answer.status, "pending");
    assert.equal(placed.answer.reason, "allocated to COMP-1/slappart0, waiting for connection parameters");
    assert.deepEqual(placed.asOf, { time: at(2, 30), position: positions.placed });

    const ready = await asOf(at(3, 30));
    assert.equal(ready.answer.status, "ready");
    assert.deepEqual(ready.answer.connection, { url: "kv://10.0.0.1:20000", password: "********" }, "secrets stay masked as of any time");
    assert.deepEqual(ready.instance.connection, { url: "kv://10.0.0.1:20000", password: "********" });

    const destroying = await asOf(at(4, 30));
    assert.equal(destroying.instance.requestedState, "destroyed");
    assert.equal(destroying.answer.status, "pending");
    assert.equal(destroying.answer.reason, "waiting for its node to destroy it");

    const destroyed = await asOf(at(5, 30));
    assert.equal(destroyed.answer.status, "destroyed");
    assert.equal(destroyed.instance.destroyed, true);
    assert.equal(destroyed.asOf.position, positions.destroyed);
  });

  it("includes a commit whose time is exactly the moment asked", async () => {
    const body = (await ok(`/v1/instances/${instanceId}?asOf=${encodeURIComponent(PUBLISHED)}`, alice)) as unknown as Details;
    assert.equal(body.answer.status, "ready");
    assert.equal(body.asOf.position, positions.published);
  });

  it("reads the same by log position as by time, with the time of the commit there", async () => {
    const byTime = (await ok(`/v1/instances/${instanceId}?asOf=${encodeURIComponent(at(2, 30))}`, alice)) as unknown as Details;
    const byPosition = (await ok(`/v1/instances/${instanceId}?at=${positions.placed}`, alice)) as unknown as Details;
    assert.deepEqual(byPosition.instance, byTime.instance);
    assert.deepEqual(byPosition.answer, byTime.answer);
    assert.deepEqual(byPosition.asOf, { time: PLACED, position: positions.placed });
  });

  it("accepts a time with an offset: 11:02:30+01:00 is 10:02:30Z", async () => {
    const body = (await ok(`/v1/instances/${instanceId}?asOf=${encodeURIComponent("2026-11-23T11:02:30+01:00")}`, alice)) as unknown as Details;
    assert.equal(body.asOf.position, positions.placed);
  });

  it("answers the lists and computers as of the moment too, and the live state without asOf", async () => {
    const list = await ok(`/v1/instances?asOf=${encodeURIComponent(at(1, 30))}`, alice);
    assert.equal((list.instances as InstanceView[]).length, 1);
    assert.deepEqual(list.asOf, { time: at(1, 30), position: positions.requested });

    const computersThen = await ok(`/v1/computers?asOf=${encodeURIComponent(at(2, 30))}`, alice);
    const partition = (computersThen.computers as Array<{ partitions: Record<string, { instanceId: string | null }> }>)[0]!.partitions.slappart0!;
    assert.equal(partition.instanceId, instanceId, "the partition held the instance then");
    const computerNow = await ok("/v1/computers/COMP-1", alice);
    assert.equal((computerNow.computer as { partitions: Record<string, { instanceId: string | null }> }).partitions.slappart0!.instanceId, null, "and is free now");
    assert.equal(computerNow.asOf, undefined, "a live read says nothing of asOf");
    const computerThen = await ok(`/v1/computers/COMP-1?at=${positions.placed}`, alice);
    assert.equal((computerThen.computer as { partitions: Record<string, { instanceId: string | null }> }).partitions.slappart0!.instanceId, instanceId);

    const byReference = (await ok(`/v1/references/db?asOf=${encodeURIComponent(at(3, 30))}`, alice)) as unknown as Details;
    assert.equal(byReference.answer.status, "ready");
    const live = (await ok(`/v1/instances/${instanceId}`, alice)) as unknown as Details;
    assert.equal(live.answer.status, "destroyed");
    assert.equal(live.asOf, undefined);
  });

  it("is empty before the first event: no instances, no computers, position 0", async () => {
    const early = encodeURIComponent(at(-1));
    assert.deepEqual(await ok(`/v1/instances?asOf=${early}`, alice), { instances: [], trees: [], asOf: { time: at(-1), position: 0 } });
    assert.deepEqual(await ok(`/v1/computers?asOf=${early}`, alice), { computers: [], asOf: { time: at(-1), position: 0 } });
    assert.equal((await call(`/v1/instances/${instanceId}?asOf=${early}`, alice)).status, 404);
    assert.equal((await call(`/v1/computers/COMP-1?at=0`, alice)).status, 404);
    const before = await ok(`/v1/instances?at=0`, alice);
    assert.deepEqual(before.asOf, { time: null, position: 0 });
  });

  it("refuses a bad asOf or at with 400 naming the field", async () => {
    for (const [query, field] of [
      ["asOf=yesterday", "asOf"],
      ["asOf=2026-11-23T10:00:00", "asOf"], // no offset: which 10:00?
      ["at=-1", "at"],
      ["at=two", "at"],
      ["at=", "at"], // not "position 0"
      ["at=0x10", "at"],
      ["at=1e3", "at"],
      [`asOf=${encodeURIComponent(at(1))}&at=3`, "at"],
    ] as const) {
      for (const path of [`/v1/instances?${query}`, `/v1/instances/${instanceId}?${query}`, `/v1/references/db?${query}`, `/v1/computers?${query}`]) {
        const { status, body } = await call(path, alice);
        assert.equal(status, 400, `${path}: ${JSON.stringify(body)}`);
        const error = body.error as { code: string; message: string; issues: Array<{ path: string }> };
        assert.equal(error.code, "BadRequest");
        assert.equal(error.issues[0]?.path, field, path);
        assert.match(error.message, new RegExp(`^invalid query: ${field}: `), path);
      }
    }
  });

  it("never shows a user another user's instance, as of any moment", async () => {
    for (const time of [at(1, 30), at(2, 30), at(3, 30), at(4, 30), at(5, 30)]) {
      const asOf = encodeURIComponent(time);
      assert.deepEqual((await ok(`/v1/instances?asOf=${asOf}`, bob)).instances, [], time);
      assert.equal((await call(`/v1/instances/${instanceId}?asOf=${asOf}`, bob)).status, 404, time);
      assert.equal((await call(`/v1/references/db?asOf=${asOf}`, bob)).status, 404, time);
    }
    for (let position = 0; position <= positions.destroyed!; position++) {
      assert.equal((await call(`/v1/instances/${instanceId}?at=${position}`, bob)).status, 404, `at=${position}`);
    }
    assert.equal((await call(`/v1/instances/${instanceId}?at=${positions.placed}`, as.admin())).status, 200, "admin sees every tree");
  });

  it("does not let a partition read, as of the time it held an instance, a tree it no longer holds", async () => {
    assert.equal((await call(`/v1/instances/${instanceId}?at=${positions.published}`, holder)).status, 404);
    assert.equal((await call(`/v1/instances/${instanceId}`, holder)).status, 404);
  });
});

describe("the CLI as of a past moment (--as-of)", () => {
  const cli = async (...argv: string[]) => {
    const t = fakeIo({ SLAP_MASTER: master.url, SLAP_TOKEN: testToken.user("alice") });
    const code = await main(argv, t.io);
    return { code, stdout: t.stdout(), stderr: t.stderr() };
  };

  it("slap show --as-of prints the header line and the instance as it was", async () => {
    const run = await cli("show", "db", "--as-of", at(2, 30));
    assert.equal(run.code, 0, run.stderr);
    const lines = run.stdout.split("\n");
    assert.equal(lines[0], `as of ${at(2, 30)} (log position ${positions.placed})`);
    assert.match(run.stdout, /answer +pending: allocated to COMP-1\/slappart0, waiting for connection parameters/);
    assert.match(run.stdout, /runs on +COMP-1\/slappart0/);
  });

  it("slap show --as-of takes a log position too, and --json carries asOf", async () => {
    const run = await cli("show", "db", "--as-of", String(positions.published), "--json");
    assert.equal(run.code, 0, run.stderr);
    const body = JSON.parse(run.stdout) as Details;
    assert.deepEqual(body.asOf, { time: PUBLISHED, position: positions.published });
    assert.equal(body.answer.status, "ready");
  });

  it("slap instances and slap computers --as-of print that moment", async () => {
    const instances = await cli("instances", "--as-of", at(1, 30));
    assert.equal(instances.code, 0, instances.stderr);
    assert.match(instances.stdout, new RegExp(`^as of ${at(1, 30)} \\(log position ${positions.requested}\\)\\nREFERENCE .*\\ndb +started +not placed +pending +${instanceId}\\n$`));
    const computers = await cli("computers", "--as-of", at(2, 30));
    assert.equal(computers.code, 0, computers.stderr);
    assert.match(computers.stdout, new RegExp(`^as of ${at(2, 30)} \\(log position ${positions.placed}\\)\\nCOMP-1: 1 partitions, 0 free, 1 used`));
    assert.match(computers.stdout, new RegExp(`slappart0 +10\\.0\\.0\\.1 +20000-20099 +db \\[${instanceId}\\]`));
    const empty = await cli("instances", "--as-of", at(-1));
    assert.equal(empty.stdout, `as of ${at(-1)} (log position 0)\nno instances\n`);
  });

  it("slap show --as-of before the request says the reference was not requested then", async () => {
    const run = await cli("show", "db", "--as-of", at(0, 30));
    assert.equal(run.code, 1);
    assert.equal(run.stderr, `slap show: you had requested no instance under the reference "db" as of ${at(0, 30)} (see slap instances)\n`);
  });

  it("a bad --as-of is a usage error naming the flag", async () => {
    const run = await cli("instances", "--as-of", "last tuesday");
    assert.equal(run.code, 64);
    assert.match(run.stderr, /^slap instances: --as-of: must be an ISO time with Z or an offset/);
  });
});

describe("slap events --since", () => {
  const since = PUBLISHED;
  const expected = (): string[] => [`ConnectionParametersPublished`, `InstanceRequestedStateChanged`, `InstanceDestroyed`, `PartitionReleased`];
  const typesOf = (stdout: string): string[] =>
    stdout
      .trim()
      .split("\n")
      .map((line) => JSON.parse(line) as { type: string; time: string })
      .map((event) => {
        assert.ok(Date.parse(event.time) >= Date.parse(since), `${event.type} at ${event.time} is before --since`);
        return event.type;
      });

  it("asks the master for the events at or after a time", async () => {
    const t = fakeIo({ SLAP_MASTER: master.url, SLAP_TOKEN: testToken.admin });
    assert.equal(await main(["events", "--since", since, "--json"], t.io), 0, t.stderr());
    assert.deepEqual(typesOf(t.stdout()).sort(), expected().sort());
  });

  it("reads them from the embedded log when no master holds it", async () => {
    await master.stop();
    await store.close();
    stopped = true;
    const t = fakeIo();
    assert.equal(await main(["events", "--data", dir.path, "--since", since, "--json"], t.io), 0, t.stderr());
    assert.deepEqual(typesOf(t.stdout()).sort(), expected().sort());
  });
});
