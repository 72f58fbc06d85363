import assert from "node:assert/strict";
import { setTimeout as sleep } from "node:timers/promises";
import { after, before, describe, it, type TestContext } from "node:test";
import {
  computersProjection,
  instancesProjection,
  rebuild,
  streamKeyOf,
  type DomainEvent,
  type EventOf,
  type EventStore,
} from "@slap/events";
import { EmbeddedEventStore } from "@slap/eventstore-embedded";
import { JetStreamEventStore } from "@slap/eventstore-jetstream";
import { captureLogger, fixtures, startNatsServer, tempDir, type NatsServer } from "@slap/testkit";
import { pino } from "pino";
import { Allocator } from "./allocator.js";

const KVDB = "file:///software/kvdb";
const silent = pino({ level: "silent" });

let server: NatsServer;
let streams = 0;
/** Everything a test opened, closed in reverse order by `closeAll`. */
let opened: Array<() => Promise<void>> = [];

before(async () => {
  server = await startNatsServer();
});
after(async () => {
  await server.dispose();
});

async function closeAll(): Promise<void> {
  for (const close of opened.reverse()) await close();
  opened = [];
}

/** A fresh log (stream + subject prefix) on the test server; `connect()` opens one more connection to it. */
function freshLog(): { connect: (logger?: typeof silent) => Promise<JetStreamEventStore> } {
  const n = ++streams;
  return {
    connect: async (logger = silent) => {
      const store = await JetStreamEventStore.connect({ servers: server.url, streamName: `ALLOC${n}`, subjectPrefix: `alloc${n}.ev`, logger });
      opened.push(() => store.close());
      return store;
    },
  };
}

async function startAllocator(
  store: EventStore,
  options: { replica?: string; logger?: typeof silent; conflictRetryMs?: number; standbyMs?: number } = {},
): Promise<Allocator> {
  const allocator = new Allocator({ store, logger: options.logger ?? silent, ...options });
  await allocator.start();
  opened.push(() => allocator.stop());
  return allocator;
}

