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
import { deciderSpecification, fixtures, foldEvents } from "@slap/testkit";
import { RequestInstance } from "@slap/api";
import { answerFor } from "./answer.js";
import {
  decideBang,
  decideDestroyed,
  decidePublish,
  decideRequest,
  decideStateChange,
  decideStatus,
  decideSoftwareStatus,
  decideSupply,
  SOFTWARE_LOG_KEEP,
  type Decision,
  type DecisionContext,
} from "./decide.js";

const alice: Actor = { kind: "user", userId: "alice" };
const KVDB = "file:///software/kvdb";
const WEBAPP = "file:///software/webapp";

/** A decider call over a context: the commands of these tests are the master's decide functions, applied. */
type Command = (ctx: DecisionContext) => Decision;

/** The decision context given events build: the read models they fold into, a fixed clock, counted ids. */
function contextOf(events: readonly DomainEvent[], actor: Actor): DecisionContext {
  let n = 0;
  return {
    actor,
    computers: foldEvents(computersProjection, events),
    instances: foldEvents(instancesProjection, events),
    now: "2026-11-23T12:00:00.000Z",
    newId: () => `01JD00000000000000000000${String(n++).padStart(2, "0")}`,
  };
}

/** given(events) / when(command) / then(events), the commands decided by `actor`. */
const decider = (actor: Actor = alice) =>
  deciderSpecification({
    fold: (events) => contextOf(events, actor),
    decide: (command: Command, ctx: DecisionContext) => command(ctx),
    produced: (decision): DomainEvent[] => decision.appends.flatMap((a) => a.events),
  });
const given = (events: DomainEvent[], actor: Actor = alice) => decider(actor).given(events);

/** A `then` that checks the types of the events decided, in order. */
const types =
  (expected: EventType[]) =>
  (events: DomainEvent[]): void =>
    assert.deepEqual(
      events.map((e) => e.type),
      expected,
    );

const request = (over: Partial<RequestInstance> & { reference: string }) => RequestInstance.parse({ releaseUrl: WEBAPP, ...over });

