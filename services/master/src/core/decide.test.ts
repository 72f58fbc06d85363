import assert from "node:assert/strict";
import { describe, it } from "node:test";
import {
  computersProjection,
  instanceIdFor,
  instancesProjection,
  type Actor,
  type DomainEvent,
  type EventType,
} from "@slap/events";
import { fixtures } from "@slap/testkit";
import { RequestInstance } from "@slap/api";
import { answerFor } from "./answer.js";
import {
  decideBang,
  decideDestroyed,
  decidePublish,
  decideRequest,
  decideStateChange,
  decideStatus,
  decideSupply,
  type Decision,
  type DecisionContext,
} from "./decide.js";

const alice: Actor = { kind: "user", userId: "alice" };
const KVDB = "file:///software/kvdb";
const WEBAPP = "file:///software/webapp";

/** given(events) → a decision context over the read models they build. */
function given(events: DomainEvent[], actor: Actor = alice): DecisionContext {
  let computers = computersProjection.initial();
  let instances = instancesProjection.initial();
  events.forEach((event, i) => {
    computers = computersProjection.evolve(computers, event, i + 1);
    instances = instancesProjection.evolve(instances, event, i + 1);
  });
  let n = 0;
  return { actor, computers, instances, now: "2026-11-23T12:00:00.000Z", newId: () => `01JD00000000000000000000${String(n++).padStart(2, "0")}` };
}

function events(decision: Decision): DomainEvent[] {
  assert.ok(decision.ok, JSON.stringify(decision));
  return decision.appends.flatMap((a) => a.events);
}
const types = (decision: Decision): EventType[] => events(decision).map((e) => e.type);

const request = (over: Partial<RequestInstance> & { reference: string }) => RequestInstance.parse({ releaseUrl: WEBAPP, ...over });

/** The event log after `decide` with `ctx`: what `given` needs to go on. */
function then(ctx: DecisionContext, decision: Decision, history: DomainEvent[]): DomainEvent[] {
  return [...history, ...events(decision)];
}

