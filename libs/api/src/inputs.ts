import { z } from "zod";
import { ComputerId, EVENT_TYPES, ParameterMap, ParametersSchema, PartitionSpec, ReleaseUrl, RequestedState, StringMap, Token } from "@slap/events";

// What the master accepts: each command is the body of one route (routes.ts), parsed with zod by
// the master; the sender (`Actor`) comes from the request's credentials, never from the body.

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
  /** With `available`: the release's instance parameters schema (JSON Schema), if it has one. */
  parametersSchema: ParametersSchema.optional(),
});
export type ReportSoftwareStatus = z.infer<typeof ReportSoftwareStatus>;

/**
 * `request(release, reference, parameters, software type, SLA, shared, state)`. Idempotent:
 * the key is (requester's tree, or the user) + reference. Empty parameter and SLA values are
 * the same as absent ones. Parameters are any JSON value (strings the common case), checked
 * against the release's schema when the master knows it; the SLA is strings.
 */
export const RequestInstance = z.object({
  releaseUrl: ReleaseUrl,
  reference: z.string().min(1).max(512),
  softwareType: z.string().min(1).max(128).default("default"),
  parameters: ParameterMap.default({}),
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

/** `POST /v1/computers/:id/bang`: every instance on the computer is processed again. */
export const BangComputer = z.object({ message: z.string().min(1).max(65_536).default("computer banged by hand") });
export type BangComputer = z.infer<typeof BangComputer>;

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

/** The body of a route that takes none (a heartbeat; a node reporting an instance wiped): absent or `{}`. */
export const EmptyBody = z.object({}).strict();

export const InstanceIdParam = z.object({ instanceId: Token });
export const ComputerIdParam = z.object({ computerId: ComputerId });
export const ReferenceParam = z.object({ reference: z.string().min(1).max(512) });

const POSITION = "must be a log position (an integer, 0 or more)";

/**
 * A log position written in decimal digits (a query or header value). Not `z.coerce.number()`,
 * which reads "" as 0 and "0x10" as 16.
 */
export const LogPosition = z
  .string({ error: POSITION })
  .regex(/^\d{1,15}$/, { error: POSITION })
  .transform(Number);

/** `x-slap-seen`: a log position the caller has seen; the answer waits (a few seconds at most) for the read models to include it. */
export const SeenHeader = LogPosition;

/** `x-slap-revision`: the desired-state revision a node's write answers (logged with the write; never waited for). */
export const RevisionHeader = LogPosition;

/**
 * A past moment to answer a read at (API.md, "As of"): `asOf`, an ISO-8601 time with `Z` or an
 * offset, or `at`, a log position; at most one (see `oneMoment`). The read models are then the
 * log's prefix up to the last commit whose first event's time is at or before `asOf` (or up to
 * position `at`), folded afresh.
 */
export const AsOfQuery = z.object({
  asOf: z.iso
    .datetime({ offset: true, error: "must be an ISO-8601 time with Z or an offset, e.g. 2026-11-23T10:00:00Z" })
    .optional()
    .describe(
      "read as of this time: the log prefix up to the last commit whose first event's time is at or before it, folded afresh (a full fold per request); the body then has asOf: { time, position }",
    ),
  at: LogPosition.optional().describe("read as of this log position (instead of asOf)"),
});
export type AsOfQuery = z.infer<typeof AsOfQuery>;

/** The refinement of a query with `AsOfQuery`'s fields: `asOf` and `at` name a moment each, so not both. */
export const oneMoment = {
  check: (query: { asOf?: string | undefined; at?: number | undefined }): boolean => query.asOf === undefined || query.at === undefined,
  issue: { message: "give asOf or at, not both", path: ["at"] },
};

const Flag = z.enum(["0", "1", "true", "false"]);

/** `?secrets=1`: show secret-looking values (masked by key name otherwise). */
export const SecretsQuery = z.object({ secrets: Flag.optional().describe("show secret connection and parameter values (1 or true)") });

/** `GET /v1/instances/:id/watch`: a watch serves the requester, so its answers are never masked; `secrets` is taken, not needed. */
export const WatchQuery = z.object({ secrets: Flag.optional().describe("taken for symmetry with the reads; a watch's answers are never masked") });

/** Whether a `secrets` query value asks for the secrets. */
export const showSecrets = (query: { secrets?: string | undefined }): boolean => query.secrets === "1" || query.secrets === "true";

/** `POST /v1/requests?wait=ms`: long-poll up to this many milliseconds for an answer that is not pending. */
export const WaitQuery = z.object({ wait: z.coerce.number().int().min(0).max(60_000).default(0).describe("long-poll up to this many ms") });

/** `GET /v1/computers/:id/desired?index=N&wait=ms`: a blocking query, answered once the revision is past N or after `wait` ms. */
export const DesiredQuery = z.object({
  index: LogPosition.optional().describe("answer once the desired state's revision is greater than this (default: at once)"),
  wait: z.coerce.number().int().min(0).max(60_000).default(0).describe("how long, in ms, to wait for a newer revision before answering the current one"),
});

/** A read of instances: secrets or not, now or as of a past moment. */
export const ReadQuery = SecretsQuery.extend(AsOfQuery.shape).refine(oneMoment.check, oneMoment.issue);
export type ReadQuery = z.infer<typeof ReadQuery>;

/** A read of computers: now or as of a past moment. */
export const MomentQuery = AsOfQuery.refine(oneMoment.check, oneMoment.issue);

/** A page of the log (`GET /v1/events`) or its live stream (`GET /v1/events/stream`, where `limit` is not used). */
export const EventsQuery = z.object({
  after: z.coerce.number().int().min(0).default(0).describe("events after this log position"),
  limit: z.coerce.number().int().min(1).max(10_000).default(1_000).describe("at most this many events"),
  filter: z
    .string()
    .regex(/^[A-Za-z0-9_*>.-]{1,256}$/, "must be a subject filter such as tree.<id>.>")
    .optional()
    .describe("a subject filter such as tree.<id>.>"),
  type: z.enum(EVENT_TYPES as unknown as [string, ...string[]]).optional().describe("only events of this type"),
  since: z.iso.datetime({ offset: true }).optional().describe("only events at or after this time"),
  secrets: Flag.optional().describe("show secret parameter values (1 or true)"),
});
export type EventsQuery = z.infer<typeof EventsQuery>;

/** A token's id (`GET /v1/tokens`): the first 16 hex digits of its SHA-256. */
export const TokenIdParam = z.object({ tokenId: z.string().regex(/^[0-9a-f]{16}$/, "must be a token id: 16 hex digits (slap token list)") });