describe("request decider", () => {
  it("requests a root instance keyed by user and reference, with empty values dropped", () => {
    given([])
      .when((ctx) => decideRequest(request({ reference: "my app", parameters: { title: "hi", empty: "" }, sla: { computer_guid: "" } }), ctx))
      .then(([event], decision) => {
        assert.equal(event?.type, "InstanceRequested");
        const id = instanceIdFor({ kind: "user", userId: "alice" }, "my app");
        assert.deepEqual(event?.aggregate, { kind: "instance", treeId: id, instanceId: id });
        assert.ok(event?.type === "InstanceRequested");
        assert.deepEqual(event.data.parameters, { title: "hi" });
        assert.deepEqual(event.data.sla, {});
        assert.equal(decision.appends[0]?.expectedVersion, 0);
      });
  });

  it("appends nothing for the same request again, an empty value being the same as an absent one", () => {
    const history = given([]).when((ctx) => decideRequest(request({ reference: "app", parameters: { a: "1" } }), ctx)).then(types(["InstanceRequested"]));
    given(history)
      .when((ctx) => decideRequest(request({ reference: "app", parameters: { a: "1", b: "" } }), ctx))
      .then([]);
  });

  it("appends one change event when parameters change, with the version it was decided against", () => {
    const history = given([]).when((ctx) => decideRequest(request({ reference: "app", parameters: { a: "1" } }), ctx)).then(types(["InstanceRequested"]));
    given(history)
      .when((ctx) => decideRequest(request({ reference: "app", parameters: { a: "2" } }), ctx))
      .then((events, decision) => {
        types(["InstanceParametersChanged"])(events);
        assert.equal(decision.appends[0]?.expectedVersion, 1);
      });
  });

  it("upgrades in place: another release under the same reference is one change event naming it, on the same instance", () => {
    const history = given([]).when((ctx) => decideRequest(request({ reference: "app" }), ctx)).then(types(["InstanceRequested"]));
    const upgraded = given(history)
      .when((ctx) => decideRequest(request({ reference: "app", releaseUrl: KVDB }), ctx))
      .then(([event, ...more], decision) => {
        assert.equal(more.length, 0);
        assert.ok(event?.type === "InstanceParametersChanged");
        assert.equal(event.data.releaseUrl, KVDB);
        assert.equal(decision.instanceId, history[0]?.aggregate.kind === "instance" ? history[0].aggregate.instanceId : "");
      });
    given([...history, ...upgraded])
      .when((ctx) => decideRequest(request({ reference: "app", releaseUrl: KVDB }), ctx))
      .then([]);
  });

  it("refuses another release for a shared instance: its host serves one release", () => {
    const history = given([]).when((ctx) => decideRequest(request({ reference: "tenant", shared: true }), ctx)).then(types(["InstanceRequested"]));
    given(history)
      .when((ctx) => decideRequest(request({ reference: "tenant", shared: true, releaseUrl: KVDB }), ctx))
      .thenRejects("Conflict");
  });

  it("makes a partition the requester: the new instance joins its tree", () => {
    const root = fixtures.instanceRequested("ROOT", { releaseUrl: WEBAPP });
    const history = [fixtures.computerRegistered("C1"), root, fixtures.partitionAllocated("C1", "slappart0", "ROOT")];
    given(history, { kind: "partition", computerId: "C1", partitionId: "slappart0" })
      .when((ctx) => decideRequest(request({ reference: "kvdb", releaseUrl: KVDB }), ctx))
      .then(([event]) => {
        assert.ok(event?.type === "InstanceRequested");
        assert.deepEqual(event.data.requester, { kind: "instance", instanceId: "ROOT", treeId: "ROOT" });
        assert.deepEqual(event.aggregate, { kind: "instance", treeId: "ROOT", instanceId: instanceIdFor({ kind: "tree", treeId: "ROOT" }, "kvdb") });
      });
  });

  it("refuses a request from a partition that holds nothing", () => {
    given([fixtures.computerRegistered("C1")], { kind: "partition", computerId: "C1", partitionId: "slappart1" })
      .when((ctx) => decideRequest(request({ reference: "kvdb" }), ctx))
      .thenRejects("Forbidden");
  });

  it("stops a root's whole tree at once, and the same request again decides nothing", () => {
    const rootId = instanceIdFor({ kind: "user", userId: "alice" }, "app");
    const child = (id: string) =>
      fixtures.instanceRequested(id, { treeId: rootId, reference: id, requester: { kind: "instance", instanceId: rootId, treeId: rootId } });
    const history = [...given([]).when((ctx) => decideRequest(request({ reference: "app" }), ctx)).then(types(["InstanceRequested"])), child("A"), child("B")];
    const stop = (ctx: DecisionContext) => decideRequest(request({ reference: "app", state: "stopped" }), ctx);
    const stopped = given(history)
      .when(stop)
      .then((events) =>
        assert.deepEqual(
          events.map((e) => [e.type, e.aggregate.kind === "instance" ? e.aggregate.instanceId : ""]),
          [
            ["InstanceRequestedStateChanged", rootId],
            ["InstanceRequestedStateChanged", "A"],
            ["InstanceRequestedStateChanged", "B"],
          ],
        ),
      );
    // The same request again decides nothing, even for a child its parent restarted meanwhile.
    const restartedA = { ...fixtures.instanceBanged("A", rootId), type: "InstanceRequestedStateChanged" as const, data: { requestedState: "started" as const } };
    given([...history, ...stopped, restartedA])
      .when(stop)
      .then([]);
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
    given(placed, rootPartition)
      .when((ctx) => decideDestroyed(rootId, ctx))
      .thenRejects("Conflict");
    const childGone = [...placed, ...given(placed, childPartition).when((ctx) => decideDestroyed(childId, ctx)).then(types(["InstanceDestroyed", "PartitionReleased"]))];
    given(childGone, rootPartition)
      .when((ctx) => decideDestroyed(rootId, ctx))
      .then(types(["InstanceDestroyed", "PartitionReleased"]));
  });

  it("reports destroyed against the instance's version, so a racing re-request conflicts", () => {
    given(placed, childPartition)
      .when((ctx) => decideDestroyed(childId, ctx))
      .then((_events, decision) => assert.equal(decision.appends[0]?.expectedVersion, 7));
  });

  it("refuses a new started instance in a tree that is being destroyed", () => {
    given(placed, rootPartition)
      .when((ctx) => decideRequest(request({ reference: "late", releaseUrl: KVDB }), ctx))
      .thenRejects("Conflict");
  });

  it("lets a partition change its own instance and those it requested, not its tree's root", () => {
    const history = [
      fixtures.computerRegistered("C1"),
      root,
      child,
      fixtures.partitionAllocated("C1", "slappart0", rootId),
      fixtures.partitionAllocated("C1", "slappart1", childId, rootId),
    ];
    given(history, childPartition)
      .when((ctx) => decideStateChange(rootId, "destroyed", ctx))
      .thenRejects("Forbidden");
    given(history, rootPartition)
      .when((ctx) => decideStateChange(childId, "stopped", ctx))
      .then(types(["InstanceRequestedStateChanged"]));
    given(history, childPartition)
      .when((ctx) => decideBang(childId, { message: "mine" }, ctx))
      .then(types(["InstanceBanged"]));
  });

  it("records the real actor when an admin changes the state of someone's instance", () => {
    const history = [fixtures.computerRegistered("C1"), root];
    given(history, { kind: "user", userId: "admin" })
      .when((ctx) => decideStateChange(rootId, "stopped", ctx))
      .then((events) => {
        assert.deepEqual(
          events.map((e) => e.actor),
          [{ kind: "user", userId: "admin" }],
        );
        assert.deepEqual(
          events.map((e) => e.aggregate),
          [{ kind: "instance", treeId: rootId, instanceId: rootId }],
        );
      });
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
    given(history, { kind: "user", userId: "anonymous" })
      .when((ctx) => decideDestroyed("SH", ctx))
      .thenRejects("Forbidden");
    given(history, { kind: "partition", computerId: "C1", partitionId: "slappart0" })
      .when((ctx) => decideDestroyed("SH", ctx))
      .then(types(["InstanceDestroyed"]));
  });
});