describe("request decider", () => {
  it("requests a root instance keyed by user and reference, with empty values dropped", () => {
    const decision = decideRequest(request({ reference: "my app", parameters: { title: "hi", empty: "" }, sla: { computer_guid: "" } }), given([]));
    const [event] = events(decision);
    assert.equal(event?.type, "InstanceRequested");
    const id = instanceIdFor({ kind: "user", userId: "alice" }, "my app");
    assert.deepEqual(event?.aggregate, { kind: "instance", treeId: id, instanceId: id });
    assert.ok(event?.type === "InstanceRequested");
    assert.deepEqual(event.data.parameters, { title: "hi" });
    assert.deepEqual(event.data.sla, {});
    assert.equal(decision.ok && decision.appends[0]?.expectedVersion, 0);
  });

  it("appends nothing for the same request again, an empty value being the same as an absent one", () => {
    const first = given([]);
    const history = then(first, decideRequest(request({ reference: "app", parameters: { a: "1" } }), first), []);
    assert.deepEqual(types(decideRequest(request({ reference: "app", parameters: { a: "1", b: "" } }), given(history))), []);
  });

  it("appends one change event when parameters change, with the version it was decided against", () => {
    const first = given([]);
    const history = then(first, decideRequest(request({ reference: "app", parameters: { a: "1" } }), first), []);
    const decision = decideRequest(request({ reference: "app", parameters: { a: "2" } }), given(history));
    assert.deepEqual(types(decision), ["InstanceParametersChanged"]);
    assert.equal(decision.ok && decision.appends[0]?.expectedVersion, 1);
  });

  it("refuses another release under the same reference as a conflict", () => {
    const first = given([]);
    const history = then(first, decideRequest(request({ reference: "app" }), first), []);
    const decision = decideRequest(request({ reference: "app", releaseUrl: KVDB }), given(history));
    assert.equal(decision.ok, false);
    assert.equal(!decision.ok && decision.reason, "Conflict");
  });

  it("makes a partition the requester: the new instance joins its tree", () => {
    const root = fixtures.instanceRequested("ROOT", { releaseUrl: WEBAPP });
    const history = [fixtures.computerRegistered("C1"), root, fixtures.partitionAllocated("C1", "slappart0", "ROOT")];
    const ctx = given(history, { kind: "partition", computerId: "C1", partitionId: "slappart0" });
    const [event] = events(decideRequest(request({ reference: "kvdb", releaseUrl: KVDB }), ctx));
    assert.ok(event?.type === "InstanceRequested");
    assert.deepEqual(event.data.requester, { kind: "instance", instanceId: "ROOT", treeId: "ROOT" });
    assert.deepEqual(event.aggregate, { kind: "instance", treeId: "ROOT", instanceId: instanceIdFor({ kind: "tree", treeId: "ROOT" }, "kvdb") });
  });

  it("refuses a request from a partition that holds nothing", () => {
    const ctx = given([fixtures.computerRegistered("C1")], { kind: "partition", computerId: "C1", partitionId: "slappart1" });
    const decision = decideRequest(request({ reference: "kvdb" }), ctx);
    assert.equal(!decision.ok && decision.reason, "Forbidden");
  });

  it("stops a root's whole tree at once, and the same request again decides nothing", () => {
    const rootId = instanceIdFor({ kind: "user", userId: "alice" }, "app");
    const child = (id: string) =>
      fixtures.instanceRequested(id, { treeId: rootId, reference: id, requester: { kind: "instance", instanceId: rootId, treeId: rootId } });
    const first = given([]);
    const history = [...then(first, decideRequest(request({ reference: "app" }), first), []), child("A"), child("B")];
    const stop = decideRequest(request({ reference: "app", state: "stopped" }), given(history));
    assert.deepEqual(
      events(stop).map((e) => [e.type, e.aggregate.kind === "instance" ? e.aggregate.instanceId : ""]),
      [
        ["InstanceRequestedStateChanged", rootId],
        ["InstanceRequestedStateChanged", "A"],
        ["InstanceRequestedStateChanged", "B"],
      ],
    );
    // The same request again decides nothing, even for a child its parent restarted meanwhile.
    const stopped = [...history, ...events(stop)];
    const restartedA = { ...fixtures.instanceBanged("A", rootId), type: "InstanceRequestedStateChanged" as const, data: { requestedState: "started" as const } };
    assert.deepEqual(types(decideRequest(request({ reference: "app", state: "stopped" }), given([...stopped, restartedA]))), []);
  });
});

