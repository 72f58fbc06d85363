import { z } from "zod";
import {
  AsOfQuery,
  Bang,
  ChangeRequestedState,
  PublishConnectionParameters,
  RegisterComputer,
  ReportInstanceStatus,
  ReportSoftwareStatus,
  RequestInstance,
  SupplySoftware,
} from "../core/commands.js";

const json = (schema: z.ZodType) => z.toJSONSchema(schema, { io: "input", unrepresentable: "any" });

const ErrorBody = z.object({
  error: z.object({
    code: z.enum(["BadRequest", "Unauthorized", "Forbidden", "NotFound", "Conflict", "Internal"]),
    message: z.string(),
    issues: z.array(z.object({ path: z.string(), message: z.string() })).optional(),
  }),
});

const AnswerBody = z.discriminatedUnion("status", [
  z.object({ status: z.literal("pending"), instanceId: z.string(), reference: z.string(), reason: z.string(), retryAfterMs: z.number() }),
  z.object({ status: z.literal("ready"), instanceId: z.string(), reference: z.string(), connection: z.record(z.string(), z.string()) }),
  z.object({ status: z.literal("destroyed"), instanceId: z.string(), reference: z.string() }),
]);

const Liveness = z.object({
  state: z.enum(["responsive", "unresponsive", "unknown"]),
  lastSeen: z.string().nullable().describe("when the master last heard from the node (ISO-8601); null: not since it started"),
});
const HeartbeatAnswer = z.object({ computerId: z.string(), liveness: Liveness });

const errors = {
  "400": { description: "invalid input; `issues` names every field path", content: { "application/json": { schema: json(ErrorBody) } } },
  "403": { description: "the sender may not do this", content: { "application/json": { schema: json(ErrorBody) } } },
  "404": { description: "no such instance or computer", content: { "application/json": { schema: json(ErrorBody) } } },
  "409": { description: "conflicts with what exists", content: { "application/json": { schema: json(ErrorBody) } } },
};

const body = (schema: z.ZodType) => ({ required: true, content: { "application/json": { schema: json(schema) } } });
const ok = (description: string) => ({ "200": { description }, ...errors });
const answer = {
  "200": { description: "ready (or destroyed): the connection parameters", content: { "application/json": { schema: json(AnswerBody) } } },
  "202": { description: "pending: ask again after retryAfterMs, or watch", content: { "application/json": { schema: json(AnswerBody) } } },
  ...errors,
};
const instanceId = { name: "instanceId", in: "path", required: true, schema: { type: "string", pattern: "^[A-Za-z0-9_-]{1,64}$" } };
const asOfDescriptions: Record<keyof typeof AsOfQuery.shape, string> = {
  asOf: "read as of this time: the log prefix up to the last commit whose first event's time is at or before it, folded afresh (a full fold per request); the body then has asOf: { time, position }",
  at: "read as of this log position (instead of asOf)",
};
/** `asOf` and `at` (at most one), from the zod schema that parses them. */
const asOf = Object.entries(AsOfQuery.shape).map(([name, schema]) => ({
  name,
  in: "query",
  schema: json(schema),
  description: asOfDescriptions[name as keyof typeof AsOfQuery.shape],
}));
const secrets = { name: "secrets", in: "query", schema: { type: "string", enum: ["0", "1", "true", "false"] }, description: "show secret connection values" };
const computerId = { name: "computerId", in: "path", required: true, schema: { type: "string", pattern: "^[A-Za-z0-9_-]{1,64}$" } };

let cached: unknown;