describe("publish and status deciders", () => {
  const history = [
    fixtures.computerRegistered("C1"),
    fixtures.instanceRequested("I1"),
    fixtures.partitionAllocated("C1", "slappart0", "I1"),
  ];

  it("accepts connection parameters only from the partition that holds the instance", () => {
    given(history, { kind: "partition", computerId: "C1", partitionId: "slappart0" })
      .when((ctx) => decidePublish("I1", { parameters: { url: "http://x" } }, ctx))
      .then(types(["ConnectionParametersPublished"]));
    given(history, { kind: "partition", computerId: "C1", partitionId: "slappart1" })
      .when((ctx) => decidePublish("I1", { parameters: { url: "http://evil" } }, ctx))
      .thenRejects("Forbidden");
    given(history)
      .when((ctx) => decideStatus("I1", { status: "started" }, ctx))
      .thenRejects("Forbidden");
  });

  it("publishes nothing when the parameters did not change", () => {
    const holder: Actor = { kind: "partition", computerId: "C1", partitionId: "slappart0" };
    const published = [...history, fixtures.connectionPublished("I1", { url: "http://x" })];
    given(published, holder)
      .when((ctx) => decidePublish("I1", { parameters: { url: "http://x" } }, ctx))
      .then([]);
  });

  it("destroys then frees the partition, and does not destroy twice on a retry", () => {
    const holder: Actor = { kind: "partition", computerId: "C1", partitionId: "slappart0" };
    const stopping = [...history, { ...fixtures.instanceBanged("I1"), type: "InstanceRequestedStateChanged" as const, data: { requestedState: "destroyed" as const } }];
    const destroy = (ctx: DecisionContext) => decideDestroyed("I1", ctx);
    const [destroyed] = given(stopping, holder).when(destroy).then(types(["InstanceDestroyed", "PartitionReleased"]));
    given([...stopping, destroyed!], holder)
      .when(destroy)
      .then(types(["PartitionReleased"]));
  });
});

describe("supply decider", () => {
  const admin: Actor = { kind: "user", userId: "admin" };
  it("supplies once and unsupplies once", () => {
    const history = [fixtures.computerRegistered("C1")];
    const supplied = [
      ...history,
      ...given(history, admin)
        .when((ctx) => decideSupply("C1", { releaseUrl: KVDB, state: "available" }, ctx))
        .then(types(["SoftwareSupplied"])),
    ];
    given(supplied, admin)
      .when((ctx) => decideSupply("C1", { releaseUrl: KVDB, state: "available" }, ctx))
      .then([]);
    given(supplied, admin)
      .when((ctx) => decideSupply("C1", { releaseUrl: KVDB, state: "destroyed" }, ctx))
      .then(types(["SoftwareUnsupplied"]));
  });
  it("is the operator's order: a user, a node or a partition is refused", () => {
    const history = [fixtures.computerRegistered("C1")];
    for (const actor of [alice, { kind: "node", computerId: "C1" }, { kind: "partition", computerId: "C1", partitionId: "p0" }] satisfies Actor[]) {
      given(history, actor)
        .when((ctx) => decideSupply("C1", { releaseUrl: KVDB, state: "available" }, ctx))
        .thenRejects((rejection) => assert.equal(rejection.reason, "Forbidden", JSON.stringify(actor)));
    }
  });
});