describe("tree lifecycle", () => {
  const rootId = instanceIdFor({ kind: "user", userId: "alice" }, "app");
  const root = fixtures.instanceRequested(rootId, { releaseUrl: WEBAPP, reference: "app" });
  const childId = instanceIdFor({ kind: "tree", treeId: rootId }, "db");
  const child = fixtures.instanceRequested(childId, { treeId: rootId, reference: "db", requester: { kind: "instance", instanceId: rootId, treeId: rootId } });
  const destroyedState = (id: string) => ({
    ...fixtures.instanceBanged(id, rootId),
    type: "InstanceRequestedStateChanged" as const,
    data: { requestedState: "destroyed" as const },
  });
  const placed = [
    fixtures.computerRegistered("C1"),
    root,
    child,
    fixtures.partitionAllocated("C1", "slappart0", rootId),
    fixtures.partitionAllocated("C1", "slappart1", childId, rootId),
    destroyedState(rootId),
    destroyedState(childId),
  ];
  const rootPartition: Actor = { kind: "partition", computerId: "C1", partitionId: "slappart0" };
  const childPartition: Actor = { kind: "partition", computerId: "C1", partitionId: "slappart1" };

  it("frees a root's partition only once the rest of its tree no longer holds one", () => {
    const early = decideDestroyed(rootId, given(placed, rootPartition));
    assert.equal(!early.ok && early.reason, "Conflict");
    const childGone = [...placed, ...events(decideDestroyed(childId, given(placed, childPartition)))];
    assert.deepEqual(types(decideDestroyed(rootId, given(childGone, rootPartition))), ["InstanceDestroyed", "PartitionReleased"]);
  });

  it("reports destroyed against the instance's version, so a racing re-request conflicts", () => {
    const decision = decideDestroyed(childId, given(placed, childPartition));
    assert.ok(decision.ok);
    assert.equal(decision.appends[0]?.expectedVersion, 7);
  });

  it("refuses a new started instance in a tree that is being destroyed", () => {
    const refused = decideRequest(request({ reference: "late", releaseUrl: KVDB }), given(placed, rootPartition));
    assert.equal(!refused.ok && refused.reason, "Conflict");
  });

  it("lets a partition change its own instance and those it requested, not its tree's root", () => {
    const history = [
      fixtures.computerRegistered("C1"),
      root,
      child,
      fixtures.partitionAllocated("C1", "slappart0", rootId),
      fixtures.partitionAllocated("C1", "slappart1", childId, rootId),
    ];
    const byChild = decideStateChange(rootId, "destroyed", given(history, childPartition));
    assert.equal(!byChild.ok && byChild.reason, "Forbidden");
    assert.deepEqual(types(decideStateChange(childId, "stopped", given(history, rootPartition))), ["InstanceRequestedStateChanged"]);
    assert.deepEqual(types(decideBang(childId, { message: "mine" }, given(history, childPartition))), ["InstanceBanged"]);
  });

  it("records the real actor when an admin changes the state of someone's instance", () => {
    const history = [fixtures.computerRegistered("C1"), root];
    const decision = decideStateChange(rootId, "stopped", given(history, { kind: "user", userId: "admin" }));
    assert.deepEqual(events(decision).map((e) => e.actor), [{ kind: "user", userId: "admin" }]);
    assert.deepEqual(events(decision).map((e) => e.aggregate), [{ kind: "instance", treeId: rootId, instanceId: rootId }]);
  });

  it("accepts a shared instance's destruction only from its host's partition", () => {
    const shared = fixtures.instanceRequested("SH", { shared: true, releaseUrl: KVDB });
    const history = [
      fixtures.computerRegistered("C1"),
      fixtures.instanceRequested("HOST", { releaseUrl: KVDB }),
      fixtures.partitionAllocated("C1", "slappart0", "HOST"),
      shared,
      { ...fixtures.instanceBanged("SH"), type: "SharedInstanceAttached" as const, data: { hostInstanceId: "HOST", hostTreeId: "HOST" } },
      { ...fixtures.instanceBanged("SH"), type: "InstanceRequestedStateChanged" as const, data: { requestedState: "destroyed" as const } },
    ];
    const stranger = decideDestroyed("SH", given(history, { kind: "user", userId: "anonymous" }));
    assert.equal(!stranger.ok && stranger.reason, "Forbidden");
    assert.deepEqual(types(decideDestroyed("SH", given(history, { kind: "partition", computerId: "C1", partitionId: "slappart0" }))), ["InstanceDestroyed"]);
  });
});

