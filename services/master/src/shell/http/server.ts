import { randomUUID } from "node:crypto";
import type { Duplex } from "node:stream";
import Fastify, { LogController, type FastifyReply, type FastifyRequest } from "fastify";
import { ROUTES, RevisionHeader, SeenHeader, routerPath, routes, type OperationId } from "@slap/api";
import { EventValidationError, type Actor } from "@slap/events";
import type { Logger } from "pino";
import { authenticate, type CredentialSource, type TokenFileWatch } from "../auth.js";
import { isDashboardPath, registerDashboard, type DashboardFiles } from "../dashboard.js";
import { AsOfQueueFull, CommandRejected, type Master } from "../master.js";
import { MasterMetrics } from "../metrics.js";
import { callerOf, DEFAULT_LIMITS, Limits, type LimitSettings, type OverLimit } from "../../core/limits.js";
import { adminHandlers } from "./admin.js";
import { computerHandlers } from "./computers.js";
import { eventHandlers } from "./events.js";
import { instanceHandlers } from "./instances.js";
import { SEEN_WAIT_MS } from "./reads.js";
import { operationsRoutes, tokenHandlers } from "./operations.js";
import { requestHandlers } from "./requests.js";
import { HttpError, parse, registerRoutes, type Handlers } from "./route.js";

/** A route's path as a pattern of request URLs (with any query). */
const urlPattern = (path: string): RegExp => new RegExp(`^${path.replace(/\{\w+\}/g, "[^/?]+")}(\\?|$)`);
/** The heartbeat's path, and the nodes' watch of their desired state: not logged as requests (see `buildHttpApi`). */
const HEARTBEAT_URL = urlPattern(routes.heartbeat.path);
const DESIRED_URL = urlPattern(routes.getDesiredState.path);

/** Routes anyone may call (health, the API description), from the route table; and the dashboard's static files (which carry no data). */
const PUBLIC_ROUTES = new Set(ROUTES.filter((r) => r.auth === "public").map(routerPath));

/** The metrics route, which a metrics token (no actor) may call. */
const METRICS_ROUTE = routerPath(routes.metrics);

/**
 * An `x-request-id` the master takes from its caller (a proxy's, a client's trace id): a token
 * of at most 128 characters; anything else is replaced by a new one (a UUID).
 */
const REQUEST_ID = /^[A-Za-z0-9._:-]{1,128}$/;

/** The request id of a request: the caller's when it is valid, else a new one. Logged as `requestId`, answered as `x-request-id`. */
function requestIdOf(header: string | string[] | undefined): string {
  const given = Array.isArray(header) ? header[0] : header;
  return given !== undefined && REQUEST_ID.test(given) ? given : randomUUID();
}

/** Routes that hold a request open for as long as the caller likes: event streams and instance watches. */
const STREAM_ROUTES = new Set(ROUTES.filter((r) => Object.values(r.responses).some((a) => "stream" in a)).map(routerPath));

/**
 * Whether a request counts against the held limits: a stream, or a read asked to wait (a
 * desired-state watch). A request's own long poll (`POST /v1/requests?wait=`) does not: it ends
 * within a minute and is a write, counted as one (a user's hundred requests at once each wait).
 */
function holdsOpen(request: FastifyRequest): boolean {
  if (STREAM_ROUTES.has(request.routeOptions.url ?? "")) return true;
  if (request.method !== "GET") return false;
  const wait = (request.query as { wait?: unknown } | undefined)?.wait;
  return wait !== undefined && wait !== "0" && wait !== "";
}

/** Status of a policy's or a decider's refusal. */
const REFUSAL_STATUS = { Forbidden: 403, NotFound: 404, Conflict: 409, BadParameters: 400 } as const;

/**
 * A request the HTTP parser refuses (a bad request line, a control character in a header,
 * headers too large) answered in the API's error shape, then the connection closed.
 */
function answerClientError(error: Error & { code?: string }, socket: Duplex): void {
  if (!socket.writable) {
    socket.destroy();
    return;
  }
  const status = error.code === "HPE_HEADER_OVERFLOW" ? 431 : 400;
  const body = JSON.stringify({ error: { code: "BadRequest", message: `malformed HTTP request (${error.code ?? error.message})` } });
  socket.end(
    `HTTP/1.1 ${status} ${status === 431 ? "Request Header Fields Too Large" : "Bad Request"}\r\ncontent-type: application/json; charset=utf-8\r\ncontent-length: ${Buffer.byteLength(body)}\r\nconnection: close\r\n\r\n${body}`,
  );
}