describe("software status decider", () => {
  const node: Actor = { kind: "node", computerId: "C1" };
  const supplied = [fixtures.computerRegistered("C1"), fixtures.softwareSupplied("C1", KVDB)];
  it("takes a node's report of a release supplied to it, its log cut to the last 16 KiB", () => {
    given(supplied, node)
      .when((ctx) => decideSoftwareStatus("C1", { releaseUrl: KVDB, status: "error", log: `${"a".repeat(20_000)}the end` }, ctx))
      .then((events) => {
        assert.deepEqual(events.map((e) => e.type), ["SoftwareReleaseStatusReported"]);
        const log = (events[0]!.data as { log: string }).log;
        assert.equal(log.length, SOFTWARE_LOG_KEEP);
        assert.ok(log.endsWith("the end"));
      });
  });
  it("refuses a report of a release nobody supplied to the computer (409): a node speaks of what it was given", () => {
    given(supplied, node)
      .when((ctx) => decideSoftwareStatus("C1", { releaseUrl: "file:///software/never", status: "available" }, ctx))
      .thenRejects((rejection) => {
        assert.equal(rejection.reason, "Conflict");
        assert.match(rejection.detail, /was never supplied to C1/);
      });
  });
});

describe("request answer", () => {
  const explain = () => "no computer has file:///software/kvdb available";
  it("is pending with the allocator's reason, then with where it runs, then ready with the connection parameters", () => {
    const requested = [fixtures.computerRegistered("C1"), fixtures.softwareSupplied("C1", KVDB), fixtures.softwareStatus("C1", KVDB, "available"), fixtures.instanceRequested("I1")];
    const ctx = given(requested).state;
    const i1 = () => ctx.instances.instances.I1!;
    assert.deepEqual(answerFor(i1(), ctx, explain), { status: "pending", instanceId: "I1", reference: "ref-I1", reason: explain(), retryAfterMs: 1000 });
    const placed = given([...requested, fixtures.partitionAllocated("C1", "slappart0", "I1")]).state;
    const a = answerFor(placed.instances.instances.I1!, placed, explain);
    assert.equal(a.status === "pending" && a.reason, "allocated to C1/slappart0, waiting for connection parameters");
    const ready = given([...requested, fixtures.partitionAllocated("C1", "slappart0", "I1"), fixtures.connectionPublished("I1", { url: "http://x" })]).state;
    assert.deepEqual(answerFor(ready.instances.instances.I1!, ready, explain), { status: "ready", instanceId: "I1", reference: "ref-I1", connection: { url: "http://x" } });
  });

  it("is pending while an instance upgraded in place waits for its new release on its computer", () => {
    const placed = [
      fixtures.computerRegistered("C1"),
      fixtures.softwareSupplied("C1", KVDB),
      fixtures.softwareStatus("C1", KVDB, "available"),
      fixtures.instanceRequested("I1"),
      fixtures.partitionAllocated("C1", "slappart0", "I1"),
      fixtures.connectionPublished("I1", { url: "http://x" }),
    ];
    const upgrade: DomainEvent = { ...fixtures.connectionPublished("I1", {}), type: "InstanceParametersChanged", data: { parameters: {}, softwareType: "default", sla: {}, releaseUrl: WEBAPP } };
    const waiting = given([...placed, upgrade]).state;
    const a = answerFor(waiting.instances.instances.I1!, waiting, explain);
    assert.equal(a.status === "pending" && a.reason, `waiting for release ${WEBAPP} on C1/slappart0`);
    assert.equal(waiting.instances.instances.I1!.placement?.partitionId, "slappart0");
    const available = given([...placed, upgrade, fixtures.softwareSupplied("C1", WEBAPP), fixtures.softwareStatus("C1", WEBAPP, "available")]).state;
    assert.equal(answerFor(available.instances.instances.I1!, available, explain).status, "ready");
  });

  it("is destroyed for a shared instance requested destroyed that no host serves", () => {
    const shared = fixtures.instanceRequested("SH", { shared: true });
    const destroy: DomainEvent = { ...fixtures.connectionPublished("SH", {}), type: "InstanceRequestedStateChanged", data: { requestedState: "destroyed" } };
    const state = given([shared, destroy]).state;
    assert.equal(answerFor(state.instances.instances.SH!, state, explain).status, "destroyed");
  });
});
