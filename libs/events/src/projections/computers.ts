import type { Projection } from "../projection.js";
import type { DomainEvent, ParametersSchema } from "../schemas.js";

export interface PartitionView {
  partitionId: string;
  address: string;
  ports: { from: number; to: number };
  /** The instance placed here, or null when the partition does not hold one. */
  instanceId: string | null;
  treeId: string | null;
  allocatedAt: string | null;
  /**
   * A losing claim: an allocation of an instance that was already bound to another partition
   * when it was appended (two allocators raced). The partition holds nothing but is not free
   * until the claim is released (`PartitionReleased`, reason `superseded`).
   */
  supersededClaim: { instanceId: string; treeId: string } | null;
  /** The partition stream's version: the position of its last event (0: never allocated). Allocators append with it. */
  version: number;
  /**
   * Left out of the computer's last registration (or only known from an allocation): kept, with
   * its version and any instance, so the read models stay consistent, but never offered as free.
   */
  retired: boolean;
}

export type SoftwareStatus = "unknown" | "building" | "available" | "error" | "destroyed";

export interface SoftwareView {
  releaseUrl: string;
  /** Whether the release is currently supplied (ordered installed) on the computer. */
  supplied: boolean;
  status: SoftwareStatus;
  log: string | null;
  /** The release's instance parameters schema, as its node reported it once installed (null: none, or not reported). */
  parametersSchema: ParametersSchema | null;
  updatedAt: string;
}

export interface ComputerView {
  computerId: string;
  name: string | null;
  networkId: string | null;
  registeredAt: string;
  updatedAt: string;
  partitions: Record<string, PartitionView>;
  software: Record<string, SoftwareView>;
}

/** Computers, their partitions (with who holds each) and the releases supplied and installed on them. */
export interface ComputersView {
  computers: Record<string, ComputerView>;
  /** Where each placed instance is: its first unreleased allocation in log order. */
  bindings: Record<string, { computerId: string; partitionId: string }>;
}

/**
 * The computers read model. Allocation rules, the same in every read model and on rebuild:
 * - a partition takes one claim at a time (allocators append with the partition's expected
 *   version; a claim on a partition that is not free is ignored, guarding against a buggy writer);
 * - an instance is bound to its first unreleased claim in log order; a later claim for an
 *   instance already bound elsewhere is kept as `supersededClaim` until released.
 */
