import { z } from "zod";
import {
  Answer,
  ApiError,
  AuditReport,
  ComputerChanged,
  ComputerDetails,
  ComputerList,
  DesiredState,
  EventPage,
  EventRecord,
  Health,
  HeartbeatAnswer,
  InstanceChanged,
  InstanceDetails,
  InstanceList,
  Readiness,
  TokenList,
  TokenRevoked,
  WhoAmI,
} from "./schemas.js";
import {
  Bang,
  BangComputer,
  ChangeRequestedState,
  ComputerIdParam,
  DesiredQuery,
  EmptyBody,
  EventsQuery,
  InstanceIdParam,
  MomentQuery,
  PublishConnectionParameters,
  ReadQuery,
  ReferenceParam,
  RegisterComputer,
  ReportInstanceStatus,
  ReportSoftwareStatus,
  RequestInstance,
  SupplySoftware,
  TokenIdParam,
  WaitQuery,
  WatchQuery,
} from "./inputs.js";

/**
 * Who may call a route: a token of the master's token file names a role (`admin`, `user`,
 * `node`); `partition` is a node's token with `x-slap-partition: <computerId>/<partitionId>`.
 * The route table says who may call at all; what each may see or change (their own trees, their
 * own computer) is the master's policy, refused with 403/404. `metrics` is a scraper's token: it
 * may read `GET /metrics` and nothing else.
 */
export type Role = "admin" | "user" | "node" | "partition" | "metrics";

/** One answer of a route: a JSON body, or a stream of server-sent events, or a static file. */
export type ResponseSpec =
  | { description: string; body: z.ZodType }
  | { description: string; stream: { event: string; data: z.ZodType } }
  | { description: string; file: string };

/** One operation of the master's HTTP API: everything a server, a client, a fuzzer and the OpenAPI document need. */
export interface RouteSpec {
  operationId: string;
  method: "GET" | "POST";
  /** The path in OpenAPI's form: `/v1/instances/{instanceId}`. */
  path: string;
  summary: string;
  /** `public`: no token needed; else the roles that may call it. */
  auth: "public" | readonly Role[];
  params?: z.ZodObject;
  query?: z.ZodType;
  body?: z.ZodType;
  /** Every answer by status, success and error ones. */
  responses: Readonly<Record<number, ResponseSpec>>;
}

const error = (description: string) => ({ description, body: ApiError });
const E = {
  400: error("invalid input: `issues` names every field path"),
  401: error("no token, or a token the master does not know"),
  403: error("the sender may not do this"),
  404: error("no such instance or computer (or one the sender may not see)"),
  409: error("conflicts with what exists"),
  500: error("the master could not complete the request; it is logged"),
} as const;
/** The errors of a route that needs a token and takes input. */
const refusals = { 400: E[400], 401: E[401], 403: E[403], 500: E[500] } as const;
const ALL: readonly Role[] = ["admin", "user", "node", "partition"];

const answer = {
  200: { description: "ready (or destroyed): the connection parameters", body: Answer },
  202: { description: "pending: ask again after retryAfterMs, or watch", body: Answer },
} as const;

/**
 * The master's HTTP API (API.md), one entry per operation, keyed by operationId. The master
 * registers its handlers for these entries, `GET /openapi.json` is generated from them, the
 * clients (`MasterClient`) call through them and the hostile-input tests fuzz them.
 */
