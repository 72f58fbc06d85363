import { z } from "zod";
import { Requester, RequestedState } from "@slap/events";

// The master's answers (API.md), parsed at the boundary by every client like every other input.
// Views are loose objects: fields a client does not know are kept (the CLI's --json shows them).

const Text = z.string();
const Map = z.record(z.string(), z.string());

/**
 * The answer to a request, as in SlapOS's asynchronous flow: `pending` (HTTP 202, "ask again",
 * with the reason and a retry hint) until the instance is placed and has published its
 * connection parameters, then `ready` (HTTP 200) with them. A destroyed instance answers
 * `destroyed` once its node has wiped it.
 */
export const Answer = z.discriminatedUnion("status", [
  z.looseObject({ status: z.literal("pending"), instanceId: Text, reference: Text, reason: Text, retryAfterMs: z.number() }),
  z.looseObject({ status: z.literal("ready"), instanceId: Text, reference: Text, connection: Map }),
  z.looseObject({ status: z.literal("destroyed"), instanceId: Text, reference: Text }),
]);
export type Answer = z.infer<typeof Answer>;

export const InstanceView = z.looseObject({
  instanceId: Text,
  treeId: Text,
  reference: Text,
  releaseUrl: Text,
  softwareType: Text,
  parameters: Map,
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
  lastBang: z.looseObject({ message: Text, at: Text }).nullable(),
  destroyed: z.boolean(),
});
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
});
export type ComputerView = z.infer<typeof ComputerView>;

export const ComputerList = z.looseObject({ computers: z.array(ComputerView), asOf: AsOfInfo.optional() });
export type ComputerList = z.infer<typeof ComputerList>;

export const Appended = z.looseObject({ position: z.number().int().min(0) });

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

export const ApiError = z.object({
  error: z.looseObject({
    code: Text,
    message: Text,
    issues: z.array(z.looseObject({ path: Text, message: Text })).optional(),
  }),
});
export type ApiError = z.infer<typeof ApiError>;
