import type { Projection } from "../projection.js";
import type { DomainEvent, EventOf, ParameterMap, PromiseResult, RequestedState, Requester, StringMap } from "../schemas.js";

export interface InstanceStatusView {
  status: EventOf<"InstanceStatusReported">["data"]["status"];
  message: string | null;
  waitingFor: string[];
  promises: PromiseResult[];
  processes: NonNullable<EventOf<"InstanceStatusReported">["data"]["processes"]>;
  computerId: string;
  partitionId: string;
  at: string;
}

/**
 * How an instance is doing, from its node's last reports (SlapOS: its promises): `ok` while every
 * promise holds; a failed processing or promise makes it failing with the message. `since`: when
 * it last changed between ok and failing.
 */
export interface HealthView {
  ok: boolean;
  promises: PromiseResult[];
  message: string | null;
  since: string;
}

export interface InstanceView {
  instanceId: string;
  treeId: string;
  reference: string;
  releaseUrl: string;
  softwareType: string;
  /** Typed as requested (any JSON value); empty strings dropped. */
  parameters: ParameterMap;
  sla: StringMap;
  shared: boolean;
  requestedState: RequestedState;
  requester: Requester;
  requestedAt: string;
  updatedAt: string;
  /** Id and correlation id of the `InstanceRequested` event: later events of its story carry them. */
  requestEventId: string;
  correlationId: string;
  /** The instance stream's version: the position of its last event. Writers append with it. */
  version: number;
  /**
   * Grows whenever the instance's node must reprocess it: its parameters or state changed, it
   * or an instance it requested was banged, or an instance it requested published new
   * connection parameters.
   */
  serial: number;
  /** Where it runs; null until allocated (and for shared instances, which have no partition). */
  placement: { computerId: string; partitionId: string } | null;
  /** For a shared instance: the host instance serving it. */
  host: { instanceId: string; treeId: string } | null;
  connection: StringMap | null;
  status: InstanceStatusView | null;
  /** Null until its node reported a processing's outcome, and while stopped. */
  health: HealthView | null;
  lastBang: { message: string; service: string | null; exitCode: number | null; at: string } | null;
  destroyed: boolean;
}

export interface TreeView {
  treeId: string;
  rootInstanceId: string;
  /** Every instance of the tree, the root first, then in request order. */
  instanceIds: string[];
}

/** Instances and instance trees. */
export interface InstancesView {
  instances: Record<string, InstanceView>;
  trees: Record<string, TreeView>;
}

/**
 * The instances read model. Placement is first-wins: a second allocation of an instance that
 * is already placed is ignored until it is released.
 */
/** One word for where an instance stands, from its record alone (no answer needed): the CLI's STATUS column, the master's `slap_instances` metric. */
export const READINESS = ["ready", "pending", "error", "destroying", "destroyed"] as const;
export type Readiness = (typeof READINESS)[number];

export function readinessOf(instance: Pick<InstanceView, "destroyed" | "requestedState" | "connection"> & { status: { status: string } | null }): Readiness {
  if (instance.destroyed) return "destroyed";
  if (instance.requestedState === "destroyed") return "destroying";
  if (instance.connection !== null) return "ready";
  if (instance.status?.status === "error") return "error";
  return "pending";
}

