import type { Actor, EventOf, InstanceView } from "@slap/events";

/** Every event the allocator writes is caused by this actor. */
export const ALLOCATOR_ACTOR: Actor = { kind: "service", name: "allocator" };

/** Id and time of a new event: decided by the shell (ulid, clock), never by core code. */
export interface EventMeta {
  id: string;
  time: string;
}

/** The claim of a partition for an instance: appended to the partition's stream with its version. */
export function partitionAllocatedEvent(
  instance: InstanceView,
  target: { computerId: string; partitionId: string },
  meta: EventMeta,
): EventOf<"PartitionAllocated"> {
  return {
    type: "PartitionAllocated",
    schemaVersion: 1,
    id: meta.id,
    time: meta.time,
    correlationId: instance.correlationId,
    causationId: instance.requestEventId,
    actor: ALLOCATOR_ACTOR,
    aggregate: { kind: "partition", computerId: target.computerId, partitionId: target.partitionId },
    data: { instanceId: instance.instanceId, treeId: instance.treeId, releaseUrl: instance.releaseUrl },
  };
}

/**
 * Frees a partition from a superseded claim (a racing allocation of an instance that was
 * already bound elsewhere). `story` is the correlation and causation to carry: the instance's
 * request story when the instance is known, else the claim event's.
 */
export function supersededReleasedEvent(
  target: { computerId: string; partitionId: string; instanceId: string },
  story: { correlationId: string; causationId: string },
  meta: EventMeta,
): EventOf<"PartitionReleased"> {
  return {
    type: "PartitionReleased",
    schemaVersion: 1,
    id: meta.id,
    time: meta.time,
    correlationId: story.correlationId,
    causationId: story.causationId,
    actor: ALLOCATOR_ACTOR,
    aggregate: { kind: "partition", computerId: target.computerId, partitionId: target.partitionId },
    data: { instanceId: target.instanceId, reason: "superseded" },
  };
}

/** Attaches a shared instance to its host: appended to the shared instance's stream with its version. */
export function sharedInstanceAttachedEvent(
  shared: InstanceView,
  host: { instanceId: string; treeId: string },
  meta: EventMeta,
): EventOf<"SharedInstanceAttached"> {
  return {
    type: "SharedInstanceAttached",
    schemaVersion: 1,
    id: meta.id,
    time: meta.time,
    correlationId: shared.correlationId,
    causationId: shared.requestEventId,
    actor: ALLOCATOR_ACTOR,
    aggregate: { kind: "instance", treeId: shared.treeId, instanceId: shared.instanceId },
    data: { hostInstanceId: host.instanceId, hostTreeId: host.treeId },
  };
}
