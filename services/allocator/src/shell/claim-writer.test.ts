import assert from "node:assert/strict";
import { setTimeout as sleep } from "node:timers/promises";
import { afterEach, describe, it } from "node:test";
import { rebuild, type CloudView, type DomainEvent, type EventStore, cloudProjection } from "@slap/events";
import { EmbeddedEventStore } from "@slap/eventstore-embedded";
import { eventually, fixtures, tempDir } from "@slap/testkit";
import { pino } from "pino";
import { Allocator } from "./allocator.js";
import { ClaimWriterHarness, StoreClaimWriter } from "./claim-writer.js";

const KVDB = "file:///software/kvdb";
const silent = pino({ level: "silent" });

/** Everything a test opened, closed in reverse order after it. */
let opened: Array<() => Promise<void>> = [];
afterEach(async () => {
  for (const close of opened.reverse()) await close();
  opened = [];
});

/** An embedded log in a temporary folder (no server), with a computer of `partitions` partitions that has KVDB. */
async function log(partitions = 2): Promise<EventStore> {
  const dir = await tempDir("slap-claims-");
  const store = await EmbeddedEventStore.open({ dir: dir.path, logger: silent });
  opened.push(() => dir.dispose(), () => store.close());
  for (const event of [fixtures.computerRegistered("C1", partitions), fixtures.softwareSupplied("C1", KVDB), fixtures.softwareStatus("C1", KVDB, "available")]) {
    await store.append([event], { expectedVersion: "any" });
  }
  return store;
}

async function request(store: EventStore, instanceId: string): Promise<void> {
  await store.append([fixtures.instanceRequested(instanceId, { releaseUrl: KVDB })], { expectedVersion: "any" });
}

async function start(store: EventStore, writer: ClaimWriterHarness, conflictRetryMs = 50): Promise<Allocator> {
  const allocator = new Allocator({ store, logger: silent, writer, conflictRetryMs });
  await allocator.start();
  opened.push(() => allocator.stop());
  return allocator;
}

/** What the log holds, read back from the store: not the allocator's memory. */
async function stored(store: EventStore): Promise<{ view: CloudView; events: DomainEvent[] }> {
  const events: DomainEvent[] = [];
  for await (const commit of store.readAll()) events.push(...commit.events);
  return { view: (await rebuild(store, cloudProjection)).state, events };
}

/** Waits until `check` passes (fails the test after 10 s with its last failure). */
const until = (what: string, check: () => void): Promise<true> =>
  eventually(
    what,
    () => {
      check();
      return Promise.resolve(true);
    },
    10_000,
    10,
  );

/** No partition holds two instances and no instance is bound to two partitions. */
function assertPlacedOnce(view: CloudView): void {
  const holders = new Map<string, string[]>();
  for (const computer of Object.values(view.computers.computers)) {
    for (const partition of Object.values(computer.partitions)) {
      if (partition.instanceId === null) continue;
      holders.set(partition.instanceId, [...(holders.get(partition.instanceId) ?? []), `${computer.computerId}/${partition.partitionId}`]);
    }
  }
  for (const [instanceId, where] of holders) assert.equal(where.length, 1, `${instanceId} holds ${where.join(", ")}`);
}

describe("allocator claims through the claim writer", () => {
  it("retries a claim refused as a version conflict after catching up, re-reads the stream after two in a row, and places once", async () => {
    const store = await log();
    const writer = new ClaimWriterHarness(new StoreClaimWriter(store)).rejectNext(2, (e) => e.type === "PartitionAllocated");
    await request(store, "A");
    const allocator = await start(store, writer);
    await until("A is placed", () => assert.deepEqual(allocator.view.computers.bindings.A, { computerId: "C1", partitionId: "slappart0" }));
    assert.deepEqual(
      writer.proposed("PartitionAllocated").map((p) => p.result.kind),
      ["conflict", "conflict", "appended"],
    );
    assert.equal(writer.streamVersionReads, 1);
    assert.deepEqual({ conflicts: allocator.stats.conflicts, placed: allocator.stats.placed }, { conflicts: 2, placed: 1 });
    const { view, events } = await stored(store);
    assert.equal(events.filter((e) => e.type === "PartitionAllocated").length, 1);
    assertPlacedOnce(view);
  });

  it("keeps a claim that is always refused pending, retried at a bounded rate, and places nothing", async () => {
    const store = await log();
    const writer = new ClaimWriterHarness(new StoreClaimWriter(store)).rejectNext(Number.POSITIVE_INFINITY);
    await request(store, "A");
    const allocator = await start(store, writer, 100);
    await sleep(700);
    const tries = writer.proposed("PartitionAllocated").length;
    // One try, then one per conflictRetryMs at most (the conflicting position never comes).
    assert.ok(tries >= 3 && tries <= 9, `${tries} claims in 700 ms`);
    assert.ok(writer.proposals.every((p) => p.result.kind === "conflict"));
    assert.equal(allocator.stats.conflicts, tries);
    await allocator.stop();
    const after = writer.proposals.length;
    await sleep(250);
    assert.equal(writer.proposals.length, after, "no claim after stop");
    const { view } = await stored(store);
    assert.deepEqual(view.computers.bindings, {});
  });

  it("releases its superseded claim when a rival replica bound the instance first, and nothing is placed twice", async () => {
    const store = await log(3);
    // Before our claim of A on slappart0 lands, a rival replica's claim of A on slappart1 does.
    const writer = new ClaimWriterHarness(new StoreClaimWriter(store)).on(
      async () => {
        await store.append([fixtures.partitionAllocated("C1", "slappart1", "A")], { expectedVersion: 0 });
        return undefined;
      },
      { match: (e) => e.type === "PartitionAllocated" },
    );
    await request(store, "A");
    const allocator = await start(store, writer);
    await until("the superseded claim is released", () => assert.equal(allocator.stats.released, 1));
    assert.deepEqual(
      writer.proposals.map((p) => [p.event.type, p.result.kind]),
      [
        ["PartitionAllocated", "appended"],
        ["PartitionReleased", "appended"],
      ],
    );
    assert.equal(allocator.stats.placed, 0);
    const { view, events } = await stored(store);
    assert.deepEqual(view.computers.bindings.A, { computerId: "C1", partitionId: "slappart1" });
    const slappart0 = view.computers.computers.C1!.partitions.slappart0!;
    assert.deepEqual({ instanceId: slappart0.instanceId, supersededClaim: slappart0.supersededClaim }, { instanceId: null, supersededClaim: null });
    const released = events.filter((e) => e.type === "PartitionReleased");
    assert.deepEqual(
      released.map((e) => [e.aggregate.kind === "partition" ? e.aggregate.partitionId : "", e.data.reason]),
      [["slappart0", "superseded"]],
    );
    assertPlacedOnce(view);
  });

  it("retries the same commit after transient store failures, and places once", async () => {
    const store = await log();
    const writer = new ClaimWriterHarness(new StoreClaimWriter(store)).failNext(2);
    await request(store, "A");
    const allocator = await start(store, writer);
    await until("A is placed", () => assert.equal(allocator.stats.placed, 1));
    const claims = writer.proposed("PartitionAllocated");
    assert.deepEqual(
      claims.map((p) => p.result.kind),
      ["failed", "failed", "appended"],
    );
    assert.equal(new Set(claims.map((p) => p.event.id)).size, 1, "the same event, so a retry is idempotent");
    assert.equal(allocator.stats.storeErrors, 2);
    assertPlacedOnce((await stored(store)).view);
  });
});
