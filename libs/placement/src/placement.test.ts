import assert from "node:assert/strict";
import { describe, it } from "node:test";
import type { DomainEvent, EventOf, InstanceView } from "@slap/events";
import { deciderSpecification, fixtures, foldEvents } from "@slap/testkit";
import { CapacityIndex } from "./capacity.js";
import { explain, explainUnplaced } from "./explain.js";
import { attachHost, HostIndex } from "./hosts.js";
import { naturalCompare, ringOffset, rotationOf } from "./order.js";
import { place, type Placement } from "./placement.js";
import { parseSla } from "./sla.js";
import { cloudProjection, type CloudView } from "@slap/events";
import { isPending } from "./view.js";

const KVDB = "file:///software/kvdb";
const WEB = "file:///software/webapp";

/** The allocator's view of events, each its own commit. */
const viewOf = (events: readonly DomainEvent[]): CloudView => foldEvents(cloudProjection, events);

function computer(computerId: string, options: { partitions?: number; network?: string | null; releases?: string[] } = {}): DomainEvent[] {
  const registered = fixtures.computerRegistered(computerId, options.partitions ?? 2);
  const { networkId: _dropped, ...rest } = registered.data;
  const network = options.network === undefined ? "net-1" : options.network;
  const events: DomainEvent[] = [{ ...registered, data: network === null ? rest : { ...rest, networkId: network } }];
  for (const url of options.releases ?? [KVDB]) {
    events.push(fixtures.softwareSupplied(computerId, url), fixtures.softwareStatus(computerId, url, "available"));
  }
  return events;
}

function request(
  instanceId: string,
  options: { sla?: Record<string, string>; treeId?: string; releaseUrl?: string; shared?: boolean; softwareType?: string } = {},
): EventOf<"InstanceRequested"> {
  const event = fixtures.instanceRequested(instanceId, {
    releaseUrl: options.releaseUrl ?? KVDB,
    ...(options.treeId === undefined ? {} : { treeId: options.treeId }),
    ...(options.shared === undefined ? {} : { shared: options.shared }),
  });
  return { ...event, data: { ...event.data, sla: options.sla ?? {}, softwareType: options.softwareType ?? "default" } };
}

function allocated(computerId: string, partitionId: string, instanceId: string, treeId = instanceId): DomainEvent {
  return fixtures.partitionAllocated(computerId, partitionId, instanceId, treeId);
}

function instance(view: CloudView, instanceId: string): InstanceView {
  const found = view.instances.instances[instanceId];
  assert.ok(found, `instance ${instanceId} in the view`);
  return found;
}

/** Place this instance (with this replica's rotation, or its capacity index). */
interface PlaceCommand {
  instanceId: string;
  rotation?: number;
  capacity?: CapacityIndex;
}

/** given(events) / when(place an instance) / then(the partition it gets) or thenRejects(reason, detail). */
const placement = deciderSpecification({
  fold: viewOf,
  decide: ({ instanceId, ...options }: PlaceCommand, view: CloudView): Placement => place(instance(view, instanceId), view, options),
  produced: (result) => ({ computerId: result.computerId, partitionId: result.partitionId }),
});

/** given(events) / when(attach a shared instance) / then(its host) or thenRejects(reason, detail). */
const attachment = deciderSpecification({
  fold: viewOf,
  decide: ({ instanceId, hosts }: { instanceId: string; hosts?: HostIndex }, view: CloudView) =>
    attachHost(instance(view, instanceId), view, hosts === undefined ? {} : { hosts }),
  produced: (result) => ({ hostInstanceId: result.hostInstanceId, hostTreeId: result.hostTreeId, version: result.version }),
});

