import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import {
  EventValidationError,
  WrongExpectedVersionError,
  follow,
  streamKeyOf,
  type Commit,
  type DomainEvent,
  type EventStore,
} from "@slap/events";
import type { CapturedLogger } from "./temp.js";
import {
  computerRegistered,
  connectionPublished,
  idsOf,
  instanceBanged,
  instanceRequested,
  partitionAllocated,
  softwareSupplied,
} from "./fixtures.js";

/**
 * What an adapter gives the contract suite. Each call of `open()` returns a store over a log
 * no other test of the suite uses (a fresh folder, or a fresh subject prefix and stream).
 */
export interface StoreHarness {
  open(): Promise<OpenedStore>;
  dispose(): Promise<void>;
}

export interface OpenedStore {
  store: EventStore;
  captured: CapturedLogger;
  /** Close the store and open it again over the same log (a restart of the process). */
  reopen: () => Promise<EventStore>;
  /** Write `body` as a commit of `streamKey` the way a foreign writer would: no validation. */
  injectRaw: (streamKey: string, body: Uint8Array) => Promise<void>;
}

async function collect(iterable: AsyncIterable<Commit>): Promise<Commit[]> {
  const out: Commit[] = [];
  for await (const commit of iterable) out.push(commit);
  return out;
}

async function take(iterable: AsyncIterable<Commit>, events: number): Promise<Commit[]> {
  const out: Commit[] = [];
  let count = 0;
  for await (const commit of iterable) {
    out.push(commit);
    count += commit.events.length;
    if (count >= events) break;
  }
  return out;
}

const key = (event: DomainEvent): string => streamKeyOf(event.aggregate);

