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

/**
 * A scripted story touching every event type: computers register, releases are supplied and
 * installed, a webapp tree requests a kvdb, allocations, connection parameters, status, bangs,
 * a shared instance, parameter and state changes, a destroy and a release. `scale` repeats it
 * with other ids. Each inner array is one append.
 */
export function story(scale = 1): DomainEvent[][] {
  const out: DomainEvent[][] = [];
  const kvdb = "file:///software/kvdb";
  const webapp = "file:///software/webapp";
  const at = (computerId: string) => ({ computerId, partitionId: "slappart0" });
  for (let s = 0; s < scale; s++) {
    const c1 = `COMP-${s}-a`;
    const c2 = `COMP-${s}-b`;
    const root = `WEB${s}`;
    const child = `KV${s}`;
    const shared = `SH${s}`;
    const meta = () => ({ ...base(), actor: admin });
    out.push([computerRegistered(c1, 3)], [computerRegistered(c2, 2)]);
    out.push([softwareSupplied(c1, webapp)], [softwareSupplied(c2, kvdb)], [softwareSupplied(c1, kvdb)]);
    out.push([softwareStatus(c1, webapp, "building")], [softwareStatus(c1, webapp, "available")], [softwareStatus(c2, kvdb, "available")]);
    out.push([{ ...softwareStatus(c1, kvdb, "error"), data: { releaseUrl: kvdb, status: "error", log: "make: *** [all] Error 2" } }]);
    out.push([instanceRequested(root, { releaseUrl: webapp, parameters: { title: "hello" } })]);
    out.push([partitionAllocated(c1, "slappart0", root)]);
    // A second allocator lost the race for the same instance: its claim is superseded, then released.
    out.push([partitionAllocated(c2, "slappart1", root)]);
    out.push([{ ...partitionReleased(c2, "slappart1", root), data: { instanceId: root, reason: "superseded" } }]);
    out.push([{ ...meta(), type: "InstanceStatusReported", aggregate: { kind: "instance", treeId: root, instanceId: root }, data: { status: "processing", ...at(c1) } }]);
    out.push([instanceRequested(child, { treeId: root, releaseUrl: kvdb, reference: "kvdb", requester: { kind: "instance", instanceId: root, treeId: root } })]);
    out.push([{ ...meta(), type: "InstanceStatusReported", aggregate: { kind: "instance", treeId: root, instanceId: root }, data: { status: "waiting", waitingFor: ["kvdb"], ...at(c1) } }]);
    out.push([partitionAllocated(c2, "slappart0", child, root)]);
    out.push([connectionPublished(child, { url: "http://10.0.0.1:20000", password: "s3cret" }, { treeId: root, ...at(c2) })]);
    out.push([connectionPublished(root, { url: "http://10.0.0.1:20000/app" }, at(c1))]);
    out.push([{ ...meta(), type: "InstanceStatusReported", aggregate: { kind: "instance", treeId: root, instanceId: root }, data: { status: "started", promises: [{ name: "http", ok: true, message: "200", durationMs: 3 }], processes: [{ name: "web", state: "running", pid: 1234 }], ...at(c1) } }]);
    out.push([{ ...instanceBanged(child, root), data: { message: "service kvdb exited", service: "kvdb", exitCode: 1, logTail: "boom" } }]);
    out.push([connectionPublished(child, { url: "http://10.0.0.1:20000", password: "n3w" }, { treeId: root, ...at(c2) })]);
    out.push([{ ...meta(), type: "InstanceParametersChanged", aggregate: { kind: "instance", treeId: root, instanceId: root }, data: { parameters: { title: "bye" }, softwareType: "default", sla: {} } }]);
    out.push([instanceRequested(shared, { releaseUrl: kvdb, shared: true })]);
    out.push([{ ...meta(), type: "SharedInstanceAttached", aggregate: { kind: "instance", treeId: shared, instanceId: shared }, data: { hostInstanceId: child, hostTreeId: root } }]);
    out.push([{ ...connectionPublished(shared, { db: "shared-1" }, at(c2)), data: { parameters: { db: "shared-1" }, publisher: at(c2), hostInstanceId: child } }]);
    out.push([{ ...meta(), type: "InstanceRequestedStateChanged", aggregate: { kind: "instance", treeId: root, instanceId: child }, data: { requestedState: "destroyed" } }]);
    out.push([{ ...meta(), type: "InstanceDestroyed", aggregate: { kind: "instance", treeId: root, instanceId: child }, data: at(c2) }]);
    out.push([partitionReleased(c2, "slappart0", child)]);
    out.push([{ ...meta(), type: "SoftwareUnsupplied", aggregate: { kind: "computer", computerId: c1 }, data: { releaseUrl: kvdb } }]);
    out.push([computerRegistered(c1, 4)]);
  }
  return out;
}