describe("place: release availability", () => {
  it("places on a computer where the release is supplied and available", () => {
    placement
      .given([...computer("COMP-1"), request("i1")])
      .when({ instanceId: "i1" })
      .then((_place, result) => assert.deepEqual(result, { ok: true, computerId: "COMP-1", partitionId: "slappart0", version: 0 }));
  });

  it("does not place where the release is building, in error, or only reported available without a supply", () => {
    const events: DomainEvent[] = [
      ...computer("COMP-1", { releases: [] }),
      fixtures.softwareSupplied("COMP-1", KVDB),
      fixtures.softwareStatus("COMP-1", KVDB, "building"),
      ...computer("COMP-2", { releases: [] }),
      fixtures.softwareSupplied("COMP-2", KVDB),
      fixtures.softwareStatus("COMP-2", KVDB, "error"),
      ...computer("COMP-3", { releases: [] }),
      fixtures.softwareStatus("COMP-3", KVDB, "available"),
      request("i1"),
    ];
    placement.given(events).when({ instanceId: "i1" }).thenRejects("NoComputerWithRelease", `no computer has ${KVDB} available (supplied: building on 1, error on 1)`);
  });

  it("does not place where the release was unsupplied, even if it is still installed", () => {
    const events: DomainEvent[] = [
      ...computer("COMP-1"),
      { ...fixtures.softwareSupplied("COMP-1", KVDB), type: "SoftwareUnsupplied" },
      request("i1"),
    ];
    placement.given(events).when({ instanceId: "i1" }).thenRejects("NoComputerWithRelease", `no computer has ${KVDB} available`);
  });

  it("does not place an instance of one release on a computer that only has another", () => {
    placement
      .given([...computer("COMP-1", { releases: [WEB] }), request("i1")])
      .when({ instanceId: "i1" })
      .thenRejects("NoComputerWithRelease");
  });
});

describe("place: free partitions", () => {
  it("skips partitions that hold an instance and says so when none is left", () => {
    const base = [...computer("COMP-1"), ...computer("COMP-2", { releases: [KVDB, WEB] }), request("a"), request("b"), request("c")];
    const oneTaken = [...base, allocated("COMP-1", "slappart0", "a")];
    placement.given(oneTaken).when({ instanceId: "b" }).then({ computerId: "COMP-1", partitionId: "slappart1" });
    const full = [...oneTaken, allocated("COMP-1", "slappart1", "b"), allocated("COMP-2", "slappart0", "x"), allocated("COMP-2", "slappart1", "y")];
    placement.given(full).when({ instanceId: "c" }).thenRejects("NoFreePartition", `no free partition on the 2 computers that have ${KVDB} available`);
  });

  it("answers the partition's version as the expected version of the claim", () => {
    const events = [...computer("COMP-1"), request("a"), request("b"), allocated("COMP-1", "slappart0", "a")];
    events.push(fixtures.partitionReleased("COMP-1", "slappart0", "a"));
    placement
      .given(events)
      .when({ instanceId: "b" })
      .then((where, result) => {
        assert.equal(where.partitionId, "slappart0");
        assert.equal(result.version, events.length);
      });
  });

  it("does not place on a partition that holds an unreleased superseded claim", () => {
    const events = [
      ...computer("COMP-1", { partitions: 2 }),
      request("a"),
      request("b"),
      allocated("COMP-1", "slappart0", "a"),
      allocated("COMP-1", "slappart1", "a"), // a racing replica's losing claim
    ];
    const given = placement.given(events);
    assert.deepEqual(given.state.computers.computers["COMP-1"]?.partitions.slappart1?.supersededClaim, { instanceId: "a", treeId: "a" });
    given.when({ instanceId: "b" }).thenRejects("NoFreePartition");
    const released = [...events, { ...fixtures.partitionReleased("COMP-1", "slappart1", "a"), data: { instanceId: "a", reason: "superseded" as const } }];
    placement.given(released).when({ instanceId: "b" }).then({ computerId: "COMP-1", partitionId: "slappart1" });
  });
});

describe("place: ranking", () => {
  it("fills computers in natural id order, lowest free partition first", () => {
    const events = [...computer("COMP-10", { partitions: 12 }), ...computer("COMP-2", { partitions: 12 }), request("i")];
    placement.given(events).when({ instanceId: "i" }).then({ computerId: "COMP-2", partitionId: "slappart0" });
    const taken = Array.from({ length: 10 }, (_, p) => allocated("COMP-2", `slappart${p}`, `x${p}`));
    // slappart10 comes after slappart9, not after slappart1
    placement.given([...events, ...taken]).when({ instanceId: "i" }).then({ computerId: "COMP-2", partitionId: "slappart10" });
  });

  it("refills a freed partition of an earlier computer first", () => {
    const events = [
      ...computer("COMP-1"),
      ...computer("COMP-2"),
      request("i"),
      allocated("COMP-1", "slappart0", "a"),
      allocated("COMP-1", "slappart1", "b"),
      allocated("COMP-2", "slappart0", "c"),
      fixtures.partitionReleased("COMP-1", "slappart0", "a"),
    ];
    placement.given(events).when({ instanceId: "i" }).then({ computerId: "COMP-1", partitionId: "slappart0" });
  });

  it("starts replicas with other rotations at other computers and partitions", () => {
    const events = [...Array.from({ length: 10 }, (_, c) => computer(`COMP-${c}`, { partitions: 10 })).flat(), request("i")];
    const choices = [0, 1, 2, 3].map((rotation) => placement.given(events).when({ instanceId: "i", rotation }).then(() => undefined));
    assert.deepEqual(choices[0], { computerId: "COMP-0", partitionId: "slappart0" });
    assert.equal(new Set(choices.map((c) => c.computerId)).size, 4, JSON.stringify(choices));
    assert.equal(new Set(choices.map((c) => c.partitionId)).size, 4, JSON.stringify(choices));
  });

  it("keeps a replica's start point while the computers before it fill up", () => {
    const computers = Array.from({ length: 10 }, (_, c) => computer(`COMP-${c}`, { partitions: 1 })).flat();
    const start = placement.given([...computers, request("i")]).when({ instanceId: "i", rotation: 1 }).then(() => undefined).computerId;
    const fill = [allocated("COMP-0", "slappart0", "a"), allocated("COMP-1", "slappart0", "b")];
    placement.given([...computers, ...fill, request("i")]).when({ instanceId: "i", rotation: 1 }).then((p) => assert.equal(p.computerId, start));
  });
});

