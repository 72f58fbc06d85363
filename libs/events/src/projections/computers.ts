import type { Projection } from "../projection.js";
import type { DomainEvent } from "../schemas.js";

export interface PartitionView {
  partitionId: string;
  address: string;
  ports: { from: number; to: number };
  /** The instance placed here, or null when the partition is free. */
  instanceId: string | null;
  treeId: string | null;
  allocatedAt: string | null;
}

export type SoftwareStatus = "unknown" | "building" | "available" | "error" | "destroyed";

export interface SoftwareView {
  releaseUrl: string;
  /** Whether the release is currently supplied (ordered installed) on the computer. */
  supplied: boolean;
  status: SoftwareStatus;
  log: string | null;
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
}

/**
 * The computers read model. Allocation is first-wins: an allocation of a partition that
 * already holds another instance is ignored (the allocator appends with the partition's
 * expected version, so this only guards against a buggy writer).
 */
export const computersProjection: Projection<ComputersView> = {
  name: "computers",
  version: 1,
  initial: () => ({ computers: {} }),
  evolve(state, event) {
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
          };
        }
        // A partition missing from the new registration is kept while it still holds an instance.
        for (const held of Object.values(previous?.partitions ?? {})) {
          if (held.instanceId !== null && partitions[held.partitionId] === undefined) partitions[held.partitionId] = held;
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
          updatedAt: event.time,
        };
        if (event.type === "SoftwareSupplied") software.supplied = true;
        else if (event.type === "SoftwareUnsupplied") software.supplied = false;
        else {
          software.status = event.data.status;
          software.log = event.data.log ?? null;
        }
        software.updatedAt = event.time;
        computer.software[url] = software;
        computer.updatedAt = event.time;
        return state;
      }
      case "PartitionAllocated": {
        const partition = state.computers[event.aggregate.computerId]?.partitions[event.aggregate.partitionId];
        if (partition === undefined || partition.instanceId !== null) return state;
        partition.instanceId = event.data.instanceId;
        partition.treeId = event.data.treeId;
        partition.allocatedAt = event.time;
        return state;
      }
      case "PartitionReleased": {
        const partition = state.computers[event.aggregate.computerId]?.partitions[event.aggregate.partitionId];
        if (partition === undefined || partition.instanceId !== event.data.instanceId) return state;
        partition.instanceId = null;
        partition.treeId = null;
        partition.allocatedAt = null;
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

/** The free partitions of a computer, in partition-id order. */
export function freePartitions(computer: ComputerView): PartitionView[] {
  return Object.values(computer.partitions)
    .filter((p) => p.instanceId === null)
    .sort((a, b) => a.partitionId.localeCompare(b.partitionId, "en", { numeric: true }));
}

function unreachable(event: never): never {
  throw new Error(`unhandled event ${(event as DomainEvent).type}`);
}
