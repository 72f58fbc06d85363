import { z } from "zod";
import { ComputerId, EventId, InstanceId, PartitionId, SAFE_KEY_MESSAGE, TreeId, UserId, isSafeKey } from "./ids.js";

// ---------------------------------------------------------------------------------------------
// Shared value schemas
// ---------------------------------------------------------------------------------------------

/** A software release is identified by its URL: a local path, `file://` or `http(s)://` (a key of read models: see `isSafeKey`). */
export const ReleaseUrl = z.string().min(1).max(2048).refine(isSafeKey, SAFE_KEY_MESSAGE);
export type ReleaseUrl = z.infer<typeof ReleaseUrl>;

/**
 * Instance parameters, SLA and connection parameters are flat string maps, as in SlapOS.
 * An empty value means the same as an absent one; `normalizeParameters` drops them.
 */
export const StringMap = z.record(z.string().min(1).max(256), z.string().max(65_536));
export type StringMap = z.infer<typeof StringMap>;

/** A JSON value, as a release's parameters schema types it. */
export type JsonValue = string | number | boolean | null | JsonValue[] | { [key: string]: JsonValue };

/** At most this many bytes of JSON per parameter value. */
const MAX_PARAMETER_JSON = 65_536;

/**
 * Instance parameters: any JSON value by name (SlapOS releases type them with a JSON Schema:
 * integers, booleans, enums, objects, arrays); strings stay the common case. An empty string
 * means the same as an absent parameter; `normalizeParameters` drops them.
 */
export const ParameterMap = z.record(
  z.string().min(1).max(256),
  z.json().refine((v) => JSON.stringify(v).length <= MAX_PARAMETER_JSON, `must be at most ${MAX_PARAMETER_JSON} bytes of JSON`),
);
export type ParameterMap = Record<string, JsonValue>;

/** A release's instance parameters schema: a JSON Schema object (draft-07, or 2020-12 by its `$schema`), checked by Ajv. */
export const ParametersSchema = z.record(z.string(), z.json()).refine((v) => JSON.stringify(v).length <= 1_048_576, "must be at most 1 MiB of JSON");
export type ParametersSchema = Record<string, JsonValue>;

export const RequestedState = z.enum(["started", "stopped", "destroyed"]);
export type RequestedState = z.infer<typeof RequestedState>;

export const SoftwareType = z.string().min(1).max(128);

/** Who caused an event: a user, a partition (its node acting for the instance it holds), or a service. */
export const Actor = z.discriminatedUnion("kind", [
  z.object({ kind: z.literal("user"), userId: UserId }),
  z.object({ kind: z.literal("partition"), computerId: ComputerId, partitionId: PartitionId }),
  z.object({ kind: z.literal("node"), computerId: ComputerId }),
  z.object({ kind: z.literal("service"), name: z.string().min(1).max(64) }),
]);
export type Actor = z.infer<typeof Actor>;

/** The requester of an instance: a user (root instance) or an instance, whose tree the new one joins. */
export const Requester = z.discriminatedUnion("kind", [
  z.object({ kind: z.literal("user"), userId: UserId }),
  z.object({ kind: z.literal("instance"), instanceId: InstanceId, treeId: TreeId }),
]);
export type Requester = z.infer<typeof Requester>;

const PortRange = z
  .object({ from: z.number().int().min(1).max(65_535), to: z.number().int().min(1).max(65_535) })
  .refine((r) => r.from <= r.to, { message: "from must not exceed to" });

export const PartitionSpec = z.object({
  partitionId: PartitionId,
  /** IPv4 or IPv6 address the instance in this partition listens on. */
  address: z.union([z.ipv4(), z.ipv6()]),
  ports: PortRange,
});
export type PartitionSpec = z.infer<typeof PartitionSpec>;

export const PromiseResult = z.object({
  name: z.string().min(1).max(256),
  ok: z.boolean(),
  message: z.string().max(65_536),
  durationMs: z.number().nonnegative(),
});
export type PromiseResult = z.infer<typeof PromiseResult>;

export const ProcessState = z.object({
  name: z.string().min(1).max(256),
  state: z.enum(["running", "exited", "stopped", "backoff"]),
  pid: z.number().int().positive().optional(),
  exitCode: z.number().int().optional(),
});