describe("place: SLA", () => {
  const fleet = [
    ...computer("COMP-1", { network: "net-A" }),
    ...computer("COMP-2", { network: "net-B" }),
    ...computer("COMP-3", { network: "net-B" }),
  ];

  it("computer_guid places on that computer only", () => {
    placement.given([...fleet, request("i", { sla: { computer_guid: "COMP-3" } })]).when({ instanceId: "i" }).then({
      computerId: "COMP-3",
      partitionId: "slappart0",
    });
  });

  it("computer_guid naming a computer without the release (or none) leaves it pending with the SLA in the reason", () => {
    const events = [...fleet, ...computer("COMP-8", { releases: [WEB] }), request("i", { sla: { computer_guid: "COMP-9" } }), request("j", { sla: { computer_guid: "COMP-8" } })];
    placement.given(events).when({ instanceId: "i" }).thenRejects("SlaUnsatisfiable", `SLA computer_guid=COMP-9: no such computer with ${KVDB} available`);
    placement.given(events).when({ instanceId: "j" }).thenRejects((r) => assert.equal(r.detail, `SLA computer_guid=COMP-8: no such computer with ${KVDB} available`));
  });

  it("computer_guid on a full computer is NoFreePartition, naming the SLA", () => {
    const events = [...fleet, allocated("COMP-1", "slappart0", "a"), allocated("COMP-1", "slappart1", "b"), request("i", { sla: { computer_guid: "COMP-1" } })];
    placement.given(events).when({ instanceId: "i" }).thenRejects("NoFreePartition", `no free partition on the 1 computer that has ${KVDB} available and matches SLA computer_guid=COMP-1`);
  });

  it("network_guid places on a computer of that network only", () => {
    placement.given([...fleet, request("i", { sla: { network_guid: "net-B" } })]).when({ instanceId: "i" }).then((p) => assert.equal(p.computerId, "COMP-2"));
    placement.given([...fleet, request("j", { sla: { network_guid: "net-Z" } })]).when({ instanceId: "j" }).thenRejects("SlaUnsatisfiable", `SLA network_guid=net-Z: no such computer with ${KVDB} available`);
  });

  it("treats empty SLA values as no constraint", () => {
    placement
      .given([...fleet, request("i", { sla: { computer_guid: "", network_guid: "", mode: "" } })])
      .when({ instanceId: "i" })
      .then({ computerId: "COMP-1", partitionId: "slappart0" });
  });

  it("refuses an unknown SLA key or mode instead of ignoring it", () => {
    placement.given([...fleet, request("i", { sla: { computer_giud: "COMP-2" } })]).when({ instanceId: "i" }).thenRejects("UnknownSlaKey", "unknown SLA key computer_giud (known: computer_guid, network_guid, instance_guid, mode)");
    placement.given([...fleet, request("j", { sla: { mode: "unique_by_planet" } })]).when({ instanceId: "j" }).thenRejects("UnknownSlaKey", "unknown SLA mode=unique_by_planet (known: unique_by_network)");
  });

  it("ignores instance_guid for a non-shared instance", () => {
    placement.given([...fleet, request("i", { sla: { instance_guid: "H" } })]).when({ instanceId: "i" }).then((p) => assert.equal(p.computerId, "COMP-1"));
  });

  it("mode=unique_by_network avoids networks where the tree already has an instance", () => {
    const unique = { mode: "unique_by_network" };
    const events = [
      ...fleet,
      request("root", { sla: unique }),
      request("child", { treeId: "root", sla: unique }),
      request("other", { sla: unique }),
      allocated("COMP-1", "slappart0", "root"),
    ];
    placement.given(events).when({ instanceId: "child" }).then((p) => assert.equal(p.computerId, "COMP-2"));
    // another tree is not constrained by this one
    placement.given(events).when({ instanceId: "other" }).then((p) => assert.equal(p.computerId, "COMP-1"));
    const both = [...events, allocated("COMP-2", "slappart0", "child"), request("third", { treeId: "root", sla: unique })];
    placement.given(both).when({ instanceId: "third" }).thenRejects("SlaUnsatisfiable", `SLA mode=unique_by_network: every network with ${KVDB} available already holds an instance of tree root`);
  });

  it("mode=unique_by_network counts this replica's claims in flight, and skips computers without a network", () => {
    const unique = { mode: "unique_by_network" };
    const events = [
      ...computer("COMP-0", { network: null }),
      ...fleet,
      request("root", { sla: unique }),
      request("child", { treeId: "root", sla: unique }),
    ];
    const given = placement.given(events);
    const capacity = CapacityIndex.fromView(given.state.computers);
    given.when({ instanceId: "root", capacity }).then((where) => assert.equal(where.computerId, "COMP-1"));
    capacity.reserve({ instanceId: "root", treeId: "root", computerId: "COMP-1", partitionId: "slappart0" });
    given.when({ instanceId: "child", capacity }).then((where) => assert.equal(where.computerId, "COMP-2"));
    placement
      .given([...computer("COMP-0", { network: null }), request("x", { sla: unique })])
      .when({ instanceId: "x" })
      .thenRejects("SlaUnsatisfiable", `SLA mode=unique_by_network: no computer with ${KVDB} available belongs to a network`);
  });
});

