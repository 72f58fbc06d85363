import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { fixtures, projectionSpecification } from "@slap/testkit";
import { freePartitions, isReleaseAvailable, computersProjection } from "./computers.js";
import { instancesProjection } from "./instances.js";

const computers = projectionSpecification(computersProjection);
const instances = projectionSpecification(instancesProjection);

describe("computers projection", () => {
  it("shows a release as available only when supplied and installed", () => {
    let spec = computers.given([
      fixtures.computerRegistered("C1"),
      fixtures.softwareSupplied("C1", "file:///kvdb"),
      fixtures.softwareStatus("C1", "file:///kvdb", "building"),
    ]);
    const state = spec.state;
    const computer = state.computers.C1!;
    assert.equal(isReleaseAvailable(computer, "file:///kvdb"), false);
    spec = spec.when([fixtures.softwareStatus("C1", "file:///kvdb", "available")]);
    assert.equal(isReleaseAvailable(computer, "file:///kvdb"), true);
    assert.equal(isReleaseAvailable(computer, "file:///other"), false);
  });

  it("keeps the first allocation of a partition and frees it only for the instance it holds", () => {
    let spec = computers.given([
      fixtures.computerRegistered("C1", 2),
      fixtures.partitionAllocated("C1", "slappart0", "A"),
      fixtures.partitionAllocated("C1", "slappart0", "B"),
      fixtures.partitionReleased("C1", "slappart0", "B"),
    ]);
    const state = spec.state;
    assert.equal(state.computers.C1!.partitions.slappart0!.instanceId, "A");
    assert.deepEqual(freePartitions(state.computers.C1!).map((p) => p.partitionId), ["slappart1"]);
    spec = spec.when([fixtures.partitionReleased("C1", "slappart0", "A")]);
    assert.deepEqual(freePartitions(state.computers.C1!).map((p) => p.partitionId), ["slappart0", "slappart1"]);
  });

  it("binds an instance to its first claim only: a racing second claim is superseded, not free, until released", () => {
    let spec = computers.given([
      fixtures.computerRegistered("C1", 2),
      fixtures.computerRegistered("C2", 1),
      fixtures.partitionAllocated("C1", "slappart0", "A"),
      fixtures.partitionAllocated("C2", "slappart0", "A"),
    ]);
    const state = spec.state;
    const loser = state.computers.C2!.partitions.slappart0!;
    assert.equal(loser.instanceId, null);
    assert.deepEqual(loser.supersededClaim, { instanceId: "A", treeId: "A" });
    assert.equal(loser.version, 4);
    assert.deepEqual(freePartitions(state.computers.C2!), []);
    assert.deepEqual(state.bindings.A, { computerId: "C1", partitionId: "slappart0" });
    spec = spec.when([fixtures.partitionReleased("C2", "slappart0", "A")]);
    assert.deepEqual(freePartitions(state.computers.C2!).map((p) => p.partitionId), ["slappart0"]);
    assert.deepEqual(state.bindings.A, { computerId: "C1", partitionId: "slappart0" });
    assert.equal(state.computers.C2!.partitions.slappart0!.version, 5);
  });

  it("keeps, retired, the partitions a re-registration leaves out: their instance and version survive, none is offered", () => {
    let spec = computers.given([
      fixtures.computerRegistered("C1", 3),
      fixtures.partitionAllocated("C1", "slappart2", "A"),
      fixtures.computerRegistered("C1", 1),
    ]);
    const state = spec.state;
    const partitions = state.computers.C1!.partitions;
    assert.deepEqual(Object.keys(partitions).sort(), ["slappart0", "slappart1", "slappart2"]);
    assert.equal(partitions.slappart2!.instanceId, "A");
    assert.equal(partitions.slappart2!.version, 2);
    assert.deepEqual(freePartitions(state.computers.C1!).map((p) => p.partitionId), ["slappart0"]);
    spec = spec.when([fixtures.computerRegistered("C1", 3)]);
    assert.deepEqual(freePartitions(state.computers.C1!).map((p) => p.partitionId), ["slappart0", "slappart1"]);
    assert.equal(partitions.slappart2?.version, 2);
  });

  it("records a claim on a partition it never saw registered, retired, so the instance is bound the same everywhere", () => {
    const state = computers.given([fixtures.partitionAllocated("GHOST", "slappart9", "A"), fixtures.partitionAllocated("GHOST", "slappart9", "B")]).state;
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
    const state = instances.given([
      fixtures.instanceRequested("ROOT"),
      child("KV", "ROOT", "ROOT"),
      fixtures.partitionAllocated("C1", "slappart0", "KV", "ROOT"),
      fixtures.partitionAllocated("C1", "slappart1", "KV", "ROOT"),
    ]).state;
    assert.deepEqual(state.trees.ROOT!.instanceIds, ["ROOT", "KV"]);
    assert.deepEqual(state.instances.KV!.placement, { computerId: "C1", partitionId: "slappart0" });
  });

  it("bumps the host when a shared instance is attached to it, once", () => {
    let spec = instances.given([fixtures.instanceRequested("HOST"), fixtures.instanceRequested("S", { shared: true })]);
    const state = spec.state;
    const before = state.instances.HOST!.serial;
    const attach = (id: string) => ({
      ...fixtures.instanceBanged("S"),
      id,
      type: "SharedInstanceAttached" as const,
      data: { hostInstanceId: "HOST", hostTreeId: "HOST" },
    });
    spec = spec.when([attach(fixtures.newId())]);
    spec = spec.when([attach(fixtures.newId())]);
    assert.equal(state.instances.HOST!.serial, before + 1);
    assert.deepEqual(state.instances.S!.host, { instanceId: "HOST", treeId: "HOST" });
  });

  /** The instances of a small world: a tree R > A > B with a shared instance S of it attached to HOST (tree HOST). */
  const world = () => {
    const attached = { ...fixtures.instanceBanged("S", "R"), id: fixtures.newId(), type: "SharedInstanceAttached" as const, data: { hostInstanceId: "HOST", hostTreeId: "HOST" } };
    return instances.given([
      fixtures.instanceRequested("HOST"),
      fixtures.instanceRequested("R"),
      child("A", "R", "R"),
      child("B", "A", "R"),
      { ...child("S", "R", "R"), data: { ...child("S", "R", "R").data, shared: true } },
      attached,
      fixtures.instanceRequested("OTHER"),
    ]);
  };
  const serials = (state: { instances: Record<string, { serial: number }> }) => Object.fromEntries(Object.entries(state.instances).map(([id, i]) => [id, i.serial]));
  const onS = <T extends "InstanceParametersChanged" | "InstanceRequestedStateChanged" | "InstanceDestroyed">(type: T, data: unknown) =>
    ({ ...fixtures.instanceBanged("S", "R"), id: fixtures.newId(), type, data }) as unknown as Parameters<ReturnType<typeof world>["when"]>[0][number];

  it("bumps every instance of the banged instance's tree once, and the host of its shared ones (bang_tree)", () => {
    const spec = world();
    const before = serials(spec.state);
    spec.when([fixtures.instanceBanged("B", "R")]);
    const after = serials(spec.state);
    assert.deepEqual(after, { ...before, R: before.R! + 1, A: before.A! + 1, B: before.B! + 1, S: before.S! + 1, HOST: before.HOST! + 1 });
  });

  it("bumps the host at every change of a shared instance: parameters, state, destroyed (a bang: above)", () => {
    let spec = world();
    const host = () => spec.state.instances.HOST!.serial;
    let expected = host();
    for (const event of [
      onS("InstanceParametersChanged", { parameters: { colour: "blue" }, softwareType: "default", sla: {} }),
      onS("InstanceRequestedStateChanged", { requestedState: "destroyed" }),
      onS("InstanceDestroyed", {}),
    ]) {
      spec = spec.when([event]);
      assert.equal(host(), ++expected, event.type);
    }
  });

  it("bumps every instance placed on a banged computer, and none elsewhere", () => {
    const spec = world().when([fixtures.partitionAllocated("C1", "slappart0", "A", "R"), fixtures.partitionAllocated("C2", "slappart0", "B", "R")]);
    const before = serials(spec.state);
    spec.when([{ ...fixtures.computerRegistered("C1"), id: fixtures.newId(), type: "ComputerBanged", data: { message: "disk replaced" } }]);
    assert.deepEqual(serials(spec.state), { ...before, A: before.A! + 1 });
  });

  it("bumps a root being destroyed when a child of its tree leaves its partition, destroyed", () => {
    let spec = world().when([fixtures.partitionAllocated("C1", "slappart0", "R", "R"), fixtures.partitionAllocated("C1", "slappart1", "B", "R")]);
    const root = () => spec.state.instances.R!.serial;
    const alive = root();
    spec = spec.when([fixtures.partitionReleased("C1", "slappart1", "B")]);
    assert.equal(root(), alive, "not being destroyed: nothing to wake");
    spec = spec.when([
      { ...fixtures.instanceBanged("R"), id: fixtures.newId(), type: "InstanceRequestedStateChanged", data: { requestedState: "destroyed" } },
      fixtures.partitionAllocated("C1", "slappart2", "A", "R"),
    ]);
    const destroying = root();
    spec = spec.when([fixtures.partitionReleased("C1", "slappart2", "A")]);
    assert.equal(root(), destroying + 1);
  });

  it("bumps the requester when, and only when, the connection parameters change", () => {
    let spec = instances.given([fixtures.instanceRequested("R"), child("A", "R", "R")]);
    const state = spec.state;
    const serial = () => state.instances.R!.serial;
    const start = serial();
    spec = spec.when([fixtures.connectionPublished("A", { url: "x" }, { treeId: "R" })]);
    assert.equal(serial(), start + 1);
    spec = spec.when([fixtures.connectionPublished("A", { url: "x" }, { treeId: "R" })]);
    assert.equal(serial(), start + 1);
    spec = spec.when([fixtures.connectionPublished("A", { url: "y" }, { treeId: "R" })]);
    assert.equal(serial(), start + 2);
    assert.deepEqual(state.instances.A!.connection, { url: "y" });
  });

  it("ignores the whole story's events of other aggregates without failing", () => {
    const state = instances.given(fixtures.story(1).flat()).state;
    assert.equal(state.instances.KV0!.destroyed, true);
    assert.equal(state.instances.KV0!.placement, null);
    assert.deepEqual(state.instances.SH0!.host, { instanceId: "KV0", treeId: "WEB0" });
    assert.equal(state.instances.WEB0!.status?.status, "started");
    assert.deepEqual(state.instances.WEB0!.parameters, { title: "bye" });
  });
});