// ---------------------------------------------------------------------------------------------
// Aggregates: every event belongs to exactly one, which names its stream and subject.
// ---------------------------------------------------------------------------------------------

export const ComputerAggregate = z.object({ kind: z.literal("computer"), computerId: ComputerId });
export const PartitionAggregate = z.object({
  kind: z.literal("partition"),
  computerId: ComputerId,
  partitionId: PartitionId,
});
export const InstanceAggregate = z.object({ kind: z.literal("instance"), treeId: TreeId, instanceId: InstanceId });
export const Aggregate = z.discriminatedUnion("kind", [ComputerAggregate, PartitionAggregate, InstanceAggregate]);
export type Aggregate = z.infer<typeof Aggregate>;

// ---------------------------------------------------------------------------------------------
// The envelope: common to every event.
// ---------------------------------------------------------------------------------------------

const envelope = {
  /** ULID; also the de-duplication key of the commit it starts. */
  id: EventId,
  /** ISO-8601 time the event was decided (given to the decider, never read from a clock in core code). */
  time: z.iso.datetime({ offset: true }),
  /** The id of the first event of the story (usually the user's request). */
  correlationId: EventId,
  /** The id of the event or command that directly caused this one. */
  causationId: EventId,
  actor: Actor,
};

function event<T extends string, A extends z.ZodType, D extends z.ZodType>(type: T, aggregate: A, data: D) {
  return z.object({
    type: z.literal(type),
    schemaVersion: z.literal(1),
    ...envelope,
    aggregate,
    data,
  });
}

// --- computer -------------------------------------------------------------------------------

/** A node formatted its computer: its network and partitions. A later registration replaces the partition list. */
export const ComputerRegistered = event(
  "ComputerRegistered",
  ComputerAggregate,
  z.object({
    name: z.string().max(256).optional(),
    /** Network the computer belongs to; SLA `network_guid` and `mode=unique_by_network` use it. */
    networkId: z.string().max(128).optional(),
    partitions: z.array(PartitionSpec).min(1).max(10_000),
  }),
);

/** "Install release URL on this computer." */
export const SoftwareSupplied = event("SoftwareSupplied", ComputerAggregate, z.object({ releaseUrl: ReleaseUrl }));
/** "Remove release URL from this computer." */
export const SoftwareUnsupplied = event("SoftwareUnsupplied", ComputerAggregate, z.object({ releaseUrl: ReleaseUrl }));

export const SoftwareReleaseStatusReported = event(
  "SoftwareReleaseStatusReported",
  ComputerAggregate,
  z.object({
    releaseUrl: ReleaseUrl,
    status: z.enum(["building", "available", "error", "destroyed"]),
    /** Tail of the install log; expected with `error`. */
    log: z.string().max(65_536).optional(),
    /** With `available`: the release's instance parameters schema (JSON Schema), if it has one. */
    parametersSchema: ParametersSchema.optional(),
  }),
);

/** "Reprocess everything here": every instance placed on the computer is bumped (SlapOS's computer bang). */
export const ComputerBanged = event("ComputerBanged", ComputerAggregate, z.object({ message: z.string().max(65_536) }));

// --- partition ------------------------------------------------------------------------------

/** The allocator placed an instance on this partition. Appended with the partition's expected version. */
export const PartitionAllocated = event(
  "PartitionAllocated",
  PartitionAggregate,
  z.object({ instanceId: InstanceId, treeId: TreeId, releaseUrl: ReleaseUrl }),
);

/** The partition is free again (its instance was destroyed, or a losing allocation was undone). */
export const PartitionReleased = event(
  "PartitionReleased",
  PartitionAggregate,
  z.object({ instanceId: InstanceId, reason: z.enum(["destroyed", "superseded", "manual"]) }),
);

// --- instance -------------------------------------------------------------------------------

export const InstanceRequested = event(
  "InstanceRequested",
  InstanceAggregate,
  z.object({
    reference: z.string().min(1).max(512),
    releaseUrl: ReleaseUrl,
    softwareType: SoftwareType,
    parameters: ParameterMap,
    sla: StringMap,
    shared: z.boolean(),
    requestedState: RequestedState,
    requester: Requester,
  }),
);