describe("capacity index", () => {
  it("kept in step commit by commit, equals one built from the final view", () => {
    const events: DomainEvent[] = [
      ...computer("COMP-1", { partitions: 3 }),
      ...computer("COMP-2", { partitions: 2, releases: [KVDB, WEB] }),
      allocated("COMP-1", "slappart0", "a"),
      allocated("COMP-2", "slappart1", "b"),
      allocated("COMP-2", "slappart0", "b"), // superseded
      fixtures.partitionReleased("COMP-1", "slappart0", "a"),
      fixtures.softwareStatus("COMP-2", WEB, "error"),
      fixtures.computerRegistered("COMP-1", 5),
      ...computer("COMP-3", { partitions: 1, releases: [WEB] }),
    ];
    let state = cloudProjection.initial();
    const live = new CapacityIndex();
    events.forEach((event, i) => {
      state = cloudProjection.evolve(state, event, i + 1);
      if (event.aggregate.kind === "partition") live.syncPartition(state.computers, event.aggregate.computerId, event.aggregate.partitionId);
      else if (event.aggregate.kind === "computer") live.syncComputer(state.computers, event.aggregate.computerId);
    });
    const rebuilt = CapacityIndex.fromView(state.computers);
    for (const id of ["COMP-1", "COMP-2", "COMP-3"]) {
      const a = live.computer(id);
      const b = rebuilt.computer(id);
      assert.deepEqual(
        { free: a?.free, releases: [...(a?.releases ?? [])], network: a?.networkId },
        { free: b?.free, releases: [...(b?.releases ?? [])], network: b?.networkId },
        id,
      );
    }
    for (const url of [KVDB, WEB]) {
      assert.deepEqual(
        live.available(url).map((c) => c.computerId),
        rebuilt.available(url).map((c) => c.computerId),
      );
    }
    assert.deepEqual(live.computer("COMP-1")?.free, ["slappart0", "slappart1", "slappart2", "slappart3", "slappart4"]);
    assert.deepEqual(live.computer("COMP-2")?.free, []);
  });

  it("reports the releases that gained capacity, so waiting instances are woken only then", () => {
    let state = viewOf([...computer("COMP-1", { partitions: 1 }), allocated("COMP-1", "slappart0", "a")]);
    const index = CapacityIndex.fromView(state.computers);
    const released = fixtures.partitionReleased("COMP-1", "slappart0", "a");
    state = cloudProjection.evolve(state, released, 99);
    assert.deepEqual(index.syncPartition(state.computers, "COMP-1", "slappart0"), [KVDB]);
    index.reserve({ instanceId: "b", treeId: "b", computerId: "COMP-1", partitionId: "slappart0" });
    assert.deepEqual(index.computer("COMP-1")?.free, []);
    assert.deepEqual(index.unreserve(state.computers, "COMP-1", "slappart0"), [KVDB]);
    assert.deepEqual(index.syncPartition(state.computers, "COMP-1", "slappart0"), []);
  });

  // How fast is the bench's (`npm run bench`, allocation): a timed assertion here would fail on a busy machine.
  it("places 100,000 instances on 1,000 computers × 100 partitions, every partition once, then refuses the next (pure decisions and index upkeep)", () => {
    let state = cloudProjection.initial();
    let position = 0;
    for (let c = 0; c < 1_000; c++) for (const e of computer(`COMP-${c}`, { partitions: 100 })) state = cloudProjection.evolve(state, e, ++position);
    const capacity = CapacityIndex.fromView(state.computers);
    const probe = { ...instance(viewOf([request("probe")]), "probe") };
    let count = 0;
    const used = new Set<string>();
    for (let i = 0; i < 100_000; i++) {
      const result = place({ ...probe, instanceId: `i${i}`, treeId: `i${i}` }, state, { capacity });
      if (!result.ok) break;
      used.add(`${result.computerId}/${result.partitionId}`);
      capacity.reserve({ instanceId: `i${i}`, treeId: `i${i}`, computerId: result.computerId, partitionId: result.partitionId });
      count++;
    }
    assert.equal(count, 100_000);
    assert.equal(used.size, 100_000, "no partition placed twice");
    const oneMore = place({ ...probe, instanceId: "one-more" }, state, { capacity });
    assert.equal(!oneMore.ok && oneMore.reason, "NoFreePartition");
  });
});