/** The OpenAPI 3.1 document of the API, generated from the zod schemas that parse the bodies. */
export function openApiDocument(): unknown {
  cached ??= {
    openapi: "3.1.0",
    info: { title: "slap master", version: "1", description: "Request instances, get them placed, get their connection parameters. See services/master/API.md." },
    components: {
      securitySchemes: {
        token: { type: "http", scheme: "bearer", description: "an API token of the master's token file: role admin, user or node" },
        partition: { type: "apiKey", in: "header", name: "x-slap-partition", description: "with a node's token: act for <computerId>/<partitionId> of that node's computer" },
      },
    },
    security: [{ token: [] }],
    paths: {
      "/v1/requests": {
        post: {
          summary: "Request an instance (idempotent); 202 pending until placed and published, then 200 with the connection parameters",
          parameters: [{ name: "wait", in: "query", schema: { type: "integer", minimum: 0, maximum: 60_000 }, description: "long-poll up to this many ms" }],
          requestBody: body(RequestInstance),
          responses: answer,
        },
      },
      "/v1/instances": { get: { summary: "The caller's instances and trees (now, or as of a past moment)", parameters: [secrets, ...asOf], responses: ok("instances and trees") } },
      "/v1/instances/{instanceId}": { get: { parameters: [instanceId, secrets, ...asOf], responses: ok("instance, answer and shared instances") } },
      "/v1/references/{reference}": {
        get: { parameters: [{ name: "reference", in: "path", required: true, schema: { type: "string" } }, secrets, ...asOf], responses: ok("instance, answer and shared instances") },
      },
      "/v1/instances/{instanceId}/watch": { get: { parameters: [instanceId], summary: "Server-sent events: the answer now and at every change", responses: ok("text/event-stream") } },
      "/v1/instances/{instanceId}/state": { post: { parameters: [instanceId], requestBody: body(ChangeRequestedState), responses: answer } },
      "/v1/instances/{instanceId}/bang": { post: { parameters: [instanceId], requestBody: body(Bang), responses: ok("banged") } },
      "/v1/instances/{instanceId}/connection": { post: { parameters: [instanceId], requestBody: body(PublishConnectionParameters), responses: ok("published") } },
      "/v1/instances/{instanceId}/status": { post: { parameters: [instanceId], requestBody: body(ReportInstanceStatus), responses: ok("reported") } },
      "/v1/instances/{instanceId}/destroyed": { post: { parameters: [instanceId], responses: ok("destroyed, partition released") } },
      "/v1/computers": { get: { parameters: asOf, responses: ok("computers, each (in a live read) with liveness: { state, lastSeen }") }, post: { requestBody: body(RegisterComputer), responses: ok("registered") } },
      "/v1/computers/{computerId}": { get: { parameters: [computerId, ...asOf], responses: ok("computer (in a live read) with liveness: { state, lastSeen }") } },
      "/v1/computers/{computerId}/supply": { post: { parameters: [computerId], requestBody: body(SupplySoftware), responses: ok("supplied") } },
      "/v1/computers/{computerId}/software": { post: { parameters: [computerId], requestBody: body(ReportSoftwareStatus), responses: ok("reported") } },
      "/v1/computers/{computerId}/heartbeat": {
        post: {
          summary: "The node's sign of life (its own computer only; no body); not an event: the master keeps the time in memory",
          parameters: [computerId],
          responses: {
            "200": { description: "heard", content: { "application/json": { schema: json(HeartbeatAnswer) } } },
            ...errors,
          },
        },
      },
      "/v1/events": { get: { summary: "The event log, filtered", responses: ok("events and the next position") } },
      "/v1/events/stream": { get: { summary: "Server-sent events: the log, live", responses: ok("text/event-stream") } },
      "/v1/whoami": { get: { summary: "The actor the token names", responses: ok("{ actor }") } },
      "/v1/audit": { get: { summary: "Every read model against a rebuild from the log (admin)", responses: ok("audit") } },
      "/healthz": { get: { security: [], responses: ok("alive") } },
      "/openapi.json": { get: { security: [], responses: ok("this document") } },
      "/dashboard": { get: { security: [], summary: "The live dashboard (a page that asks for a token; also at /)", responses: ok("text/html") } },
    },
  };
  return cached;
}
