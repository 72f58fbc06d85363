import type { Actor, DomainEvent, EventOf } from "@slap/events";
import { monotonicFactory } from "ulid";

const nextId = monotonicFactory();
const admin: Actor = { kind: "user", userId: "admin" };

/** Fresh ULID. */
export const newId = (): string => nextId();

function base(id = nextId()) {
  return { schemaVersion: 1 as const, id, time: new Date().toISOString(), correlationId: id, causationId: id, actor: admin };
}

export function computerRegistered(computerId: string, partitions = 2): EventOf<"ComputerRegistered"> {
  return {
    ...base(),
    type: "ComputerRegistered",
    aggregate: { kind: "computer", computerId },
    data: {
      networkId: "net-1",
      partitions: Array.from({ length: partitions }, (_, i) => ({
        partitionId: `slappart${i}`,
        address: `10.0.0.${i + 1}`,
        ports: { from: 20_000 + i * 100, to: 20_099 + i * 100 },
      })),
    },
  };
}

export function softwareSupplied(computerId: string, releaseUrl: string): EventOf<"SoftwareSupplied"> {
  return { ...base(), type: "SoftwareSupplied", aggregate: { kind: "computer", computerId }, data: { releaseUrl } };
}

export function softwareStatus(
  computerId: string,
  releaseUrl: string,
  status: "building" | "available" | "error" | "destroyed",
): EventOf<"SoftwareReleaseStatusReported"> {
  return { ...base(), type: "SoftwareReleaseStatusReported", aggregate: { kind: "computer", computerId }, data: { releaseUrl, status } };
}

export function instanceRequested(
  instanceId: string,
  options: { treeId?: string; reference?: string; releaseUrl?: string; parameters?: Record<string, string>; requester?: EventOf<"InstanceRequested">["data"]["requester"]; shared?: boolean } = {},
): EventOf<"InstanceRequested"> {
  return {
    ...base(),
    type: "InstanceRequested",
    aggregate: { kind: "instance", treeId: options.treeId ?? instanceId, instanceId },
    data: {
      reference: options.reference ?? `ref-${instanceId}`,
      releaseUrl: options.releaseUrl ?? "file:///software/kvdb",
      softwareType: "default",
      parameters: options.parameters ?? {},
      sla: {},
      shared: options.shared ?? false,
      requestedState: "started",
      requester: options.requester ?? { kind: "user", userId: "alice" },
    },
  };
}

export function partitionAllocated(
  computerId: string,
  partitionId: string,
  instanceId: string,
  treeId = instanceId,
): EventOf<"PartitionAllocated"> {
  return {
    ...base(),
    type: "PartitionAllocated",
    aggregate: { kind: "partition", computerId, partitionId },
    data: { instanceId, treeId, releaseUrl: "file:///software/kvdb" },
  };
}

export function partitionReleased(computerId: string, partitionId: string, instanceId: string): EventOf<"PartitionReleased"> {
  return {
    ...base(),
    type: "PartitionReleased",
    aggregate: { kind: "partition", computerId, partitionId },
    data: { instanceId, reason: "destroyed" },
  };
}

export function connectionPublished(
  instanceId: string,
  parameters: Record<string, string>,
  where: { treeId?: string; computerId?: string; partitionId?: string } = {},
): EventOf<"ConnectionParametersPublished"> {
  return {
    ...base(),
    type: "ConnectionParametersPublished",
    aggregate: { kind: "instance", treeId: where.treeId ?? instanceId, instanceId },
    data: { parameters, publisher: { computerId: where.computerId ?? "COMP-1", partitionId: where.partitionId ?? "slappart0" } },
  };
}

export function instanceBanged(instanceId: string, treeId = instanceId): EventOf<"InstanceBanged"> {
  return { ...base(), type: "InstanceBanged", aggregate: { kind: "instance", treeId, instanceId }, data: { message: "service exited" } };
}

/** All event ids of a list of commits, in order. */
export function idsOf(commits: Iterable<{ events: readonly DomainEvent[] }>): string[] {
  const out: string[] = [];
  for (const commit of commits) for (const event of commit.events) out.push(event.id);
  return out;
}
