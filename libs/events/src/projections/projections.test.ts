import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { fixtures } from "@slap/testkit";
import { freePartitions, isReleaseAvailable, computersProjection } from "./computers.js";
import { instancesProjection } from "./instances.js";
import type { Projection } from "../projection.js";
import type { DomainEvent } from "../schemas.js";

function given<S>(projection: Projection<S>, events: DomainEvent[]): S {
  return events.reduce((state, event, i) => projection.evolve(state, event, i + 1), projection.initial());
}

describe("computers projection", () => {
  it("shows a release as available only when supplied and installed", () => {
    const state = given(computersProjection, [
      fixtures.computerRegistered("C1"),
      fixtures.softwareSupplied("C1", "file:///kvdb"),
      fixtures.softwareStatus("C1", "file:///kvdb", "building"),
    ]);
    const computer = state.computers.C1!;
    assert.equal(isReleaseAvailable(computer, "file:///kvdb"), false);
    computersProjection.evolve(state, fixtures.softwareStatus("C1", "file:///kvdb", "available"), 4);
    assert.equal(isReleaseAvailable(computer, "file:///kvdb"), true);
    assert.equal(isReleaseAvailable(computer, "file:///other"), false);
  });

  it("keeps the first allocation of a partition and frees it only for the instance it holds", () => {
    const state = given(computersProjection, [
      fixtures.computerRegistered("C1", 2),
      fixtures.partitionAllocated("C1", "slappart0", "A"),
      fixtures.partitionAllocated("C1", "slappart0", "B"),
      fixtures.partitionReleased("C1", "slappart0", "B"),
    ]);
    assert.equal(state.computers.C1!.partitions.slappart0!.instanceId, "A");
    assert.deepEqual(freePartitions(state.computers.C1!).map((p) => p.partitionId), ["slappart1"]);
    computersProjection.evolve(state, fixtures.partitionReleased("C1", "slappart0", "A"), 5);
    assert.deepEqual(freePartitions(state.computers.C1!).map((p) => p.partitionId), ["slappart0", "slappart1"]);
  });

  it("binds an instance to its first claim only: a racing second claim is superseded, not free, until released", () => {
    const state = given(computersProjection, [
      fixtures.computerRegistered("C1", 2),
      fixtures.computerRegistered("C2", 1),
      fixtures.partitionAllocated("C1", "slappart0", "A"),
      fixtures.partitionAllocated("C2", "slappart0", "A"),
    ]);
    const loser = state.computers.C2!.partitions.slappart0!;
    assert.equal(loser.instanceId, null);
    assert.deepEqual(loser.supersededClaim, { instanceId: "A", treeId: "A" });
    assert.equal(loser.version, 4);
    assert.deepEqual(freePartitions(state.computers.C2!), []);
    assert.deepEqual(state.bindings.A, { computerId: "C1", partitionId: "slappart0" });
    computersProjection.evolve(state, fixtures.partitionReleased("C2", "slappart0", "A"), 5);
    assert.deepEqual(freePartitions(state.computers.C2!).map((p) => p.partitionId), ["slappart0"]);
    assert.deepEqual(state.bindings.A, { computerId: "C1", partitionId: "slappart0" });
    assert.equal(state.computers.C2!.partitions.slappart0!.version, 5);
  });

  it("keeps, retired, the partitions a re-registration leaves out: their instance and version survive, none is offered", () => {
    const state = given(computersProjection, [
      fixtures.computerRegistered("C1", 3),
      fixtures.partitionAllocated("C1", "slappart2", "A"),
      fixtures.computerRegistered("C1", 1),
    ]);
    const partitions = state.computers.C1!.partitions;
    assert.deepEqual(Object.keys(partitions).sort(), ["slappart0", "slappart1", "slappart2"]);
    assert.equal(partitions.slappart2!.instanceId, "A");
    assert.equal(partitions.slappart2!.version, 2);
    assert.deepEqual(freePartitions(state.computers.C1!).map((p) => p.partitionId), ["slappart0"]);
    computersProjection.evolve(state, fixtures.computerRegistered("C1", 3), 4);
    assert.deepEqual(freePartitions(state.computers.C1!).map((p) => p.partitionId), ["slappart0", "slappart1"]);
    assert.equal(partitions.slappart2?.version, 2);
  });

  it("records a claim on a partition it never saw registered, retired, so the instance is bound the same everywhere", () => {
    const state = given(computersProjection, [fixtures.partitionAllocated("GHOST", "slappart9", "A"), fixtures.partitionAllocated("GHOST", "slappart9", "B")]);
    const ghost = state.computers.GHOST!.partitions.slappart9!;
    assert.equal(ghost.instanceId, "A");
    assert.equal(ghost.retired, true);
    assert.deepEqual(state.bindings, { A: { computerId: "GHOST", partitionId: "slappart9" } });
  });
});