export const routes = {
  health: {
    operationId: "health",
    method: "GET",
    path: "/healthz",
    summary: "Whether the master answers, and the log position its read models are at",
    auth: "public",
    responses: { 200: { description: "alive", body: Health }, 500: E[500] },
  },
  ready: {
    operationId: "ready",
    method: "GET",
    path: "/readyz",
    summary: "Readiness (not liveness: that is /healthz): 200 once the event store answers and the read models have caught up with its head, 503 until then",
    auth: "public",
    responses: { 200: { description: "ready", body: Readiness }, 503: { description: "not ready: `reason` says why", body: Readiness }, 500: E[500] },
  },
  metrics: {
    operationId: "metrics",
    method: "GET",
    path: "/metrics",
    summary: "Prometheus metrics (text exposition format): requests, latency, log position and lag, instances, allocations, node liveness (admin or a metrics token)",
    auth: ["admin", "metrics"],
    responses: { 200: { description: "the metrics", file: "text/plain; version=0.0.4; charset=utf-8" }, 401: E[401], 403: E[403], 500: E[500] },
  },
  listTokens: {
    operationId: "listTokens",
    method: "GET",
    path: "/v1/tokens",
    summary: "The tokens of the master's token file: ids, roles, users, computers, names — never a secret (admin)",
    auth: ["admin"],
    responses: { 200: { description: "the tokens", body: TokenList }, 401: E[401], 403: E[403], 500: E[500] },
  },
  revokeToken: {
    operationId: "revokeToken",
    method: "POST",
    path: "/v1/tokens/{tokenId}/revoke",
    summary: "Remove a token from the master's token file: refused from the next request on, no restart (admin; not the last admin token)",
    auth: ["admin"],
    params: TokenIdParam,
    body: EmptyBody,
    responses: { 200: { description: "revoked", body: TokenRevoked }, ...refusals, 404: E[404], 409: E[409] },
  },
  openApi: {
    operationId: "openApi",
    method: "GET",
    path: "/openapi.json",
    summary: "This document: the OpenAPI 3.1 description of the API, generated from the route table",
    auth: "public",
    responses: { 200: { description: "the OpenAPI document", body: z.looseObject({ openapi: z.string(), paths: z.record(z.string(), z.unknown()) }) }, 500: E[500] },
  },
  dashboard: {
    operationId: "dashboard",
    method: "GET",
    path: "/dashboard",
    summary: "The live dashboard (a page that asks for a token; also at /, its files under /dashboard/), when the master serves one",
    auth: "public",
    responses: { 200: { description: "the dashboard's page", file: "text/html" }, 404: error("the master serves no dashboard") },
  },
  whoami: {
    operationId: "whoami",
    method: "GET",
    path: "/v1/whoami",
    summary: "The actor the token (and x-slap-partition) names",
    auth: ALL,
    responses: { 200: { description: "the actor", body: WhoAmI }, 400: E[400], 401: E[401], 403: E[403], 500: E[500] },
  },
  audit: {
    operationId: "audit",
    method: "GET",
    path: "/v1/audit",
    summary: "Every read model against a rebuild from the log (admin)",
    auth: ["admin"],
    responses: { 200: { description: "the audit", body: AuditReport }, ...refusals },
  },
  requestInstance: {
    operationId: "requestInstance",
    method: "POST",
    path: "/v1/requests",
    summary: "Request an instance (idempotent); 202 pending until placed and published, then 200 with the connection parameters",
    auth: ["admin", "user", "partition"],
    query: WaitQuery,
    body: RequestInstance,
    responses: { ...answer, ...refusals, 409: E[409] },
  },
  listInstances: {
    operationId: "listInstances",
    method: "GET",
    path: "/v1/instances",
    summary: "The caller's instances and trees (now, or as of a past moment)",
    auth: ALL,
    query: ReadQuery,
    responses: { 200: { description: "instances and trees", body: InstanceList }, ...refusals },
  },
  getInstance: {
    operationId: "getInstance",
    method: "GET",
    path: "/v1/instances/{instanceId}",
    summary: "An instance, its answer and the shared instances it hosts (now, or as of a past moment)",
    auth: ALL,
    params: InstanceIdParam,
    query: ReadQuery,
    responses: { 200: { description: "instance, answer and shared instances", body: InstanceDetails }, ...refusals, 404: E[404] },
  },
  getByReference: {
    operationId: "getByReference",
    method: "GET",
    path: "/v1/references/{reference}",
    summary: "The instance the caller requested under a reference",
    auth: ["admin", "user", "partition"],
    params: ReferenceParam,
    query: ReadQuery,
    responses: { 200: { description: "instance, answer and shared instances", body: InstanceDetails }, ...refusals, 404: E[404] },
  },
  watchInstance: {
    operationId: "watchInstance",
    method: "GET",
    path: "/v1/instances/{instanceId}/watch",
    summary: "Server-sent events: the answer now and at every change (connection parameters unmasked)",
    auth: ALL,
    params: InstanceIdParam,
    query: WatchQuery,
    responses: { 200: { description: "text/event-stream of `answer` events", stream: { event: "answer", data: Answer } }, ...refusals, 404: E[404] },
  },
  changeState: {
    operationId: "changeState",
    method: "POST",
    path: "/v1/instances/{instanceId}/state",
    summary: "Start, stop or destroy an instance; answered like a request",
    auth: ["admin", "user", "partition"],
    params: InstanceIdParam,
    body: ChangeRequestedState,
    responses: { ...answer, ...refusals, 404: E[404], 409: E[409] },
  },
  bang: {
    operationId: "bang",
    method: "POST",
    path: "/v1/instances/{instanceId}/bang",
    summary: "Ask the instance's whole tree to be processed again (a bang; a shared instance's host too), with a message",
    auth: ["admin", "user", "partition"],
    params: InstanceIdParam,
    body: Bang,
    responses: { 200: { description: "banged", body: InstanceChanged }, ...refusals, 404: E[404], 409: E[409] },
  },
  publishConnection: {
    operationId: "publishConnection",
    method: "POST",
    path: "/v1/instances/{instanceId}/connection",
    summary: "Publish an instance's connection parameters (the partition holding it)",
    auth: ["partition"],
    params: InstanceIdParam,
    body: PublishConnectionParameters,
    responses: { 200: { description: "published", body: InstanceChanged }, ...refusals, 404: E[404], 409: E[409] },
  },
  reportInstanceStatus: {
    operationId: "reportInstanceStatus",
    method: "POST",
    path: "/v1/instances/{instanceId}/status",
    summary: "Report an instance's status, promises and processes (the partition holding it)",
    auth: ["partition"],
    params: InstanceIdParam,
    body: ReportInstanceStatus,
    responses: { 200: { description: "reported", body: InstanceChanged }, ...refusals, 404: E[404], 409: E[409] },
  },
  reportDestroyed: {
    operationId: "reportDestroyed",
    method: "POST",
    path: "/v1/instances/{instanceId}/destroyed",
    summary: "Report an instance wiped (the partition holding it): the partition is free again",
    auth: ["partition"],
    params: InstanceIdParam,
    body: EmptyBody,
    responses: { 200: { description: "destroyed, partition released", body: InstanceChanged }, ...refusals, 404: E[404], 409: E[409] },
  },
  listComputers: {
    operationId: "listComputers",
    method: "GET",
    path: "/v1/computers",
    summary: "The computers, each (in a live read) with liveness: { state, lastSeen }",
    auth: ALL,
    query: MomentQuery,
    responses: { 200: { description: "computers", body: ComputerList }, ...refusals },
  },
  registerComputer: {
    operationId: "registerComputer",
    method: "POST",
    path: "/v1/computers",
    summary: "Register a computer and its partitions (its node, or admin)",
    auth: ["admin", "node"],
    body: RegisterComputer,
    responses: { 200: { description: "registered", body: ComputerChanged }, ...refusals, 409: E[409] },
  },
  getComputer: {
    operationId: "getComputer",
    method: "GET",
    path: "/v1/computers/{computerId}",
    summary: "A computer (in a live read) with liveness: { state, lastSeen }",
    auth: ALL,
    params: ComputerIdParam,
    query: MomentQuery,
    responses: { 200: { description: "computer", body: ComputerDetails }, ...refusals, 404: E[404] },
  },
  supplySoftware: {
    operationId: "supplySoftware",
    method: "POST",
    path: "/v1/computers/{computerId}/supply",
    summary: "Supply (or remove) a release on a computer (admin)",
    auth: ["admin"],
    params: ComputerIdParam,
    body: SupplySoftware,
    responses: { 200: { description: "supplied", body: ComputerChanged }, ...refusals, 404: E[404], 409: E[409] },
  },
  reportSoftware: {
    operationId: "reportSoftware",
    method: "POST",
    path: "/v1/computers/{computerId}/software",
    summary: "Report a release's build on a computer (its node, or admin)",
    auth: ["admin", "node"],
    params: ComputerIdParam,
    body: ReportSoftwareStatus,
    responses: { 200: { description: "reported", body: ComputerChanged }, ...refusals, 404: E[404], 409: E[409] },
  },
  bangComputer: {
    operationId: "bangComputer",
    method: "POST",
    path: "/v1/computers/{computerId}/bang",
    summary: "Ask for every instance on the computer to be processed again (its node, or admin), with a message",
    auth: ["admin", "node"],
    params: ComputerIdParam,
    body: BangComputer,
    responses: { 200: { description: "banged", body: ComputerChanged }, ...refusals, 404: E[404] },
  },
  heartbeat: {
    operationId: "heartbeat",
    method: "POST",
    path: "/v1/computers/{computerId}/heartbeat",
    summary: "The node's sign of life (its own computer only; no body); not an event: the master keeps the time in memory",
    auth: ["node", "partition"],
    params: ComputerIdParam,
    body: EmptyBody,
    responses: { 200: { description: "heard", body: HeartbeatAnswer }, ...refusals, 404: E[404] },
  },
  getDesiredState: {
    operationId: "getDesiredState",
    method: "GET",
    path: "/v1/computers/{computerId}/desired",
    summary: "The computer's desired state, all its node reads (its own node, or admin); with `index`, a blocking query that answers once the revision is past it",
    auth: ["admin", "node", "partition"],
    params: ComputerIdParam,
    query: DesiredQuery,
    responses: { 200: { description: "the desired state", body: DesiredState }, ...refusals, 404: E[404] },
  },
  listEvents: {
    operationId: "listEvents",
    method: "GET",
    path: "/v1/events",
    summary: "A page of the event log, filtered to what the caller may read; `next` is the position to ask after",
    auth: ALL,
    query: EventsQuery,
    responses: { 200: { description: "events and the next position", body: EventPage }, ...refusals },
  },
  streamEvents: {
    operationId: "streamEvents",
    method: "GET",
    path: "/v1/events/stream",
    summary: "Server-sent events: the log, live, filtered to what the caller may read",
    auth: ALL,
    query: EventsQuery,
    responses: { 200: { description: "text/event-stream of `event` events", stream: { event: "event", data: EventRecord } }, ...refusals },
  },
} as const satisfies Record<string, RouteSpec>;

export type Routes = typeof routes;
export type OperationId = keyof Routes;

/** The routes as a list, in the table's order. */
export const ROUTES: readonly RouteSpec[] = Object.values(routes);

/** A route's path in Fastify's (find-my-way's) form: `/v1/instances/:instanceId`. */
export function routerPath(route: Pick<RouteSpec, "path">): string {
  return route.path.replace(/\{(\w+)\}/g, ":$1");
}

/** A route's path with its parameters, each URL-encoded. A missing one is an empty segment. */
export function pathOf(route: Pick<RouteSpec, "path">, params: Readonly<Record<string, string>> = {}): string {
  return route.path.replace(/\{(\w+)\}/g, (_, name: string) => encodeURIComponent(params[name] ?? ""));
}