async function until(what: string, predicate: () => boolean, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!predicate()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting until ${what}`);
    await sleep(10);
  }
}

function computer(computerId: string, partitions: number, network = "net-1"): DomainEvent[][] {
  const registered = fixtures.computerRegistered(computerId, partitions);
  return [
    [{ ...registered, data: { ...registered.data, networkId: network } }],
    [fixtures.softwareSupplied(computerId, KVDB)],
    [fixtures.softwareStatus(computerId, KVDB, "available")],
  ];
}

function request(instanceId: string, options: { sla?: Record<string, string>; shared?: boolean } = {}): EventOf<"InstanceRequested"> {
  const event = fixtures.instanceRequested(instanceId, { releaseUrl: KVDB, ...(options.shared === undefined ? {} : { shared: options.shared }) });
  return { ...event, data: { ...event.data, sla: options.sla ?? {} } };
}

/** Appends each commit to its stream with "any" (the test is the only other writer). */
async function write(store: EventStore, commits: readonly DomainEvent[][]): Promise<void> {
  for (const events of commits) await store.append(events, { expectedVersion: "any" });
}

const bound = (allocator: Allocator): number => Object.keys(allocator.view.computers.bindings).length;

describe("allocator over JetStream", () => {
  it("leaves requests pending until capacity appears, then places them, and refills a freed partition", async () => {
    try {
      const log = freshLog();
      const store = await log.connect();
      const allocator = await startAllocator(store);
      const ids = ["r1", "r2", "r3", "r4", "r5"];
      await write(store, ids.map((id) => [request(id)]));
      await until("every request has a reason", () => ids.every((id) => allocator.pendingReason(id) !== undefined));
      assert.deepEqual(allocator.pendingReason("r1")?.reason, "NoComputerWithRelease");
      assert.equal(allocator.pendingReason("r1")?.detail, `no computer has ${KVDB} available`);
      assert.equal(bound(allocator), 0);

      await write(store, computer("COMP-1", 3));
      await until("3 placed", () => bound(allocator) === 3);
      await until("2 pending for lack of partitions", () => ids.filter((id) => allocator.pendingReason(id)?.reason === "NoFreePartition").length === 2);
      const waiting = ids.filter((id) => allocator.view.computers.bindings[id] === undefined);
      assert.equal(waiting.length, 2);

      // r1 is destroyed and its partition freed: a waiting instance takes it, r1 is not placed again.
      const where = allocator.view.computers.bindings.r1!;
      await store.append([{ ...fixtures.instanceBanged("r1"), type: "InstanceRequestedStateChanged", data: { requestedState: "destroyed" } }], { expectedVersion: "any" });
      const partitionKey = streamKeyOf({ kind: "partition", ...where });
      const { version } = await store.readStream(partitionKey);
      await store.append([fixtures.partitionReleased(where.computerId, where.partitionId, "r1")], { expectedVersion: version });
      await until("a waiting instance took the freed partition", () => waiting.some((id) => allocator.view.computers.bindings[id] !== undefined));
      await sleep(100);
      assert.equal(bound(allocator), 3);
      assert.equal(allocator.view.computers.bindings.r1, undefined);
      assert.equal(allocator.pendingReason("r1"), undefined);

      const rebuilt = await rebuild(store, instancesProjection);
      assert.equal(Object.values(rebuilt.state.instances).filter((i) => i.placement !== null).length, 3);
    } finally {
      await closeAll();
    }
  });

  it("respects SLA computer_guid end to end, and places a pinned request when its computer arrives", async () => {
    try {
      const log = freshLog();
      const store = await log.connect();
      const allocator = await startAllocator(store);
      await write(store, [...computer("COMP-1", 2), ...computer("COMP-2", 2)]);
      await write(store, [[request("pinned", { sla: { computer_guid: "COMP-2" } })], [request("later", { sla: { computer_guid: "COMP-9" } })]]);
      await until("pinned placed", () => allocator.view.computers.bindings.pinned !== undefined);
      assert.equal(allocator.view.computers.bindings.pinned?.computerId, "COMP-2");
      await until("later pending", () => allocator.pendingReason("later") !== undefined);
      assert.deepEqual(allocator.pendingReason("later")?.detail, `SLA computer_guid=COMP-9: no such computer with ${KVDB} available`);
      await write(store, computer("COMP-9", 1));
      await until("later placed", () => allocator.view.computers.bindings.later !== undefined);
      assert.equal(allocator.view.computers.bindings.later?.computerId, "COMP-9");
      assert.equal(allocator.pendingReason("later"), undefined);
    } finally {
      await closeAll();
    }
  });

  it("attaches a shared instance to a host once the host is placed and has published its connection parameters", async () => {
    try {
      const log = freshLog();
      const store = await log.connect();
      const allocator = await startAllocator(store);
      await write(store, [...computer("COMP-1", 2), [request("host")], [request("slave", { shared: true })]]);
      await until("host placed", () => allocator.view.computers.bindings.host !== undefined);
      await until("slave pending", () => allocator.pendingReason("slave") !== undefined);
      assert.equal(allocator.pendingReason("slave")?.reason, "NoReadyHost");
      const at = allocator.view.computers.bindings.host!;
      await write(store, [[fixtures.connectionPublished("host", { url: "http://10.0.0.1:20000" }, at)]]);
      await until("slave attached", () => allocator.view.instances.instances.slave?.host !== null);
      assert.deepEqual(allocator.view.instances.instances.slave?.host, { instanceId: "host", treeId: "host" });
      assert.equal(allocator.view.computers.bindings.slave, undefined, "a shared instance gets no partition");
      const { commits } = await store.readStream(streamKeyOf({ kind: "instance", treeId: "slave", instanceId: "slave" }));
      const attached = commits.flatMap((c) => c.events).find((e) => e.type === "SharedInstanceAttached");
      const requested = commits[0]!.events[0]!;
      assert.ok(attached);
      assert.deepEqual(attached.actor, { kind: "service", name: "allocator" });
      assert.equal(attached.correlationId, requested.correlationId);
      assert.equal(attached.causationId, requested.id);
    } finally {
      await closeAll();
    }
  });

  it("releases a superseded claim it finds, and logs every allocation with instance, correlation, computer and partition", async () => {
    try {
      const log = freshLog();
      const store = await log.connect();
      await write(store, [...computer("COMP-1", 3), [request("x")]]);
      // Two racing allocators claimed x on two partitions: the first binds, the second is superseded.
      await write(store, [[fixtures.partitionAllocated("COMP-1", "slappart1", "x")], [fixtures.partitionAllocated("COMP-1", "slappart2", "x")]]);
      const captured = captureLogger();
      const allocator = await startAllocator(store, { logger: captured.logger });
      await write(store, [[request("y")]]);
      await until("superseded claim released and y placed", () => {
        const p = allocator.view.computers.computers["COMP-1"]!.partitions;
        return p.slappart2!.supersededClaim === null && allocator.view.computers.bindings.y !== undefined;
      });
      assert.deepEqual(allocator.view.computers.bindings.x, { computerId: "COMP-1", partitionId: "slappart1" });
      const { commits } = await store.readStream("computer.COMP-1.partition.slappart2");
      const release = commits.at(-1)!.events[0]!;
      assert.equal(release.type, "PartitionReleased");
      assert.deepEqual(release.type === "PartitionReleased" && release.data, { instanceId: "x", reason: "superseded" });
      assert.equal(release.correlationId, allocator.view.instances.instances.x!.correlationId);

      const lines = captured.lines.filter((l) => l.msg === "instance placed" || l.msg === "superseded claim released");
      assert.equal(lines.length, 2);
      for (const line of lines) {
        for (const field of ["instanceId", "correlationId", "computerId", "partitionId"]) assert.ok(typeof line[field] === "string", `${line.msg} has ${field}`);
      }
    } finally {
      await closeAll();
    }
  });

  it("places on a partition whose subject holds a malformed message (the version the read model cannot see)", async () => {
    try {
      const log = freshLog();
      const store = await log.connect();
      await write(store, computer("COMP-1", 1));
      await store.publishRawForTesting("computer.COMP-1.partition.slappart0", Buffer.from("not json"));
      const allocator = await startAllocator(store, { conflictRetryMs: 100 });
      await write(store, [[request("z")]]);
      await until("z placed", () => allocator.view.computers.bindings.z !== undefined);
      assert.ok(allocator.stats.conflicts >= 1);
    } finally {
      await closeAll();
    }
  });
});

/**
 * The race: 3 replicas, each with its own store connection (or one shared store), over 5
 * computers × 40 partitions and 300 requests. Half the requests are in the log when the
 * replicas start together (a backlog every replica takes at once, from its own point), the
 * other half are appended concurrently while they run. Then, from a full rebuild and from the
 * raw partition streams: no partition ever held two instances, no instance is bound twice,
 * exactly 200 are bound and 100 wait.
 */
async function race(t: TestContext, stores: EventStore[], writer: EventStore, options: { standbyMs?: number } = {}): Promise<void> {
  const computers = ["COMP-1", "COMP-2", "COMP-3", "COMP-4", "COMP-5"];
  const ids = Array.from({ length: 300 }, (_, i) => `race-${i}`);
  const append = (id: string) => writer.append([request(id)], { expectedVersion: 0 });
  await Promise.all([...computers.map((c) => write(writer, computer(c, 40))), ...ids.slice(0, 150).map(append)]);
  const replicas = await Promise.all(
    stores.map((store, i) => startAllocator(store, { replica: `allocator-${i}`, conflictRetryMs: 200, ...options })),
  );
  await Promise.all(ids.slice(150).map(append));

  const watcher = replicas[0]!;
  const superseded = (): number =>
    Object.values(watcher.view.computers.computers).reduce(
      (n, c) => n + Object.values(c.partitions).filter((p) => p.supersededClaim !== null).length,
      0,
    );
  await until("200 bound and no superseded claim left", () => bound(watcher) === 200 && superseded() === 0, 20_000);
  const head = await writer.head();
  await Promise.all(replicas.map((r) => r.waitFor(head)));
  await sleep(200);
  for (const r of replicas) await r.stop();

  const computersModel = (await rebuild(writer, computersProjection)).state;
  const instancesModel = (await rebuild(writer, instancesProjection)).state;
  const bindings = Object.entries(computersModel.bindings);
  assert.equal(bindings.length, 200);
  assert.equal(new Set(bindings.map(([, b]) => `${b.computerId}/${b.partitionId}`)).size, 200, "no partition bound to two instances");
  const held = Object.values(computersModel.computers).flatMap((c) => Object.values(c.partitions).filter((p) => p.instanceId !== null));
  assert.equal(held.length, 200);
  assert.equal(Object.values(computersModel.computers).flatMap((c) => Object.values(c.partitions)).filter((p) => p.supersededClaim !== null).length, 0);
  const placements = Object.values(instancesModel.instances).filter((i) => i.placement !== null);
  assert.equal(placements.length, 200);
  for (const instance of placements) assert.deepEqual(instance.placement, computersModel.bindings[instance.instanceId], instance.instanceId);
  assert.equal(Object.values(instancesModel.instances).filter((i) => i.placement === null).length, 100);

  // Raw log: replay every partition stream; a claim must never land on a partition that holds an instance or a claim.
  const holder = new Map<string, string | null>();
  let claims = 0;
  let releases = 0;
  for await (const commit of writer.readAll({ filter: "computer.*.partition.*" })) {
    for (const event of commit.events) {
      if (event.type === "PartitionAllocated") {
        claims++;
        assert.equal(holder.get(commit.streamKey) ?? null, null, `${commit.streamKey} claimed for ${event.data.instanceId} while holding ${holder.get(commit.streamKey)}`);
        holder.set(commit.streamKey, event.data.instanceId);
      } else if (event.type === "PartitionReleased") {
        releases++;
        assert.equal(event.data.reason, "superseded");
        assert.equal(holder.get(commit.streamKey), event.data.instanceId);
        holder.set(commit.streamKey, null);
      }
    }
  }
  assert.equal(claims - releases, 200);
  const conflicts = replicas.reduce((n, r) => n + r.stats.conflicts, 0);
  assert.equal(replicas.reduce((n, r) => n + r.stats.placed, 0), 200);
  t.diagnostic(`claims ${claims}, superseded and released ${releases}, conflicts ${conflicts}, placed per replica ${replicas.map((r) => r.stats.placed).join("/")}`);
}

describe("racing allocator replicas", () => {
  it("3 replicas on their own JetStream connections never put two instances on a partition nor one instance on two", async (t) => {
    try {
      const log = freshLog();
      const stores = [await log.connect(), await log.connect(), await log.connect()];
      await race(t, stores, await log.connect());
    } finally {
      await closeAll();
    }
  });

  it("the same holds with eager replicas (no standby delay): every replica claims every new request at once", async (t) => {
    try {
      const log = freshLog();
      const stores = [await log.connect(), await log.connect(), await log.connect()];
      await race(t, stores, await log.connect(), { standbyMs: 0 });
    } finally {
      await closeAll();
    }
  });

  it("3 eager replicas over one embedded store keep the same guarantees", async (t) => {
    const dir = await tempDir("slap-alloc-");
    try {
      const store = await EmbeddedEventStore.open({ dir: dir.path, logger: silent });
      opened.push(() => store.close());
      await race(t, [store, store, store], store, { standbyMs: 0 });
    } finally {
      await closeAll();
      await dir.dispose();
    }
  });
});