describe("attachHost: shared instances", () => {
  const ready = (id: string, computerId = "COMP-1", partitionId = "slappart0", extra: { softwareType?: string } = {}): DomainEvent[] => [
    request(id, { softwareType: extra.softwareType ?? "default" }),
    allocated(computerId, partitionId, id),
    fixtures.connectionPublished(id, { url: `http://${id}` }, { computerId, partitionId }),
  ];
  const fleet = [...computer("COMP-1", { network: "net-A" }), ...computer("COMP-2", { network: "net-B" })];

  it("attaches to a started, placed host of the same release and software type that published its connection parameters", () => {
    const events = [...fleet, ...ready("H1"), request("S", { shared: true })];
    const given = attachment.given(events);
    given.when({ instanceId: "S" }).then({ hostInstanceId: "H1", hostTreeId: "H1", version: instance(given.state, "S").version });
  });

  it("waits while no host is ready: unplaced, no connection parameters, stopped, other software type or release", () => {
    const events: DomainEvent[] = [
      ...fleet,
      request("unplaced"),
      request("silent"),
      allocated("COMP-1", "slappart0", "silent"),
      ...ready("stopped", "COMP-1", "slappart1"),
      { ...fixtures.instanceBanged("stopped"), type: "InstanceRequestedStateChanged", data: { requestedState: "stopped" } },
      ...ready("typed", "COMP-2", "slappart0", { softwareType: "frontend" }),
      request("web", { releaseUrl: WEB }),
      request("S", { shared: true }),
    ];
    attachment
      .given(events)
      .when({ instanceId: "S" })
      .thenRejects("NoReadyHost", /no ready host instance of file:\/\/\/software\/kvdb \(software type default\)/);
  });

  it("SLA instance_guid picks that host, and says why while it is not ready", () => {
    const events = [...fleet, ...ready("H1"), request("H2"), request("S", { shared: true, sla: { instance_guid: "H2" } })];
    attachment
      .given(events)
      .when({ instanceId: "S" })
      .thenRejects((rejection) =>
        assert.deepEqual(rejection, {
          ok: false,
          reason: "SlaUnsatisfiable",
          detail: `SLA instance_guid=H2: not a ready host of ${KVDB} (software type default): it is not placed yet`,
        }),
      );
    attachment
      .given([...events, allocated("COMP-2", "slappart0", "H2"), fixtures.connectionPublished("H2", { url: "x" })])
      .when({ instanceId: "S" })
      .then((host) => assert.equal(host.hostInstanceId, "H2"));
    const missing = attachment.given([...events.slice(0, -1), request("S", { shared: true, sla: { instance_guid: "NOPE" } })]).when({ instanceId: "S" });
    assert.match(JSON.stringify(missing.decision), /SLA instance_guid=NOPE: not a ready host .*: no such instance/);
  });

  it("spreads shared instances over hosts: the one serving the fewest first, ties by id", () => {
    const attachedTo = (shared: string, host: string): DomainEvent => ({
      ...fixtures.instanceBanged(shared),
      type: "SharedInstanceAttached",
      data: { hostInstanceId: host, hostTreeId: host },
    });
    const events = [...fleet, ...ready("H2", "COMP-2"), ...ready("H1"), request("S1", { shared: true }), attachedTo("S1", "H1"), request("S2", { shared: true })];
    const given = attachment.given(events);
    const hosts = HostIndex.fromView(given.state);
    given.when({ instanceId: "S2", hosts }).then((host) => assert.equal(host.hostInstanceId, "H2"));
    hosts.noteAttached("H2");
    hosts.noteAttached("H2");
    given.when({ instanceId: "S2", hosts }).then((host) => assert.equal(host.hostInstanceId, "H1"));
  });

  it("computer_guid and network_guid restrict hosts to those placed on such computers", () => {
    const events = [...fleet, ...ready("H1"), ...ready("H2", "COMP-2"), request("S", { shared: true, sla: { network_guid: "net-B" } }), request("T", { shared: true, sla: { computer_guid: "COMP-9" } })];
    const given = attachment.given(events);
    given.when({ instanceId: "S" }).then((host) => assert.equal(host.hostInstanceId, "H2"));
    given
      .when({ instanceId: "T" })
      .thenRejects("SlaUnsatisfiable", `SLA computer_guid=COMP-9: none of the 2 ready hosts of ${KVDB} (software type default) is on such a computer`);
  });
});