/**
 * The same request came again with other parameters (or software type, SLA, or release): the
 * instance is bumped. `releaseUrl`, when present, is an upgrade in place: the same instance on
 * the same partition, processed with the new release once its computer has it available.
 */
export const InstanceParametersChanged = event(
  "InstanceParametersChanged",
  InstanceAggregate,
  z.object({ parameters: ParameterMap, softwareType: SoftwareType, sla: StringMap, releaseUrl: ReleaseUrl.optional() }),
);

export const InstanceRequestedStateChanged = event(
  "InstanceRequestedStateChanged",
  InstanceAggregate,
  z.object({ requestedState: RequestedState }),
);

/** A shared instance was attached to the host instance that will serve it. */
export const SharedInstanceAttached = event(
  "SharedInstanceAttached",
  InstanceAggregate,
  z.object({ hostInstanceId: InstanceId, hostTreeId: TreeId }),
);

/**
 * An instance published its connection parameters. For a shared instance they are published by
 * its host, and `publisher` names the host's partition.
 */
export const ConnectionParametersPublished = event(
  "ConnectionParametersPublished",
  InstanceAggregate,
  z.object({
    parameters: StringMap,
    publisher: z.object({ computerId: ComputerId, partitionId: PartitionId }),
    hostInstanceId: InstanceId.optional(),
  }),
);

export const InstanceStatusReported = event(
  "InstanceStatusReported",
  InstanceAggregate,
  z.object({
    status: z.enum(["processing", "started", "stopped", "error", "waiting"]),
    message: z.string().max(65_536).optional(),
    /** References of requested instances that are not ready yet (status `waiting`). */
    waitingFor: z.array(z.string().min(1).max(512)).max(1_000).optional(),
    promises: z.array(PromiseResult).max(1_000).optional(),
    processes: z.array(ProcessState).max(1_000).optional(),
    computerId: ComputerId,
    partitionId: PartitionId,
  }),
);

/** "Something is wrong, reprocess me": a watched service exited, or someone banged by hand. */
export const InstanceBanged = event(
  "InstanceBanged",
  InstanceAggregate,
  z.object({
    message: z.string().max(65_536),
    service: z.string().max(256).optional(),
    exitCode: z.number().int().optional(),
    signal: z.string().max(32).optional(),
    logTail: z.string().max(65_536).optional(),
  }),
);

/** The node stopped everything, ran the destroy hook and wiped the partition. */
export const InstanceDestroyed = event(
  "InstanceDestroyed",
  InstanceAggregate,
  z.object({ computerId: ComputerId.optional(), partitionId: PartitionId.optional() }),
);

/** Every domain event, discriminated by `type`. */
export const DomainEvent = z.discriminatedUnion("type", [
  ComputerRegistered,
  SoftwareSupplied,
  SoftwareUnsupplied,
  SoftwareReleaseStatusReported,
  ComputerBanged,
  PartitionAllocated,
  PartitionReleased,
  InstanceRequested,
  InstanceParametersChanged,
  InstanceRequestedStateChanged,
  SharedInstanceAttached,
  ConnectionParametersPublished,
  InstanceStatusReported,
  InstanceBanged,
  InstanceDestroyed,
]);
export type DomainEvent = z.infer<typeof DomainEvent>;
export type EventType = DomainEvent["type"];
export type EventOf<T extends EventType> = Extract<DomainEvent, { type: T }>;

/** The type names, for filters and documentation. */
export const EVENT_TYPES = DomainEvent.options.map((o) => o.shape.type.value) as readonly EventType[];

/** Drop empty values: in a request an empty parameter is the same as an absent one. Keys sorted. */
export function normalizeParameters<V>(parameters: Readonly<Record<string, V>>): Record<string, V> {
  const out: Record<string, V> = {};
  for (const key of Object.keys(parameters).sort()) {
    const value = parameters[key];
    if (value !== undefined && value !== "") out[key] = value;
  }
  return out;
}

/** JSON with every object's keys sorted: equal for equal values whatever their key order (compare, hash). */
export function canonicalJson(value: unknown): string {
  return JSON.stringify(value, (_key, v: unknown) =>
    v !== null && typeof v === "object" && !Array.isArray(v) ? Object.fromEntries(Object.entries(v as Record<string, unknown>).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))) : v,
  );
}
