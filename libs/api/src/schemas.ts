import { z } from "zod";
import { Actor, Requester, RequestedState } from "@slap/events";

// The master's answers (API.md), parsed at the boundary by every client like every other input.
// Views are loose objects: fields a client does not know are kept (the CLI's --json shows them).

const Text = z.string();
const Map = z.record(z.string(), z.string());
/** Instance parameters: any JSON value by name. */
const Parameters = z.record(z.string(), z.json());

/** How an instance is doing (its promises), from its node's last outcome report; null until then and while stopped. */
export const InstanceHealth = z
  .object({
    ok: z.boolean(),
    promises: z.array(z.object({ name: Text, ok: z.boolean(), message: Text, durationMs: z.number().optional() })),
    message: Text.nullable().describe("what fails: the failed promises' messages, or the processing's error"),
    since: Text.describe("when it last turned ok or failing (ISO-8601)"),
  })
  .nullable();
export type InstanceHealth = z.infer<typeof InstanceHealth>;

/**
 * The answer to a request, as in SlapOS's asynchronous flow: `pending` (HTTP 202, "ask again",
 * with the reason and a retry hint) until the instance is placed and has published its
 * connection parameters, then `ready` (HTTP 200) with them. A destroyed instance answers
 * `destroyed` once its node has wiped it. `health`, once its node reported how it is doing:
 * ready means published (SlapOS's meaning), not healthy.
 */
export const Answer = z.discriminatedUnion("status", [
  z.looseObject({
    status: z.literal("pending"),
    instanceId: Text,
    reference: Text,
    reason: Text,
    retryAfterMs: z.number(),
    blocked: Text.optional().describe("nothing can progress until this cause is fixed (still pending: fixing it makes the request progress)"),
    health: InstanceHealth.optional(),
  }),
  z.looseObject({ status: z.literal("ready"), instanceId: Text, reference: Text, connection: Map, health: InstanceHealth.optional() }),
  z.looseObject({ status: z.literal("destroyed"), instanceId: Text, reference: Text }),
]);
export type Answer = z.infer<typeof Answer>;

/** Whether a node answers (API.md, "Liveness"): what this master process heard, now; not an event. */
export const Liveness = z.object({
  state: z.enum(["responsive", "unresponsive", "unknown"]),
  lastSeen: Text.nullable().describe("when the master last heard from the node (ISO-8601); null: not since it started"),
});
export type Liveness = z.infer<typeof Liveness>;

/** The liveness of the node an instance runs on (in a live read; null when it runs nowhere). */
export const NodeLiveness = Liveness.extend({ computerId: Text });
export type NodeLiveness = z.infer<typeof NodeLiveness>;

export const InstanceView = z.looseObject({
  instanceId: Text,
  treeId: Text,
  reference: Text,
  releaseUrl: Text,
  softwareType: Text,
  parameters: Parameters,
  sla: Map,
  shared: z.boolean(),
  requestedState: RequestedState,
  requester: Requester,
  requestedAt: Text,
  updatedAt: Text,
  serial: z.number(),
  placement: z.object({ computerId: Text, partitionId: Text }).nullable(),
  host: z.object({ instanceId: Text, treeId: Text }).nullable(),
  connection: Map.nullable(),
  status: z
    .looseObject({
      status: Text,
      message: Text.nullable(),
      waitingFor: z.array(Text),
      promises: z.array(z.looseObject({ name: Text, ok: z.boolean(), message: Text })),
      processes: z.array(z.looseObject({ name: Text, state: Text })),
      computerId: Text,
      partitionId: Text,
      at: Text,
    })
    .nullable(),
  health: InstanceHealth,
  lastBang: z.looseObject({ message: Text, at: Text }).nullable(),
  destroyed: z.boolean(),
}).describe("an instance; in a live read also `node` (NodeLiveness or null): whether the node it runs on answers");
export type InstanceView = z.infer<typeof InstanceView>;

