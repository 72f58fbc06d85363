import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { computersProjection, type DomainEvent } from "@slap/events";
import * as fixtures from "./fixtures.js";
import { deciderSpecification, foldEvents, projectionSpecification } from "./specification.js";

type Decision = { ok: true; events: DomainEvent[] } | { ok: false; reason: "Unknown"; detail: string };

/** A toy decider: frees a partition of a computer the events registered. */
const release = deciderSpecification({
  fold: (events) => foldEvents(computersProjection, events),
  decide: (computerId: string, state): Decision =>
    state.computers[computerId] === undefined
      ? { ok: false, reason: "Unknown", detail: `no computer ${computerId}` }
      : { ok: true, events: [fixtures.partitionReleased(computerId, "slappart0", "A")] },
  produced: (decision) => decision.events.map((e) => e.type),
});

describe("decider specification", () => {
  it("passes when the decision produces what then expects, and fails when it does not", () => {
    const given = release.given([fixtures.computerRegistered("C1")]);
    assert.deepEqual(given.when("C1").then(["PartitionReleased"]), ["PartitionReleased"]);
    assert.throws(() => given.when("C1").then([]), assert.AssertionError);
    assert.throws(() => given.when("C1").thenRejects("Unknown"), /expected a rejection/);
  });

  it("checks a rejection's reason and detail, and fails on an accepted decision or another detail", () => {
    const given = release.given([]);
    given.when("C9").thenRejects("Unknown", "no computer C9");
    given.when("C9").thenRejects("Unknown", /C9/);
    assert.throws(() => given.when("C9").thenRejects("Unknown", "no computer C8"), assert.AssertionError);
    assert.throws(() => given.when("C9").thenRejects("Forbidden"), assert.AssertionError);
    assert.throws(() => given.when("C9").then([]), /expected an accepted decision/);
  });
});

describe("projection specification", () => {
  it("folds the given events then the when events at the positions after them", () => {
    const given = projectionSpecification(computersProjection).given([fixtures.computerRegistered("C1", 1)]);
    given
      .when([fixtures.partitionAllocated("C1", "slappart0", "A")])
      .then((state) => assert.equal(state.computers.C1?.partitions.slappart0?.version, 2));
    assert.throws(() => given.then({ computers: {}, bindings: {} }), assert.AssertionError);
  });
});
