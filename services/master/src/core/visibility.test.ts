import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { MASK, cloudProjection, type Actor, type CloudView, type DomainEvent } from "@slap/events";
import { fixtures } from "@slap/testkit";
import type { Answer } from "./answer.js";
import {
  HIDDEN,
  computerAsSeen,
  findInstance,
  guardReason,
  liveRead,
  maskEvent,
  maskInstance,
  mayAudit,
  mayHeartbeat,
  mayReadEvent,
  maySee,
  visibleInstances,
  visibleSharedInstances,
  type ReadModels,
} from "./visibility.js";

const alice: Actor = { kind: "user", userId: "alice" };
const bob: Actor = { kind: "user", userId: "bob" };
const admin: Actor = { kind: "user", userId: "admin" };
const node1: Actor = { kind: "node", computerId: "COMP-1" };
const partition = (partitionId: string): Actor => ({ kind: "partition", computerId: "COMP-1", partitionId });

/** given(events) → the read models they fold to (the master's cloud projection). */
function given(events: readonly DomainEvent[]): CloudView {
  return events.reduce((state, event, i) => cloudProjection.evolve(state, event, i + 1), cloudProjection.initial());
}

/** A live read of the read models `events` fold to. */
const live = (events: readonly DomainEvent[]): ReadModels => liveRead(given(events));

const ids = (instances: ReadonlyArray<{ instanceId: string }>): string[] => instances.map((i) => i.instanceId).sort();

/** Alice's tree A (A and its child A2) on COMP-1/slappart0; bob's B on COMP-1/slappart1. */
const cloud = (): DomainEvent[] => [
  fixtures.computerRegistered("COMP-1", 3),
  fixtures.instanceRequested("A", { requester: { kind: "user", userId: "alice" }, parameters: { size: "1", password: "hunter2" } }),
  fixtures.instanceRequested("A2", { treeId: "A", requester: { kind: "instance", instanceId: "A", treeId: "A" } }),
  fixtures.instanceRequested("B", { requester: { kind: "user", userId: "bob" } }),
  fixtures.partitionAllocated("COMP-1", "slappart0", "A"),
  fixtures.partitionAllocated("COMP-1", "slappart1", "B"),
];

describe("who sees which instance", () => {
  it("a user sees the instances of her own trees, admin sees all, a node none through the instance reads", () => {
    const models = live(cloud());
    assert.deepEqual(ids(visibleInstances(alice, models)), ["A", "A2"]);
    assert.deepEqual(ids(visibleInstances(bob, models)), ["B"]);
    assert.deepEqual(ids(visibleInstances(admin, models)), ["A", "A2", "B"]);
    assert.deepEqual(visibleInstances(node1, models), []);
  });

  it("a partition sees the tree of the instance it holds, and nothing of a tree it does not hold", () => {
    const models = live(cloud());
    assert.deepEqual(ids(visibleInstances(partition("slappart0"), models)), ["A", "A2"]);
    assert.deepEqual(ids(visibleInstances(partition("slappart2"), models)), []);
  });

  it("someone else's instance is not found, in the same words as one that does not exist", () => {
    const models = live(cloud());
    assert.deepEqual(findInstance(bob, "A", models), { ok: false, reason: "NotFound", detail: "no instance A" });
    assert.deepEqual(findInstance(bob, "NOPE", models), { ok: false, reason: "NotFound", detail: "no instance NOPE" });
    assert.equal((findInstance(alice, "A", models) as { instanceId: string }).instanceId, "A");
  });

  it("as of a past moment, shows what was visible then and is visible now: a partition no longer sees the tree it held", () => {
    const before = cloud();
    const after = [...before, fixtures.partitionReleased("COMP-1", "slappart0", "A"), fixtures.partitionAllocated("COMP-1", "slappart0", "B", "B")];
    const past: ReadModels = { read: given(before), live: given(after), past: true };
    assert.equal(maySee(partition("slappart0"), given(before).instances.instances.A!, liveRead(given(before))), true, "then, it held A");
    assert.deepEqual(ids(visibleInstances(partition("slappart0"), past)), []);
    // A user's own trees are hers then and now.
    assert.deepEqual(ids(visibleInstances(alice, past)), ["A", "A2"]);
  });

  it("a host's shared instances are shown only to those who may see them", () => {
    const attached = (instanceId: string): DomainEvent => ({
      ...fixtures.instanceBanged(instanceId),
      type: "SharedInstanceAttached",
      data: { hostInstanceId: "A", hostTreeId: "A" },
    });
    const models = live([
      ...cloud(),
      fixtures.instanceRequested("S", { requester: { kind: "user", userId: "bob" }, shared: true }),
      fixtures.instanceRequested("S2", { requester: { kind: "user", userId: "alice" }, shared: true }),
      attached("S"),
      attached("S2"),
    ]);
    const host = models.read.instances.instances.A!;
    assert.deepEqual(ids(visibleSharedInstances(alice, host, models)), ["S2"]);
    assert.deepEqual(ids(visibleSharedInstances(admin, host, models)), ["S", "S2"]);
  });
});