describe("instances projection", () => {
  const child = (id: string, requester: string, tree: string) =>
    fixtures.instanceRequested(id, { treeId: tree, requester: { kind: "instance", instanceId: requester, treeId: tree } });

  it("builds trees with the root first and places an instance once", () => {
    const state = given(instancesProjection, [
      fixtures.instanceRequested("ROOT"),
      child("KV", "ROOT", "ROOT"),
      fixtures.partitionAllocated("C1", "slappart0", "KV", "ROOT"),
      fixtures.partitionAllocated("C1", "slappart1", "KV", "ROOT"),
    ]);
    assert.deepEqual(state.trees.ROOT!.instanceIds, ["ROOT", "KV"]);
    assert.deepEqual(state.instances.KV!.placement, { computerId: "C1", partitionId: "slappart0" });
  });

  it("bumps the host when a shared instance is attached to it, once", () => {
    const state = given(instancesProjection, [fixtures.instanceRequested("HOST"), fixtures.instanceRequested("S", { shared: true })]);
    const before = state.instances.HOST!.serial;
    const attach = (id: string) => ({
      ...fixtures.instanceBanged("S"),
      id,
      type: "SharedInstanceAttached" as const,
      data: { hostInstanceId: "HOST", hostTreeId: "HOST" },
    });
    instancesProjection.evolve(state, attach(fixtures.newId()), 3);
    instancesProjection.evolve(state, attach(fixtures.newId()), 4);
    assert.equal(state.instances.HOST!.serial, before + 1);
    assert.deepEqual(state.instances.S!.host, { instanceId: "HOST", treeId: "HOST" });
  });

  it("bumps the banged instance and every requester up to the root", () => {
    const state = given(instancesProjection, [fixtures.instanceRequested("R"), child("A", "R", "R"), child("B", "A", "R")]);
    const before = { R: state.instances.R!.serial, A: state.instances.A!.serial, B: state.instances.B!.serial };
    instancesProjection.evolve(state, fixtures.instanceBanged("B", "R"), 4);
    assert.deepEqual(
      { R: state.instances.R!.serial, A: state.instances.A!.serial, B: state.instances.B!.serial },
      { R: before.R + 1, A: before.A + 1, B: before.B + 1 },
    );
  });

  it("bumps the requester when, and only when, the connection parameters change", () => {
    const state = given(instancesProjection, [fixtures.instanceRequested("R"), child("A", "R", "R")]);
    const serial = () => state.instances.R!.serial;
    const start = serial();
    instancesProjection.evolve(state, fixtures.connectionPublished("A", { url: "x" }, { treeId: "R" }), 3);
    assert.equal(serial(), start + 1);
    instancesProjection.evolve(state, fixtures.connectionPublished("A", { url: "x" }, { treeId: "R" }), 4);
    assert.equal(serial(), start + 1);
    instancesProjection.evolve(state, fixtures.connectionPublished("A", { url: "y" }, { treeId: "R" }), 5);
    assert.equal(serial(), start + 2);
    assert.deepEqual(state.instances.A!.connection, { url: "y" });
  });

  it("ignores the whole story's events of other aggregates without failing", () => {
    const state = given(instancesProjection, fixtures.story(1).flat());
    assert.equal(state.instances.KV0!.destroyed, true);
    assert.equal(state.instances.KV0!.placement, null);
    assert.deepEqual(state.instances.SH0!.host, { instanceId: "KV0", treeId: "WEB0" });
    assert.equal(state.instances.WEB0!.status?.status, "started");
    assert.deepEqual(state.instances.WEB0!.parameters, { title: "bye" });
  });
});