describe("explain", () => {
  it("tells placed, allocating, pending and destroyed apart, in one sentence for the master", () => {
    const events: DomainEvent[] = [
      ...computer("COMP-1", { partitions: 1 }),
      request("a"),
      request("b"),
      request("gone"),
      { ...fixtures.instanceBanged("gone"), type: "InstanceRequestedStateChanged", data: { requestedState: "destroyed" } },
    ];
    let view = viewOf(events);
    assert.deepEqual(explain(instance(view, "a"), view), {
      status: "allocating",
      detail: "a partition is free (COMP-1/slappart0); an allocator is placing it",
    });
    assert.deepEqual(explain(instance(view, "gone"), view), { status: "destroyed" });
    assert.equal(isPending(instance(view, "gone"), view), false);
    view = viewOf([...events, allocated("COMP-1", "slappart0", "a")]);
    assert.deepEqual(explain(instance(view, "a"), view), { status: "placed", computerId: "COMP-1", partitionId: "slappart0" });
    assert.deepEqual(explain(instance(view, "b"), view), {
      status: "pending",
      reason: "NoFreePartition",
      detail: `no free partition on the 1 computer that has ${KVDB} available`,
    });
    assert.equal(explainUnplaced(instance(view, "b"), view), `no free partition on the 1 computer that has ${KVDB} available`);
  });
});

describe("order and SLA parsing", () => {
  it("natural order compares digit runs as numbers and is total", () => {
    const ids = ["slappart10", "slappart2", "slappart1", "COMP-10", "COMP-9", "a01", "a1"];
    assert.deepEqual([...ids].sort(naturalCompare), ["COMP-9", "COMP-10", "a01", "a1", "slappart1", "slappart2", "slappart10"]);
  });

  it("ring offsets of replicas 0, 1, 2, 3 are far apart", () => {
    assert.deepEqual([0, 1, 2, 3].map((r) => ringOffset(r, 100)), [0, 61, 23, 85]);
    assert.equal(ringOffset(5, 0), 0);
    assert.equal(rotationOf(undefined), 0);
    assert.equal(rotationOf("allocator-2"), 2);
    assert.equal(rotationOf("blue"), rotationOf("blue"));
  });

  it("parses the SLA, dropping empty values and keys without effect", () => {
    assert.deepEqual(parseSla({ computer_guid: "C", network_guid: "", instance_guid: "H" }, false), {
      ok: true,
      sla: { computerId: "C", networkId: null, instanceId: null, uniqueByNetwork: false, constraints: ["computer_guid=C"] },
    });
    assert.deepEqual(parseSla({ instance_guid: "H", mode: "unique_by_network" }, true), {
      ok: true,
      sla: { computerId: null, networkId: null, instanceId: "H", uniqueByNetwork: false, constraints: ["instance_guid=H"] },
    });
  });
});