describe("a pending reason naming a host", () => {
  const sharedOn = (hostId: string): DomainEvent[] => {
    const requested = fixtures.instanceRequested("S", { requester: { kind: "user", userId: "bob" }, shared: true });
    return [...cloud(), { ...requested, data: { ...requested.data, sla: { instance_guid: hostId } } }];
  };
  const pending: Answer = { status: "pending", instanceId: "S", reference: "ref-S", reason: "host A is stopped (release file:///software/kvdb)", retryAfterMs: 1_000 };

  it("does not describe a host the requester may not see", () => {
    const models = live(sharedOn("A"));
    const guarded = guardReason(bob, models.read.instances.instances.S!, pending, models);
    assert.deepEqual(guarded, { ...pending, reason: "waiting for a host: instance_guid A is not a ready host this requester may use" });
  });

  it("is kept when the requester may see the host, and any answer but pending is kept", () => {
    const models = live(sharedOn("B"));
    const shared = models.read.instances.instances.S!;
    assert.deepEqual(guardReason(bob, shared, pending, models), pending);
    const ready: Answer = { status: "ready", instanceId: "S", reference: "ref-S", connection: { url: "x" } };
    assert.deepEqual(guardReason(alice, shared, ready, models), ready);
  });
});

describe("what a computer shows of its partitions", () => {
  it("hides the holder of a partition from a user who may not see it, and shows her own", () => {
    const models = live(cloud());
    const computer = models.read.computers.computers["COMP-1"]!;
    const seen = computerAsSeen(alice, computer, models);
    assert.equal(seen.partitions.slappart0?.instanceId, "A");
    assert.deepEqual([seen.partitions.slappart1?.instanceId, seen.partitions.slappart1?.treeId], [HIDDEN, HIDDEN]);
    assert.equal(seen.partitions.slappart2?.instanceId, null, "a free partition is shown free");
  });

  it("shows every holder to admin and to nodes", () => {
    const models = live(cloud());
    const computer = models.read.computers.computers["COMP-1"]!;
    for (const actor of [admin, node1]) assert.equal(computerAsSeen(actor, computer, models).partitions.slappart1?.instanceId, "B");
  });
});

describe("who may audit and send heartbeats", () => {
  it("only admin may audit", () => {
    assert.equal(mayAudit(admin), undefined);
    for (const actor of [alice, node1, partition("slappart0")]) assert.deepEqual(mayAudit(actor), { ok: false, reason: "Forbidden", detail: "only admin may audit" });
  });

  it("only the node of a registered computer (or its partitions) may send its heartbeat", () => {
    const views = given(cloud());
    assert.equal(mayHeartbeat(node1, "COMP-1", views), undefined);
    assert.equal(mayHeartbeat(partition("slappart0"), "COMP-1", views), undefined);
    assert.equal(mayHeartbeat(node1, "COMP-2", views)?.reason, "Forbidden");
    assert.equal(mayHeartbeat(admin, "COMP-1", views)?.reason, "Forbidden");
    assert.deepEqual(mayHeartbeat({ kind: "node", computerId: "COMP-9" }, "COMP-9", views), { ok: false, reason: "NotFound", detail: "no computer COMP-9: register it first" });
  });
});

describe("who may read which event of the log", () => {
  const views = given(cloud());
  const ofA = fixtures.instanceBanged("A2", "A");
  const ofB = fixtures.instanceBanged("B");
  const computerEvent = fixtures.softwareSupplied("COMP-1", "file:///software/kvdb");
  const otherComputer = fixtures.softwareSupplied("COMP-2", "file:///software/kvdb");

  it("a user reads her own trees' events and the computers', not others' trees'; admin reads all", () => {
    assert.deepEqual([ofA, ofB, computerEvent].map((e) => mayReadEvent(alice, e, views)), [true, false, true]);
    assert.equal(mayReadEvent(alice, fixtures.partitionAllocated("COMP-1", "slappart1", "B"), views), false, "an allocation is about its tree");
    assert.deepEqual([ofA, ofB, computerEvent].map((e) => mayReadEvent(admin, e, views)), [true, true, true]);
  });

  it("a node reads its own computer's events and those of the instances placed on it; a partition its tree and its computer", () => {
    assert.deepEqual([computerEvent, otherComputer, ofB, fixtures.instanceBanged("A2", "A")].map((e) => mayReadEvent(node1, e, views)), [true, false, true, false]);
    assert.deepEqual([ofA, ofB, computerEvent, otherComputer].map((e) => mayReadEvent(partition("slappart0"), e, views)), [true, false, true, false]);
    assert.equal(mayReadEvent({ kind: "service", name: "allocator" }, computerEvent, views), false);
  });
});

describe("what is masked", () => {
  it("secret-looking parameters and connection values, unless asked for", () => {
    const events = [...cloud(), fixtures.connectionPublished("A", { url: "http://a", api_key: "k" })];
    const instance = given(events).instances.instances.A!;
    assert.deepEqual(maskInstance(instance, false).parameters, { size: "1", password: MASK });
    assert.deepEqual(maskInstance(instance, false).connection, { url: "http://a", api_key: MASK });
    assert.deepEqual(maskInstance(instance, true).connection, { url: "http://a", api_key: "k" });
    const published = fixtures.connectionPublished("A", { token: "t", host: "h" });
    assert.deepEqual((maskEvent(published, false) as typeof published).data.parameters, { token: MASK, host: "h" });
    assert.deepEqual((maskEvent(published, true) as typeof published).data.parameters, { token: "t", host: "h" });
  });
});