/** The event-store contract. Runs unchanged against every adapter. */
export function eventStoreContract(name: string, makeHarness: () => StoreHarness | Promise<StoreHarness>): void {
  describe(`event store contract: ${name}`, () => {
    let harness: StoreHarness;
    const opened: EventStore[] = [];
    const open = async (): Promise<OpenedStore> => {
      const o = await harness.open();
      opened.push(o.store);
      return o;
    };

    before(async () => {
      harness = await makeHarness();
    });
    after(async () => {
      for (const store of opened) await store.close();
      await harness.dispose();
    });

    it("appends to a new stream at expected version 0 and reads it back with its version", async () => {
      const { store } = await open();
      const event = computerRegistered("COMP-1");
      const result = await store.append([event], { expectedVersion: 0 });
      assert.equal(result.duplicate, false);
      assert.ok(result.position >= 1);
      const slice = await store.readStream(key(event));
      assert.equal(slice.version, result.position);
      assert.deepEqual(idsOf(slice.commits), [event.id]);
      assert.deepEqual(slice.commits[0]?.events[0], event);
      assert.equal(await store.head(), result.position);
    });

    it("reads an unknown stream as empty at version 0", async () => {
      const { store } = await open();
      assert.deepEqual(await store.readStream("computer.NOPE.computer"), { version: 0, commits: [] });
    });

    it("refuses an append at a stale expected version with a typed error and writes nothing", async () => {
      const { store } = await open();
      const first = computerRegistered("COMP-1");
      const { position } = await store.append([first], { expectedVersion: 0 });
      const late = softwareSupplied("COMP-1", "file:///sr/a");
      await assert.rejects(store.append([late], { expectedVersion: 0 }), (error: unknown) => {
        assert.ok(error instanceof WrongExpectedVersionError);
        assert.equal(error.streamKey, key(first));
        assert.equal(error.expected, 0);
        assert.equal(error.retryable, true);
        return true;
      });
      const slice = await store.readStream(key(first));
      assert.deepEqual(idsOf(slice.commits), [first.id]);
      assert.equal(await store.head(), position);
      await store.append([late], { expectedVersion: position });
      assert.deepEqual(idsOf((await store.readStream(key(first))).commits), [first.id, late.id]);
    });

    it("lets exactly one of two racing appends at the same expected version win", async () => {
      const { store } = await open();
      const racers = Array.from({ length: 8 }, (_, i) => partitionAllocated("COMP-1", "slappart0", `inst-${i}`));
      const results = await Promise.allSettled(racers.map((e) => store.append([e], { expectedVersion: 0 })));
      assert.equal(results.filter((r) => r.status === "fulfilled").length, 1);
      for (const r of results) if (r.status === "rejected") assert.ok(r.reason instanceof WrongExpectedVersionError);
      assert.equal((await store.readStream("computer.COMP-1.partition.slappart0")).commits.length, 1);
    });

    it("appends with expected version any without checking", async () => {
      const { store } = await open();
      await store.append([computerRegistered("COMP-1")], { expectedVersion: "any" });
      await store.append([softwareSupplied("COMP-1", "file:///sr/a")], { expectedVersion: "any" });
      assert.equal((await store.readStream("computer.COMP-1.computer")).commits.length, 2);
    });

    it("does not duplicate a retried append: same event ids answer the original position", async () => {
      const { store } = await open();
      const event = instanceRequested("I1");
      const first = await store.append([event], { expectedVersion: 0 });
      const retry = await store.append([event], { expectedVersion: 0 });
      assert.deepEqual(retry, { position: first.position, duplicate: true });
      assert.deepEqual(idsOf(await collect(store.readAll())), [event.id]);
    });

    it("writes the events of one append as one atomic commit, in order", async () => {
      const { store } = await open();
      const events = [instanceRequested("I1"), instanceBanged("I1"), connectionPublished("I1", { url: "http://x" })];
      const { position } = await store.append(events, { expectedVersion: 0 });
      const all = await collect(store.readAll());
      assert.equal(all.length, 1);
      assert.equal(all[0]?.position, position);
      assert.equal(all[0]?.streamKey, key(events[0]!));
      assert.deepEqual(all[0]?.events, events);
    });

    it("refuses an event that does not match its schema, naming the field path, and appends nothing", async () => {
      const { store } = await open();
      const bad = computerRegistered("COMP-1");
      (bad.data.partitions[1] as { address: string }).address = "not-an-ip";
      await assert.rejects(store.append([bad], { expectedVersion: 0 }), (error: unknown) => {
        assert.ok(error instanceof EventValidationError);
        assert.equal(error.retryable, false);
        assert.ok(error.issues.some((i) => i.path === "events.0.data.partitions.1.address"), JSON.stringify(error.issues));
        assert.match(error.message, /events\.0\.data\.partitions\.1\.address/);
        return true;
      });
      const wrongType = { ...instanceRequested("I2"), type: "NoSuchEvent" } as unknown as DomainEvent;
      await assert.rejects(store.append([wrongType], { expectedVersion: 0 }), EventValidationError);
      const badId = { ...instanceRequested("I3/../x") };
      await assert.rejects(store.append([badId], { expectedVersion: 0 }), (error: unknown) => {
        assert.ok(error instanceof EventValidationError);
        assert.ok(error.issues.some((i) => i.path === "events.0.aggregate.instanceId"), JSON.stringify(error.issues));
        return true;
      });
      await assert.rejects(store.append([], { expectedVersion: 0 }), EventValidationError);
      assert.equal(await store.head(), 0);
      assert.deepEqual(await collect(store.readAll()), []);
    });

    it("refuses one append that mixes streams and appends nothing", async () => {
      const { store } = await open();
      await assert.rejects(
        store.append([instanceRequested("I1"), instanceRequested("I2")], { expectedVersion: "any" }),
        (error: unknown) => error instanceof EventValidationError && error.issues[0]?.path === "events.1.aggregate",
      );
      assert.equal(await store.head(), 0);
    });

    it("reads everything after a position, in order, and filtered by tree or computer", async () => {
      const { store } = await open();
      const events = [
        computerRegistered("COMP-1"),
        instanceRequested("ROOT"),
        instanceRequested("CHILD", { treeId: "ROOT", requester: { kind: "instance", instanceId: "ROOT", treeId: "ROOT" } }),
        partitionAllocated("COMP-1", "slappart0", "ROOT"),
        instanceRequested("OTHER"),
      ];
      const positions: number[] = [];
      for (const e of events) positions.push((await store.append([e], { expectedVersion: "any" })).position);
      assert.deepEqual(idsOf(await collect(store.readAll())), events.map((e) => e.id));
      assert.deepEqual(
        (await collect(store.readAll({ after: positions[1]! }))).map((c) => c.position),
        positions.slice(2),
      );
      assert.deepEqual(idsOf(await collect(store.readAll({ filter: follow.tree("ROOT") }))), [events[1]!.id, events[2]!.id]);
      assert.deepEqual(idsOf(await collect(store.readAll({ filter: follow.computer("COMP-1") }))), [events[0]!.id, events[3]!.id]);
      assert.deepEqual(idsOf(await collect(store.readAll({ filter: follow.instance("CHILD") }))), [events[2]!.id]);
      assert.deepEqual(await collect(store.readAll({ after: positions[4]! })), []);
    });

    it("subscribes: catches up, then goes live, with no gap and no duplicate at the seam", async () => {
      const { store } = await open();
      const written: string[] = [];
      for (let i = 0; i < 40; i++) {
        const e = instanceRequested(`I${i}`);
        written.push(e.id);
        await store.append([e], { expectedVersion: 0 });
      }
      const subscription = store.subscribe();
      const received = take(subscription, 120);
      const writer = (async () => {
        for (let i = 40; i < 120; i++) {
          const e = instanceRequested(`I${i}`);
          written.push(e.id);
          await store.append([e], { expectedVersion: 0 });
        }
      })();
      const [commits] = await Promise.all([received, writer]);
      await subscription.close();
      assert.deepEqual(idsOf(commits), written);
      const positions = commits.map((c) => c.position);
      assert.deepEqual(positions, [...positions].sort((a, b) => a - b));
      assert.equal(new Set(positions).size, positions.length);
    });

    it("subscribes from a position and with a filter, live", async () => {
      const { store } = await open();
      const { position } = await store.append([instanceRequested("A")], { expectedVersion: 0 });
      await store.append([instanceRequested("B")], { expectedVersion: 0 });
      const subscription = store.subscribe({ after: position, filter: follow.instance("B") });
      const received = take(subscription, 2);
      const late = instanceBanged("B");
      await store.append([instanceBanged("A")], { expectedVersion: "any" });
      await store.append([late], { expectedVersion: "any" });
      const commits = await received;
      await subscription.close();
      assert.deepEqual(commits.map((c) => c.events[0]?.type), ["InstanceRequested", "InstanceBanged"]);
      assert.equal(commits[1]?.events[0]?.id, late.id);
    });

    it("ends a subscription's iteration when it is closed while waiting", async () => {
      const { store } = await open();
      const subscription = store.subscribe();
      const done = collect(subscription);
      await new Promise((resolve) => setTimeout(resolve, 50));
      await subscription.close();
      assert.deepEqual(await done, []);
    });

    it("keeps every acknowledged commit across a restart, with versions and de-duplication intact", async () => {
      const o = await open();
      const events = Array.from({ length: 20 }, (_, i) => instanceRequested(`I${i}`));
      for (const e of events) await o.store.append([e], { expectedVersion: 0 });
      const stream = key(events[3]!);
      const version = (await o.store.readStream(stream)).version;
      const store = await o.reopen();
      opened.push(store);
      assert.deepEqual(idsOf(await collect(store.readAll())), events.map((e) => e.id));
      assert.equal((await store.readStream(stream)).version, version);
      assert.deepEqual(await store.append([events[3]!], { expectedVersion: 0 }), { position: version, duplicate: true });
      await assert.rejects(store.append([instanceBanged("I3")], { expectedVersion: 0 }), WrongExpectedVersionError);
      await store.append([instanceBanged("I3")], { expectedVersion: version });
    });

    it("skips a malformed commit written by someone else, logging its position, and goes on", async () => {
      const { store, captured, injectRaw } = await open();
      const good1 = instanceRequested("A");
      await store.append([good1], { expectedVersion: 0 });
      await injectRaw("tree.A.instance.A", Buffer.from("{ this is not json"));
      await injectRaw("tree.A.instance.A", Buffer.from(JSON.stringify([{ type: "InstanceRequested", id: "nope" }])));
      const good2 = instanceBanged("A");
      await store.append([good2], { expectedVersion: "any" });
      assert.deepEqual(idsOf(await collect(store.readAll())), [good1.id, good2.id]);
      const subscription = store.subscribe();
      const live = await take(subscription, 2);
      await subscription.close();
      assert.deepEqual(idsOf(live), [good1.id, good2.id]);
      const warnings = captured.lines.filter((l) => l.level === 40 && /malformed/.test(l.msg ?? ""));
      assert.ok(warnings.length >= 2, JSON.stringify(captured.lines));
      assert.ok(warnings.every((w) => typeof w.position === "number"), JSON.stringify(warnings));
    });
  });
}