/**
 * The master's HTTP API (see API.md): a handler for every route of `@slap/api`'s route table,
 * registered from it. Every body, query and header is parsed with zod; errors answer
 * `{ error: { code, message, issues? } }` with 400/401/403/404/409, never a stack trace. Who may
 * see what is core/visibility.ts; this layer authenticates and maps refusals to statuses.
 */
export function buildHttpApi(
  master: Master,
  logger: Logger,
  options: { credentials: CredentialSource; tokenFile?: TokenFileWatch; dashboard?: DashboardFiles; https?: { cert: Buffer; key: Buffer }; limits?: LimitSettings },
) {
  const limits = new Limits(options.limits ?? DEFAULT_LIMITS);
  const metrics = new MasterMetrics(master);
  const app = Fastify({
    loggerInstance: logger,
    ...(options.https === undefined ? {} : { https: options.https }),
    genReqId: (request) => requestIdOf(request.headers["x-request-id"]),
    bodyLimit: 1024 * 1024,
    forceCloseConnections: true,
    // References may be 512 characters, and percent-encoded up to three times longer.
    routerOptions: { maxParamLength: 2_048 },
    // The router's and the HTTP parser's own refusals in the API's error shape.
    frameworkErrors: (error, _request, reply) => {
      void (reply as FastifyReply).code(error.statusCode ?? 400).send({ error: { code: "BadRequest", message: error.message } });
    },
    clientErrorHandler: answerClientError,
    // Heartbeats and desired-state watches (each node's, all the time) are not logged as requests; their failures still are.
    logController: new LogController({
      requestIdLogLabel: "requestId",
      disableRequestLogging: (request) => (request.method === "POST" && HEARTBEAT_URL.test(request.url)) || (request.method === "GET" && DESIRED_URL.test(request.url)),
    }),
  });

  // Every route but the public ones needs a token (see auth.ts); the actor it names is kept per request.
  const actors = new WeakMap<FastifyRequest, Actor>();
  const scrapers = new WeakSet<FastifyRequest>();
  app.addHook("onRequest", (request, reply, done) => {
    void reply.header("x-request-id", request.id);
    const route = request.routeOptions.url;
    if (route !== undefined && (PUBLIC_ROUTES.has(route) || isDashboardPath(route))) return done();
    // No route: a 404 to anyone (the not-found handler), not a 401 that would say there is something behind a token.
    if (route === undefined) return done();
    const header = (name: string): string | undefined => {
      const v = request.headers[name];
      return Array.isArray(v) ? v[0] : v;
    };
    const result = authenticate(options.credentials.current, header("authorization"), header("x-slap-partition"));
    if ("scraper" in result) {
      if (route !== METRICS_ROUTE) return done(new HttpError(403, "Forbidden", "a metrics token may read GET /metrics only"));
      scrapers.add(request);
      return done();
    }
    if ("actor" in result) {
      actors.set(request, result.actor);
      // Any call with a node's token is a sign of life of its node, not only its heartbeats.
      if (result.actor.kind === "node" || result.actor.kind === "partition") master.heardFrom(result.actor.computerId);
      return done();
    }
    if (result.status === 401) request.log.warn({ url: request.url.split("?")[0], reason: result.message }, "request refused: not authenticated");
    done(new HttpError(result.status, result.code, result.message));
  });
  /** The authenticated sender of a request. */
  const actorOf = (request: FastifyRequest): Actor => {
    const actor = actors.get(request);
    if (actor === undefined) throw new HttpError(401, "Unauthorized", "missing credentials: send the header Authorization: Bearer <token>");
    return actor;
  };

  app.setErrorHandler((error: unknown, request, reply) => {
    if (error instanceof HttpError) {
      return reply.code(error.status).send({ error: { code: error.code, message: error.message, ...(error.issues ? { issues: error.issues } : {}) } });
    }
    if (error instanceof AsOfQueueFull) return reply.code(429).header("retry-after", "1").send({ error: { code: "TooManyRequests", message: error.message } });
    if (error instanceof CommandRejected) {
      const rejection = error.rejection;
      if (rejection.reason === "BadParameters") {
        // Refused by the release's schema: a bad input like any other, its issue naming the parameter.
        const path = rejection.parameter === "" ? "parameters" : `parameters.${rejection.parameter}`;
        return reply.code(400).send({ error: { code: "BadRequest", message: rejection.detail, issues: [{ path, message: rejection.detail }] } });
      }
      return reply.code(REFUSAL_STATUS[rejection.reason]).send({ error: { code: rejection.reason, message: rejection.detail } });
    }
    if (error instanceof EventValidationError) {
      return reply.code(400).send({ error: { code: "BadRequest", message: error.message, issues: error.issues } });
    }
    const status = (error as { statusCode?: number }).statusCode;
    if (status !== undefined && status >= 400 && status < 500) {
      return reply.code(status).send({ error: { code: "BadRequest", message: (error as Error).message } });
    }
    request.log.error({ err: error, url: request.url }, "request failed");
    return reply.code(500).send({ error: { code: "Internal", message: "the master could not complete the request; it is logged" } });
  });
  // Causal consistency between services: a caller that has seen the log up to position N (a node
  // reacting to its allocation) sends `x-slap-seen: N`, and is answered from read models that
  // include N — not refused because this master's projection is a few milliseconds behind.
  app.addHook("preHandler", async (request) => {
    // A node's write says which revision of its desired state it answers: logged with the write
    // (the node read that state here, so there is nothing to wait for).
    const revision = request.headers["x-slap-revision"];
    if (revision !== undefined && actors.has(request)) request.log = request.log.child({ revision: parse(RevisionHeader, revision, "header x-slap-revision") });
    const seen = request.headers["x-slap-seen"];
    // Only for authenticated callers: a stranger must not hold requests open (public routes).
    if (seen === undefined || !(actors.has(request) || scrapers.has(request))) return;
    const position = parse(SeenHeader, seen, "header x-slap-seen");
    if (position <= master.position) return;
    await master.settledWithin(position, SEEN_WAIT_MS);
    // Past the deadline: the caller reads another log (a node on another stream?) or a commit there is malformed.
    if (position > master.position) request.log.warn({ seen: position, position: master.position }, "x-slap-seen names a position this master has not reached: answering anyway");
  });
  // What one caller may take (core/limits.ts): its writes, and the requests it holds open. Refused with a 429 naming the limit.
  app.addHook("preHandler", async (request, reply) => {
    const actor = actors.get(request);
    if (actor === undefined) return;
    const caller = callerOf(actor);
    const over = (refusal: OverLimit): never => {
      if (refusal.retryAfterS > 0) void reply.header("retry-after", String(refusal.retryAfterS));
      request.log.warn({ caller, limit: refusal.limit }, "request refused: over a limit");
      throw new HttpError(429, "TooManyRequests", refusal.message);
    };
    if (request.method !== "GET" && request.method !== "HEAD") {
      const refusal = limits.write(caller, Number(request.headers["content-length"] ?? 0) || 0, Date.now());
      if (refusal !== undefined) over(refusal);
    }
    if (!holdsOpen(request)) return;
    const held = limits.hold(caller);
    if (typeof held !== "function") return over(held);
    reply.raw.once("close", held);
  });
  app.addHook("onResponse", (request, reply, done) => {
    metrics.observe(request.method, request.routeOptions.url ?? "(none)", reply.statusCode, reply.elapsedTime / 1000);
    done();
  });
  app.setNotFoundHandler((request, reply) =>
    reply.code(404).send({ error: { code: "NotFound", message: `no route ${request.method} ${request.url.split("?")[0]}` } }),
  );

  // Every route of the table has its handler (the compiler checks), but the dashboard's, which
  // is a folder's files and is served only when the master is given one.
  const handlers: Handlers<Exclude<OperationId, "dashboard" | "ready" | "metrics">> = {
    ...adminHandlers(master),
    ...tokenHandlers(options.tokenFile),
    ...requestHandlers(master),
    ...instanceHandlers(master),
    ...computerHandlers(master),
    ...eventHandlers(master, logger),
  };
  registerRoutes(app, handlers, actorOf);
  operationsRoutes(app, master, metrics, (request) => scrapers.has(request) || actorOf(request));
  if (options.dashboard !== undefined) registerDashboard(app, options.dashboard);
  return app;
}