export const computersProjection: Projection<ComputersView> = {
  name: "computers",
  version: 4,
  initial: () => ({ computers: {}, bindings: {} }),
  evolve(state, event, position) {
    switch (event.type) {
      case "ComputerRegistered": {
        const { computerId } = event.aggregate;
        const previous = state.computers[computerId];
        const partitions: Record<string, PartitionView> = {};
        for (const spec of event.data.partitions) {
          const held = previous?.partitions[spec.partitionId];
          partitions[spec.partitionId] = {
            partitionId: spec.partitionId,
            address: spec.address,
            ports: { from: spec.ports.from, to: spec.ports.to },
            instanceId: held?.instanceId ?? null,
            treeId: held?.treeId ?? null,
            allocatedAt: held?.allocatedAt ?? null,
            supersededClaim: held?.supersededClaim ?? null,
            version: held?.version ?? 0,
            retired: false,
          };
        }
        // A partition missing from the new registration is kept, retired: its version and any
        // instance it holds must survive, or a claim in flight could book it twice.
        for (const held of Object.values(previous?.partitions ?? {})) {
          if (partitions[held.partitionId] === undefined) partitions[held.partitionId] = { ...held, retired: true };
        }
        state.computers[computerId] = {
          computerId,
          name: event.data.name ?? null,
          networkId: event.data.networkId ?? null,
          registeredAt: previous?.registeredAt ?? event.time,
          updatedAt: event.time,
          partitions,
          software: previous?.software ?? {},
        };
        return state;
      }
      case "SoftwareSupplied":
      case "SoftwareUnsupplied":
      case "SoftwareReleaseStatusReported": {
        const computer = state.computers[event.aggregate.computerId];
        if (computer === undefined) return state;
        const url = event.data.releaseUrl;
        const software: SoftwareView = computer.software[url] ?? {
          releaseUrl: url,
          supplied: false,
          status: "unknown",
          log: null,
          parametersSchema: null,
          updatedAt: event.time,
        };
        if (event.type === "SoftwareSupplied") software.supplied = true;
        else if (event.type === "SoftwareUnsupplied") software.supplied = false;
        else {
          software.status = event.data.status;
          software.log = event.data.log ?? null;
          if (event.data.status === "available") software.parametersSchema = event.data.parametersSchema ?? null;
        }
        software.updatedAt = event.time;
        computer.software[url] = software;
        computer.updatedAt = event.time;
        return state;
      }
      case "PartitionAllocated": {
        const { computerId, partitionId } = event.aggregate;
        const partition = state.computers[computerId]?.partitions[partitionId] ?? placeholder(state, computerId, partitionId, event.time);
        partition.version = position;
        if (partition.instanceId !== null || partition.supersededClaim !== null) return state;
        const { instanceId, treeId } = event.data;
        if (state.bindings[instanceId] !== undefined) {
          partition.supersededClaim = { instanceId, treeId };
          return state;
        }
        partition.instanceId = instanceId;
        partition.treeId = treeId;
        partition.allocatedAt = event.time;
        state.bindings[instanceId] = { computerId, partitionId };
        return state;
      }
      case "PartitionReleased": {
        const partition = state.computers[event.aggregate.computerId]?.partitions[event.aggregate.partitionId];
        if (partition === undefined) return state;
        partition.version = position;
        const { instanceId } = event.data;
        if (partition.supersededClaim?.instanceId === instanceId) partition.supersededClaim = null;
        if (partition.instanceId !== instanceId) return state;
        partition.instanceId = null;
        partition.treeId = null;
        partition.allocatedAt = null;
        delete state.bindings[instanceId];
        return state;
      }
      case "InstanceRequested":
      case "InstanceParametersChanged":
      case "InstanceRequestedStateChanged":
      case "SharedInstanceAttached":
      case "ConnectionParametersPublished":
      case "InstanceStatusReported":
      case "InstanceBanged":
      case "InstanceDestroyed":
      case "ComputerBanged":
        return state;
      default:
        return unreachable(event);
    }
  },
};

/** Whether `releaseUrl` is supplied and installed (status available) on the computer. */
export function isReleaseAvailable(computer: ComputerView, releaseUrl: string): boolean {
  const software = computer.software[releaseUrl];
  return software !== undefined && software.supplied && software.status === "available";
}

/** Whether a partition can take an allocation: registered, holding no instance and no unreleased losing claim. */
export function isPartitionFree(partition: PartitionView): boolean {
  return partition.instanceId === null && partition.supersededClaim === null && !partition.retired;
}

/**
 * A retired record for a partition known only from an allocation (a writer that did not check
 * the registration): the claim is recorded like any other, so the instances read model (which
 * binds it too) and this one agree, and the partition is never offered.
 */
function placeholder(state: ComputersView, computerId: string, partitionId: string, time: string): PartitionView {
  const computer = (state.computers[computerId] ??= {
    computerId,
    name: null,
    networkId: null,
    registeredAt: time,
    updatedAt: time,
    partitions: {},
    software: {},
  });
  const partition: PartitionView = {
    partitionId,
    address: "",
    ports: { from: 0, to: 0 },
    instanceId: null,
    treeId: null,
    allocatedAt: null,
    supersededClaim: null,
    version: 0,
    retired: true,
  };
  computer.partitions[partitionId] = partition;
  return partition;
}

/** The free partitions of a computer, in partition-id order. */
export function freePartitions(computer: ComputerView): PartitionView[] {
  return Object.values(computer.partitions)
    .filter(isPartitionFree)
    .sort((a, b) => a.partitionId.localeCompare(b.partitionId, "en", { numeric: true }));
}

function unreachable(event: never): never {
  throw new Error(`unhandled event ${(event as DomainEvent).type}`);
}