export const instancesProjection: Projection<InstancesView> = {
  name: "instances",
  version: 3,
  initial: () => ({ instances: {}, trees: {} }),
  evolve(state, event, position) {
    switch (event.type) {
      case "InstanceRequested": {
        const { instanceId, treeId } = event.aggregate;
        if (state.instances[instanceId] !== undefined) return state;
        const d = event.data;
        state.instances[instanceId] = {
          instanceId,
          treeId,
          reference: d.reference,
          releaseUrl: d.releaseUrl,
          softwareType: d.softwareType,
          parameters: { ...d.parameters },
          sla: { ...d.sla },
          shared: d.shared,
          requestedState: d.requestedState,
          requester: d.requester,
          requestedAt: event.time,
          updatedAt: event.time,
          requestEventId: event.id,
          correlationId: event.correlationId,
          version: position,
          serial: 1,
          placement: null,
          host: null,
          connection: null,
          status: null,
          health: null,
          lastBang: null,
          destroyed: false,
        };
        const tree = state.trees[treeId];
        if (tree === undefined) state.trees[treeId] = { treeId, rootInstanceId: treeId, instanceIds: [instanceId] };
        else if (instanceId === treeId) tree.instanceIds.unshift(instanceId);
        else tree.instanceIds.push(instanceId);
        return state;
      }
      case "InstanceParametersChanged":
        return update(state, event, position, (i) => {
          i.parameters = { ...event.data.parameters };
          i.softwareType = event.data.softwareType;
          i.sla = { ...event.data.sla };
          if (event.data.releaseUrl !== undefined) i.releaseUrl = event.data.releaseUrl;
          bump(state, i);
        });
      case "InstanceRequestedStateChanged":
        return update(state, event, position, (i) => {
          if (i.destroyed && event.data.requestedState !== "destroyed") {
            // Requested again after it was destroyed: a new life, placed and published anew.
            i.destroyed = false;
            i.connection = null;
            i.status = null;
            i.health = null;
          }
          i.requestedState = event.data.requestedState;
          bump(state, i);
        });
      case "SharedInstanceAttached":
        return update(state, event, position, (i) => {
          if (i.host !== null) return;
          i.host = { instanceId: event.data.hostInstanceId, treeId: event.data.hostTreeId };
          // The host must reprocess to serve its new shared instance.
          const host = state.instances[event.data.hostInstanceId];
          if (host !== undefined) host.serial += 1;
        });
      case "ConnectionParametersPublished":
        return update(state, event, position, (i) => {
          const changed = !sameMap(i.connection, event.data.parameters);
          i.connection = { ...event.data.parameters };
          if (changed && i.requester.kind === "instance") {
            const requester = state.instances[i.requester.instanceId];
            if (requester !== undefined) requester.serial += 1;
          }
        });
      case "InstanceStatusReported":
        return update(state, event, position, (i) => {
          const d = event.data;
          i.status = {
            status: d.status,
            message: d.message ?? null,
            waitingFor: d.waitingFor ?? [],
            promises: d.promises ?? [],
            processes: d.processes ?? [],
            computerId: d.computerId,
            partitionId: d.partitionId,
            at: event.time,
          };
          i.health = healthAfter(i.health, d, event.time);
        });
      case "InstanceBanged":
        return update(state, event, position, (i) => {
          i.lastBang = {
            message: event.data.message,
            service: event.data.service ?? null,
            exitCode: event.data.exitCode ?? null,
            at: event.time,
          };
          // As SlapOS's bang_tree: every instance of the tree is reprocessed, shared ones through their host.
          const bumped = new Set<InstanceView>();
          for (const id of state.trees[i.treeId]?.instanceIds ?? [i.instanceId]) {
            const member = state.instances[id];
            if (member !== undefined) bump(state, member, bumped);
          }
        });
      case "InstanceDestroyed":
        return update(state, event, position, (i) => {
          i.destroyed = true;
          // A shared instance's host must stop serving it.
          if (i.shared) bump(state, i);
        });
      case "ComputerBanged": {
        // Every instance placed on the computer; shared ones are served by them.
        for (const instance of Object.values(state.instances)) {
          if (instance.placement?.computerId === event.aggregate.computerId) instance.serial += 1;
        }
        return state;
      }
      case "PartitionAllocated": {
        const instance = state.instances[event.data.instanceId];
        if (instance === undefined || instance.placement !== null) return state;
        instance.placement = { computerId: event.aggregate.computerId, partitionId: event.aggregate.partitionId };
        instance.updatedAt = event.time;
        return state;
      }
      case "PartitionReleased": {
        // A released superseded claim never was this instance's placement: the check below ignores it.
        const instance = state.instances[event.data.instanceId];
        const p = instance?.placement;
        if (instance === undefined || p?.computerId !== event.aggregate.computerId || p.partitionId !== event.aggregate.partitionId) {
          return state;
        }
        instance.placement = null;
        instance.updatedAt = event.time;
        // A root being destroyed waits for its children to leave their partitions: the last one wakes it.
        const root = state.instances[instance.treeId];
        if (event.data.reason === "destroyed" && root !== undefined && root !== instance && root.requestedState === "destroyed" && !root.destroyed) root.serial += 1;
        return state;
      }
      case "ComputerRegistered":
      case "SoftwareSupplied":
      case "SoftwareUnsupplied":
      case "SoftwareReleaseStatusReported":
        return state;
      default:
        return unreachable(event);
    }
  },
};

function update(
  state: InstancesView,
  event: DomainEvent & { aggregate: { kind: "instance" } },
  position: number,
  apply: (instance: InstanceView) => void,
): InstancesView {
  const instance = state.instances[event.aggregate.instanceId];
  if (instance === undefined) return state;
  apply(instance);
  instance.updatedAt = event.time;
  instance.version = position;
  return state;
}

/** The health an outcome report leaves: processing and waiting change nothing, stopped clears it. */
function healthAfter(health: HealthView | null, report: EventOf<"InstanceStatusReported">["data"], at: string): HealthView | null {
  switch (report.status) {
    case "processing":
    case "waiting":
      return health;
    case "stopped":
      return null;
    case "started":
    case "error": {
      const promises = report.promises ?? [];
      const ok = report.status === "started" && promises.every((p) => p.ok);
      const since = health !== null && health.ok === ok ? health.since : at;
      return { ok, promises, message: ok ? null : (report.message ?? null), since };
    }
    default: {
      const never: never = report.status;
      return never;
    }
  }
}

/**
 * The instance must be reprocessed: its serial grows, and for a shared instance its host's too
 * (the host is what serves it). `seen` keeps one bump per instance when bumping several.
 */
function bump(state: InstancesView, instance: InstanceView, seen = new Set<InstanceView>()): void {
  if (!seen.has(instance)) {
    seen.add(instance);
    instance.serial += 1;
  }
  const host = instance.shared && instance.host !== null ? state.instances[instance.host.instanceId] : undefined;
  if (host !== undefined && !seen.has(host)) {
    seen.add(host);
    host.serial += 1;
  }
}

function sameMap(a: StringMap | null, b: StringMap): boolean {
  if (a === null) return false;
  const keys = Object.keys(a);
  return keys.length === Object.keys(b).length && keys.every((k) => a[k] === b[k]);
}

function unreachable(event: never): never {
  throw new Error(`unhandled event ${(event as DomainEvent).type}`);
}