describe("publish and status deciders", () => {
  const history = [
    fixtures.computerRegistered("C1"),
    fixtures.instanceRequested("I1"),
    fixtures.partitionAllocated("C1", "slappart0", "I1"),
  ];

  it("accepts connection parameters only from the partition that holds the instance", () => {
    const holder = given(history, { kind: "partition", computerId: "C1", partitionId: "slappart0" });
    assert.deepEqual(types(decidePublish("I1", { parameters: { url: "http://x" } }, holder)), ["ConnectionParametersPublished"]);
    const other = given(history, { kind: "partition", computerId: "C1", partitionId: "slappart1" });
    const refused = decidePublish("I1", { parameters: { url: "http://evil" } }, other);
    assert.equal(!refused.ok && refused.reason, "Forbidden");
    const user = decideStatus("I1", { status: "started" }, given(history));
    assert.equal(!user.ok && user.reason, "Forbidden");
  });

  it("publishes nothing when the parameters did not change", () => {
    const holder: Actor = { kind: "partition", computerId: "C1", partitionId: "slappart0" };
    const published = [...history, fixtures.connectionPublished("I1", { url: "http://x" })];
    assert.deepEqual(types(decidePublish("I1", { parameters: { url: "http://x" } }, given(published, holder))), []);
  });

  it("destroys then frees the partition, and does not destroy twice on a retry", () => {
    const holder: Actor = { kind: "partition", computerId: "C1", partitionId: "slappart0" };
    const stopping = [...history, { ...fixtures.instanceBanged("I1"), type: "InstanceRequestedStateChanged" as const, data: { requestedState: "destroyed" as const } }];
    const decision = decideDestroyed("I1", given(stopping, holder));
    assert.deepEqual(types(decision), ["InstanceDestroyed", "PartitionReleased"]);
    const retry = decideDestroyed("I1", given([...stopping, events(decision)[0]!], holder));
    assert.deepEqual(types(retry), ["PartitionReleased"]);
  });
});

describe("supply decider", () => {
  const admin: Actor = { kind: "user", userId: "admin" };
  it("supplies once and unsupplies once", () => {
    const history = [fixtures.computerRegistered("C1")];
    const supply = decideSupply("C1", { releaseUrl: KVDB, state: "available" }, given(history, admin));
    assert.deepEqual(types(supply), ["SoftwareSupplied"]);
    const supplied = [...history, ...events(supply)];
    assert.deepEqual(types(decideSupply("C1", { releaseUrl: KVDB, state: "available" }, given(supplied, admin))), []);
    assert.deepEqual(types(decideSupply("C1", { releaseUrl: KVDB, state: "destroyed" }, given(supplied, admin))), ["SoftwareUnsupplied"]);
  });
  it("is the operator's order: a user, a node or a partition is refused", () => {
    const history = [fixtures.computerRegistered("C1")];
    for (const actor of [alice, { kind: "node", computerId: "C1" }, { kind: "partition", computerId: "C1", partitionId: "p0" }] satisfies Actor[]) {
      const decision = decideSupply("C1", { releaseUrl: KVDB, state: "available" }, given(history, actor));
      assert.equal(!decision.ok && decision.reason, "Forbidden", JSON.stringify(actor));
    }
  });
});

describe("request answer", () => {
  const explain = () => "no computer has file:///software/kvdb available";
  it("is pending with the allocator's reason, then with where it runs, then ready with the connection parameters", () => {
    const requested = [fixtures.computerRegistered("C1"), fixtures.instanceRequested("I1")];
    const ctx = given(requested);
    const i1 = () => ctx.instances.instances.I1!;
    assert.deepEqual(answerFor(i1(), ctx, explain), { status: "pending", instanceId: "I1", reference: "ref-I1", reason: explain(), retryAfterMs: 1000 });
    const placed = given([...requested, fixtures.partitionAllocated("C1", "slappart0", "I1")]);
    const a = answerFor(placed.instances.instances.I1!, placed, explain);
    assert.equal(a.status === "pending" && a.reason, "allocated to C1/slappart0, waiting for connection parameters");
    const ready = given([...requested, fixtures.partitionAllocated("C1", "slappart0", "I1"), fixtures.connectionPublished("I1", { url: "http://x" })]);
    assert.deepEqual(answerFor(ready.instances.instances.I1!, ready, explain), { status: "ready", instanceId: "I1", reference: "ref-I1", connection: { url: "http://x" } });
  });
});
