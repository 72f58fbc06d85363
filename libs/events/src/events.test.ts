import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { EVENT_TYPES, EventValidationError, decodeCommit, encodeCommit, follow, instanceIdFor, matchesFilter, normalizeParameters, streamKeyOf, validateAppend } from "./index.js";

const base = {
  schemaVersion: 1,
  id: "01JD0000000000000000000001",
  time: "2026-11-23T10:00:00.000Z",
  correlationId: "01JD0000000000000000000001",
  causationId: "01JD0000000000000000000001",
  actor: { kind: "user", userId: "alice" },
};
const requested = {
  ...base,
  type: "InstanceRequested",
  aggregate: { kind: "instance", treeId: "T1", instanceId: "I1" },
  data: {
    reference: "my db",
    releaseUrl: "file:///sr/kvdb",
    softwareType: "default",
    parameters: {},
    sla: {},
    shared: false,
    requestedState: "started",
    requester: { kind: "user", userId: "alice" },
  },
};

describe("event schemas", () => {
  it("lists every domain event type named in the design", () => {
    for (const type of [
      "ComputerRegistered", "SoftwareSupplied", "SoftwareUnsupplied", "SoftwareReleaseStatusReported",
      "InstanceRequested", "InstanceParametersChanged", "InstanceRequestedStateChanged", "PartitionAllocated",
      "PartitionReleased", "ConnectionParametersPublished", "InstanceStatusReported", "InstanceBanged", "InstanceDestroyed",
    ]) assert.ok(EVENT_TYPES.includes(type as never), type);
  });

  it("accepts a valid event and names the stream it belongs to", () => {
    const { streamKey, events } = validateAppend([requested]);
    assert.equal(streamKey, "tree.T1.instance.I1");
    assert.deepEqual(events[0], requested);
  });

  it("names the field path of every mismatch", () => {
    const bad = { ...requested, id: "x", aggregate: { kind: "instance", treeId: "T1", instanceId: "a.b" }, data: { ...requested.data, requestedState: "paused" } };
    assert.throws(() => validateAppend([bad]), (error: unknown) => {
      assert.ok(error instanceof EventValidationError);
      const paths = error.issues.map((i) => i.path);
      for (const p of ["events.0.id", "events.0.aggregate.instanceId", "events.0.data.requestedState"]) assert.ok(paths.includes(p), `${p} in ${paths.join(",")}`);
      return true;
    });
  });

  it("refuses an event on an aggregate of the wrong kind", () => {
    const wrong = { ...requested, aggregate: { kind: "computer", computerId: "C1" } };
    assert.throws(() => validateAppend([wrong]), (e: unknown) => e instanceof EventValidationError && e.issues[0]?.path === "events.0.aggregate.kind");
  });

  it("refuses ids that could forge a NATS subject or a path", () => {
    for (const id of ["a.b", "*", ">", "a b", "../x", "", "x".repeat(65)]) {
      const event = { ...requested, aggregate: { kind: "instance", treeId: "T1", instanceId: id } };
      assert.throws(() => validateAppend([event]), EventValidationError, id);
    }
  });

  it("round-trips a commit body and reports a malformed one as issues without throwing", () => {
    const decoded = decodeCommit(encodeCommit([requested as never]));
    assert.ok(decoded.ok);
    assert.deepEqual(decoded.events, [requested]);
    const notJson = decodeCommit(Buffer.from("{nope"));
    assert.equal(notJson.ok, false);
    const wrongStream = decodeCommit(encodeCommit([requested as never]), "tree.T1.instance.OTHER");
    assert.equal(wrongStream.ok, false);
  });
});

describe("ids and subjects", () => {
  it("derives the same instance id for the same key and different ids otherwise", () => {
    const a = instanceIdFor({ kind: "user", userId: "alice" }, "my db");
    assert.equal(a, instanceIdFor({ kind: "user", userId: "alice" }, "my db"));
    assert.notEqual(a, instanceIdFor({ kind: "user", userId: "bob" }, "my db"));
    assert.notEqual(a, instanceIdFor({ kind: "tree", treeId: "alice" }, "my db"));
    assert.match(a, /^[0-9A-Z]{26}$/);
    assert.match(instanceIdFor({ kind: "user", userId: "u" }, "../../etc/passwd\u0000; rm -rf /"), /^[0-9A-Z]{26}$/);
  });

  it("lets a filter follow one computer, one tree, one instance or everything", () => {
    const partition = streamKeyOf({ kind: "partition", computerId: "C1", partitionId: "slappart3" });
    const computer = streamKeyOf({ kind: "computer", computerId: "C1" });
    const instance = streamKeyOf({ kind: "instance", treeId: "T1", instanceId: "I2" });
    assert.ok(matchesFilter(partition, follow.computer("C1")));
    assert.ok(matchesFilter(computer, follow.computer("C1")));
    assert.ok(!matchesFilter(computer, follow.computer("C2")));
    assert.ok(matchesFilter(instance, follow.tree("T1")));
    assert.ok(!matchesFilter(instance, follow.tree("T2")));
    assert.ok(matchesFilter(instance, follow.instance("I2")));
    assert.ok(!matchesFilter(instance, follow.instance("I3")));
    for (const key of [partition, computer, instance]) assert.ok(matchesFilter(key, follow.everything()));
  });

  it("treats an empty parameter value as absent", () => {
    assert.deepEqual(normalizeParameters({ b: "2", a: "", c: "x" }), { b: "2", c: "x" });
  });
});