export const TreeView = z.looseObject({ treeId: Text, rootInstanceId: Text, instanceIds: z.array(Text) });
export type TreeView = z.infer<typeof TreeView>;

/** The moment a read was answered at, when it was asked with `asOf`/`at` (API.md, "As of"). */
export const AsOfInfo = z.object({ time: Text.nullable(), position: z.number().int().min(0) });
export type AsOfInfo = z.infer<typeof AsOfInfo>;

export const InstanceList = z.looseObject({ instances: z.array(InstanceView), trees: z.array(TreeView), asOf: AsOfInfo.optional() });
export type InstanceList = z.infer<typeof InstanceList>;

export const InstanceDetails = z.looseObject({ instance: InstanceView, answer: Answer, sharedInstances: z.array(InstanceView), asOf: AsOfInfo.optional() });
export type InstanceDetails = z.infer<typeof InstanceDetails>;

export const PartitionView = z.looseObject({
  partitionId: Text,
  address: Text,
  ports: z.object({ from: z.number(), to: z.number() }),
  instanceId: Text.nullable(),
  treeId: Text.nullable(),
  supersededClaim: z.object({ instanceId: Text }).nullable().optional(),
});
export type PartitionView = z.infer<typeof PartitionView>;

export const SoftwareView = z.looseObject({ releaseUrl: Text, supplied: z.boolean(), status: Text, log: Text.nullable(), updatedAt: Text });
export type SoftwareView = z.infer<typeof SoftwareView>;

export const ComputerView = z.looseObject({
  computerId: Text,
  name: Text.nullable(),
  networkId: Text.nullable(),
  partitions: z.record(z.string(), PartitionView),
  software: z.record(z.string(), SoftwareView),
}).describe("a computer; in a live read also `liveness` (Liveness): whether its node answers");
export type ComputerView = z.infer<typeof ComputerView>;

export const ComputerList = z.looseObject({ computers: z.array(ComputerView), asOf: AsOfInfo.optional() });
export type ComputerList = z.infer<typeof ComputerList>;

export const ComputerDetails = z.looseObject({ computer: ComputerView, asOf: AsOfInfo.optional() });
export type ComputerDetails = z.infer<typeof ComputerDetails>;

/** A command accepted: the log position of its last event (send it as `x-slap-seen` to read after it). */
export const Appended = z.looseObject({ position: z.number().int().min(0) });
export type Appended = z.infer<typeof Appended>;

/** A command about an instance accepted. */
export const InstanceChanged = Appended.extend({ instanceId: Text });
export type InstanceChanged = z.infer<typeof InstanceChanged>;

/** A command about a computer accepted. */
export const ComputerChanged = Appended.extend({ computerId: Text });
export type ComputerChanged = z.infer<typeof ComputerChanged>;

const Revision = z.number().int().min(0);
const SoftwareStatus = z.enum(["unknown", "building", "available", "error", "destroyed"]);

/**
 * A computer's desired state (API.md, "Desired state"): all its node reads of the master, and
 * nothing of other computers. `revision` is the log position of its last change (ask for a newer
 * one with `?index=`); each partition's `revision` that of its own entry's last change.
 */
export const DesiredState = z.looseObject({
  computerId: Text,
  revision: Revision,
  position: Revision.describe("the log position of the read models it was read from"),
  partitions: z.array(
    z.looseObject({
      partitionId: Text,
      address: Text,
      ports: z.object({ from: z.number().int(), to: z.number().int() }),
      revision: Revision,
      instance: InstanceView.pick({ instanceId: true, treeId: true, reference: true, releaseUrl: true, softwareType: true, parameters: true, requestedState: true, serial: true })
        .extend({
          destroyed: z.boolean(),
          sharedInstances: z.array(InstanceView.pick({ instanceId: true, reference: true, parameters: true, requestedState: true, serial: true })),
          requested: z.array(z.looseObject({ instanceId: Text, reference: Text, connection: Map })),
        })
        .nullable(),
    }),
  ),
  software: z.array(z.looseObject({ releaseUrl: Text, supplied: z.boolean(), status: SoftwareStatus })),
});
export type DesiredState = z.infer<typeof DesiredState>;

