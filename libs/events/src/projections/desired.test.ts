import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { fixtures, foldEvents } from "@slap/testkit";
import type { DomainEvent, EventOf } from "../schemas.js";
import { desiredStateOf, masterProjection, type MasterView } from "./desired.js";

/** The events of a small cloud: C1 holds the host H (alice's) and W (bob's webapp, which requested D on C2). */
const cloud = (): DomainEvent[] => [
  fixtures.computerRegistered("C1"),
  fixtures.computerRegistered("C2"),
  fixtures.instanceRequested("H", { parameters: { secret: "alice's" } }),
  fixtures.partitionAllocated("C1", "slappart0", "H"),
  fixtures.instanceRequested("W", { requester: { kind: "user", userId: "bob" } }),
  fixtures.partitionAllocated("C1", "slappart1", "W"),
  fixtures.instanceRequested("D", { treeId: "W", requester: { kind: "instance", instanceId: "W", treeId: "W" }, parameters: { secret: "bob's db" } }),
  fixtures.partitionAllocated("C2", "slappart0", "D", "W"),
];

const attached = (shared: string, host: string): EventOf<"SharedInstanceAttached"> => ({
  ...fixtures.instanceBanged(shared),
  type: "SharedInstanceAttached",
  data: { hostInstanceId: host, hostTreeId: host },
});
const status = (instanceId: string, treeId = instanceId): EventOf<"InstanceStatusReported"> => ({
  ...fixtures.instanceBanged(instanceId, treeId),
  type: "InstanceStatusReported",
  data: { status: "started", computerId: "C1", partitionId: "slappart0" },
});

/** Folds `events` after the cloud's, each at its own position; returns the view and the revision of each C1 partition. */
function after(events: DomainEvent[], view: MasterView = foldEvents(masterProjection, cloud())) {
  const from = Math.max(cloud().length, ...Object.values(view.desired.computers).map((c) => c.revision)) + 1;
  const next = foldEvents(masterProjection, events, view, from);
  const c1 = desiredStateOf(next, "C1", 0)!;
  return { view: next, c1, revisions: Object.fromEntries(c1.partitions.map((p) => [p.partitionId, p.revision])) };
}

describe("desired-state projection", () => {
  it("holds a computer's own partitions and their instances only, with what each requested once it published", () => {
    const start = after([]);
    assert.deepEqual(start.c1.partitions.map((p) => [p.partitionId, p.instance?.instanceId]), [["slappart0", "H"], ["slappart1", "W"]]);
    assert.ok(!JSON.stringify(start.c1).includes("bob's db"), "nothing of C2's instance");
    assert.deepEqual(start.c1.partitions[1]!.instance!.requested, [], "D has not published yet");
    const published = after([fixtures.connectionPublished("D", { url: "db://d" }, { treeId: "W", computerId: "C2" })], start.view);
    assert.deepEqual(published.c1.partitions[1]!.instance!.requested, [{ instanceId: "D", reference: "ref-D", connection: { url: "db://d" } }]);
    assert.ok(published.revisions.slappart1! > start.revisions.slappart1!, "the requester's partition has a newer revision");
    assert.equal(published.revisions.slappart0, start.revisions.slappart0, "the other partition's is unchanged");
    assert.equal(published.c1.revision, published.revisions.slappart1);
  });

  it("bumps the host's partition when a shared instance is attached or changes, and nothing for a status report or another computer's change", () => {
    const start = after([fixtures.instanceRequested("S", { shared: true, parameters: { name: "tenant" } })]);
    const attach = after([attached("S", "H")], start.view);
    assert.ok(attach.revisions.slappart0! > start.revisions.slappart0!);
    assert.deepEqual(attach.c1.partitions[0]!.instance!.sharedInstances.map((s) => [s.instanceId, s.parameters]), [["S", { name: "tenant" }]]);
    const quiet = after([status("H"), status("S"), status("D", "W"), fixtures.softwareStatus("C2", "file:///x", "available")], attach.view);
    assert.deepEqual(quiet.revisions, attach.revisions, "no C1 entry changed");
    assert.equal(quiet.c1.revision, attach.c1.revision);
    const bangD = after([fixtures.instanceBanged("D", "W")], quiet.view);
    assert.ok(bangD.revisions.slappart1! > quiet.revisions.slappart1!, "a bang of D on C2 reprocesses its requester W on C1");
    assert.equal(bangD.revisions.slappart0, quiet.revisions.slappart0);
    const bang = after([fixtures.instanceBanged("H")], bangD.view);
    assert.ok(bang.revisions.slappart0! > bangD.revisions.slappart0!, "a bang bumps the serial, so the revision");
    const freed = after([fixtures.partitionReleased("C1", "slappart1", "W")], bang.view);
    assert.equal(freed.c1.partitions[1]!.instance, null);
    assert.ok(freed.revisions.slappart1! > bang.revisions.slappart1!);
  });

  it("is the same rebuilt from the log as folded live", () => {
    const events = [...cloud(), fixtures.instanceRequested("S", { shared: true }), attached("S", "H"), status("H"), fixtures.connectionPublished("D", { url: "db://d" }, { treeId: "W" })];
    const live = foldEvents(masterProjection, events);
    const rebuilt = foldEvents(masterProjection, structuredClone(events));
    assert.deepEqual(rebuilt.desired, live.desired);
    assert.deepEqual(desiredStateOf(rebuilt, "C1", 9), desiredStateOf(live, "C1", 9));
  });
});
