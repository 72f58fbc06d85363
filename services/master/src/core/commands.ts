import { z } from "zod";
import { ComputerId, PartitionSpec, ReleaseUrl, RequestedState, StringMap, Token } from "@slap/events";

/**
 * Commands the master accepts. Each is the body of one HTTP endpoint, parsed with zod; the
 * sender (`Actor`) comes from the request's credentials, never from the body.
 */

export const RegisterComputer = z.object({
  computerId: ComputerId,
  name: z.string().max(256).optional(),
  networkId: z.string().max(128).optional(),
  partitions: z.array(PartitionSpec).min(1).max(10_000),
});
export type RegisterComputer = z.infer<typeof RegisterComputer>;

export const SupplySoftware = z.object({
  releaseUrl: ReleaseUrl,
  /** `available`: install it; `destroyed`: remove it. */
  state: z.enum(["available", "destroyed"]).default("available"),
});
export type SupplySoftware = z.infer<typeof SupplySoftware>;

export const ReportSoftwareStatus = z.object({
  releaseUrl: ReleaseUrl,
  status: z.enum(["building", "available", "error", "destroyed"]),
  log: z.string().max(65_536).optional(),
});
export type ReportSoftwareStatus = z.infer<typeof ReportSoftwareStatus>;

/**
 * `request(release, reference, parameters, software type, SLA, shared, state)`. Idempotent:
 * the key is (requester's tree, or the user) + reference. Empty parameter and SLA values are
 * the same as absent ones.
 */
export const RequestInstance = z.object({
  releaseUrl: ReleaseUrl,
  reference: z.string().min(1).max(512),
  softwareType: z.string().min(1).max(128).default("default"),
  parameters: StringMap.default({}),
  sla: StringMap.default({}),
  shared: z.boolean().default(false),
  state: RequestedState.default("started"),
});
export type RequestInstance = z.infer<typeof RequestInstance>;

export const ChangeRequestedState = z.object({ state: RequestedState });
export type ChangeRequestedState = z.infer<typeof ChangeRequestedState>;

/** A bang by hand (a message), or by a node when a watched service exits (with its details). */
export const Bang = z.object({
  message: z.string().min(1).max(65_536).default("banged by hand"),
  service: z.string().min(1).max(256).optional(),
  exitCode: z.number().int().optional(),
  signal: z.string().min(1).max(32).optional(),
  logTail: z.string().max(65_536).optional(),
});
export type Bang = z.infer<typeof Bang>;

export const PublishConnectionParameters = z.object({ parameters: StringMap });
export type PublishConnectionParameters = z.infer<typeof PublishConnectionParameters>;

export const ReportInstanceStatus = z.object({
  status: z.enum(["processing", "started", "stopped", "error", "waiting"]),
  message: z.string().max(65_536).optional(),
  waitingFor: z.array(z.string().min(1).max(512)).max(1_000).optional(),
  promises: z
    .array(z.object({ name: z.string().min(1).max(256), ok: z.boolean(), message: z.string().max(65_536), durationMs: z.number().nonnegative() }))
    .max(1_000)
    .optional(),
  processes: z
    .array(
      z.object({
        name: z.string().min(1).max(256),
        state: z.enum(["running", "exited", "stopped", "backoff"]),
        pid: z.number().int().positive().optional(),
        exitCode: z.number().int().optional(),
      }),
    )
    .max(1_000)
    .optional(),
});
export type ReportInstanceStatus = z.infer<typeof ReportInstanceStatus>;

/** Reported by the node once an instance is wiped: the partition is free again. */
export const ReportDestroyed = z.object({});

export const InstanceIdParam = z.object({ instanceId: Token });
export const ComputerIdParam = z.object({ computerId: ComputerId });
export const ReferenceParam = z.object({ reference: z.string().min(1).max(512) });

const POSITION = "must be a log position (an integer, 0 or more)";

/**
 * A past moment to answer a read at (API.md, "As of"): `asOf`, an ISO-8601 time with `Z` or an
 * offset, or `at`, a log position; at most one (see `oneMoment`). The read models are then the
 * log's prefix up to the last commit whose first event's time is at or before `asOf` (or up to
 * position `at`), folded afresh.
 */
/**
 * A log position written in decimal digits (a query or header value). Not `z.coerce.number()`,
 * which reads "" as 0 and "0x10" as 16.
 */
export const LogPosition = z
  .string({ error: POSITION })
  .regex(/^\d{1,15}$/, { error: POSITION })
  .transform(Number);

export const AsOfQuery = z.object({
  asOf: z.iso.datetime({ offset: true, error: "must be an ISO-8601 time with Z or an offset, e.g. 2026-11-23T10:00:00Z" }).optional(),
  at: LogPosition.optional(),
});
export type AsOfQuery = z.infer<typeof AsOfQuery>;

/** The refinement of a query with `AsOfQuery`'s fields: `asOf` and `at` name a moment each, so not both. */
export const oneMoment = {
  check: (query: { asOf?: string | undefined; at?: number | undefined }): boolean => query.asOf === undefined || query.at === undefined,
  issue: { message: "give asOf or at, not both", path: ["at"] },
};