/** A heartbeat heard: the computer's liveness now. */
export const HeartbeatAnswer = z.looseObject({ computerId: Text, liveness: Liveness });
export type HeartbeatAnswer = z.infer<typeof HeartbeatAnswer>;

export const Health = z.looseObject({ ok: z.literal(true), position: z.number().int().min(0) });
export type Health = z.infer<typeof Health>;

/**
 * Whether the master can serve (`GET /readyz`): its event store answers and its read models have
 * caught up with the log's head. `reason` says why not (503).
 */
export const Readiness = z.looseObject({ ready: z.boolean(), position: z.number().int().min(0), head: z.number().int().min(0).nullable(), reason: Text.optional() });
export type Readiness = z.infer<typeof Readiness>;

/** An API token as it may be shown: never the secret; `id` is the start of its SHA-256. */
export const TokenInfo = z.looseObject({
  id: z.string().regex(/^[0-9a-f]{16}$/),
  role: z.enum(["admin", "user", "node", "metrics"]),
  user: Text.optional(),
  computer: Text.optional(),
  name: z.string().optional(),
});
export type TokenInfo = z.infer<typeof TokenInfo>;

/** The tokens of the master's token file. */
export const TokenList = z.looseObject({ tokens: z.array(TokenInfo), file: z.string() });
export type TokenList = z.infer<typeof TokenList>;

/** A token revoked: what it was. */
export const TokenRevoked = z.looseObject({ revoked: TokenInfo });
export type TokenRevoked = z.infer<typeof TokenRevoked>;

/** The actor a token (and `x-slap-partition`) names. */
export const WhoAmI = z.looseObject({ actor: Actor });
export type WhoAmI = z.infer<typeof WhoAmI>;

/** An event of the log as the master serves it: the envelope the CLI prints, the rest kept. */
export const EventRecord = z.looseObject({
  position: z.number().int(),
  streamKey: Text,
  event: z.looseObject({ id: Text, type: Text, time: Text, correlationId: Text }),
});
export type EventRecord = z.infer<typeof EventRecord>;

export const EventPage = z.looseObject({ events: z.array(EventRecord), next: z.number().int().min(0) });

export const AuditReport = z.object({
  position: z.number().int().min(0),
  rebuiltUpTo: z.number().int().min(0),
  rebuildMs: z.number().min(0),
  equal: z.boolean(),
  models: z.array(z.object({ name: Text, differences: z.array(z.object({ path: z.string(), live: z.unknown(), rebuilt: z.unknown() })) })),
});
export type AuditReport = z.infer<typeof AuditReport>;
export type EventPage = z.infer<typeof EventPage>;

/** The codes of `ApiError`, by HTTP status. A client must accept others (it shows them as they are). */
export const ERROR_CODES = {
  400: "BadRequest",
  401: "Unauthorized",
  403: "Forbidden",
  404: "NotFound",
  409: "Conflict",
  413: "TooLarge",
  429: "TooManyRequests",
  431: "BadRequest",
  500: "Internal",
} as const;

/**
 * Every refusal and failure of the master: `{ error: { code, message, issues? } }`, never a stack
 * trace. `issues` (a 400) names every offending field by its path (`parameters.x`, `at`).
 */
export const ApiError = z.object({
  error: z.looseObject({
    code: Text.describe("BadRequest, Unauthorized, Forbidden, NotFound, Conflict or Internal"),
    message: Text,
    issues: z.array(z.looseObject({ path: Text, message: Text })).optional(),
  }),
});
export type ApiError = z.infer<typeof ApiError>;
