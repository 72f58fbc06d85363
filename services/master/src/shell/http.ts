import type { Duplex } from "node:stream";
import Fastify, { LogController, type FastifyReply, type FastifyRequest } from "fastify";
import { z } from "zod";
import {
  EVENT_TYPES,
  EventValidationError,
  maskSecrets,
  type Actor,
  type Commit,
  type ComputerView,
  type DomainEvent,
  type InstanceView,
} from "@slap/events";
import type { Logger } from "pino";
import type { CloudView } from "@slap/events";
import {
  AsOfQuery,
  Bang,
  ChangeRequestedState,
  ComputerIdParam,
  InstanceIdParam,
  PublishConnectionParameters,
  ReferenceParam,
  RegisterComputer,
  ReportInstanceStatus,
  ReportSoftwareStatus,
  RequestInstance,
  SupplySoftware,
  oneMoment,
  LogPosition,
} from "../core/commands.js";
import type { Answer } from "../core/answer.js";
import type { Liveness, NodeLiveness } from "../core/liveness.js";
import {
  decideBang,
  decideDestroyed,
  decidePublish,
  decideRegisterComputer,
  decideRequest,
  decideSoftwareStatus,
  decideStateChange,
  decideStatus,
  decideSupply,
  keyOf,
  mayManage,
  requesterOf,
} from "../core/decide.js";
import { CommandRejected, type Master } from "./master.js";
import { openApiDocument } from "./openapi.js";
import { isDashboardPath, registerDashboard, type DashboardFolder } from "./dashboard.js";
import { authenticate, type Credentials } from "./auth.js";

/** A log position the caller has seen; the answer waits (at most `SEEN_WAIT_MS`) for the read models to include it. */
const SeenHeader = LogPosition;
const SEEN_WAIT_MS = 5_000;
const WaitQuery = z.object({ wait: z.coerce.number().int().min(0).max(60_000).default(0) });
const SecretsQuery = z.object({ secrets: z.enum(["0", "1", "true", "false"]).optional() });
const ReadQuery = SecretsQuery.extend(AsOfQuery.shape).refine(oneMoment.check, oneMoment.issue);
const MomentQuery = AsOfQuery.refine(oneMoment.check, oneMoment.issue);
const EventsQuery = z.object({
  after: z.coerce.number().int().min(0).default(0),
  limit: z.coerce.number().int().min(1).max(10_000).default(1_000),
  filter: z.string().regex(/^[A-Za-z0-9_*>.-]{1,256}$/, "must be a subject filter such as tree.<id>.>").optional(),
  type: z.enum(EVENT_TYPES as unknown as [string, ...string[]]).optional(),
  since: z.iso.datetime({ offset: true }).optional(),
  secrets: z.enum(["0", "1", "true", "false"]).optional(),
});

class HttpError extends Error {
  override name = "HttpError";
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly issues?: Array<{ path: string; message: string }>,
  ) {
    super(message);
  }
}

/** The body of a route that takes none: absent or `{}`. */
const EmptyBody = z.object({}).strict();

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

function parse<T extends z.ZodType>(schema: T, value: unknown, where: string): z.infer<T> {
  // An absent body or query is empty; a JSON `null` is not (it is refused as not an object).
  const parsed = schema.safeParse(value === undefined ? {} : value);
  if (parsed.success) return parsed.data;
  const issues = parsed.error.issues.map((i) => ({ path: i.path.map(String).join("."), message: i.message }));
  throw new HttpError(400, "BadRequest", `invalid ${where}: ${issues.map((i) => `${i.path || "(root)"}: ${i.message}`).join("; ")}`, issues);
}

/** `POST /v1/computers/:computerId/heartbeat`, not logged as a request (see `buildHttpApi`). */
const HEARTBEAT_URL = /^\/v1\/computers\/[^/?]+\/heartbeat(\?|$)/;

/** What a user is shown in place of the id of an instance it may not see. */
const HIDDEN = "(another tree)";

/** Routes anyone may call: health, the API description and the dashboard's static files (which carry no data). */
const PUBLIC_ROUTES = new Set(["/healthz", "/openapi.json"]);

function maskMap(map: Record<string, string> | null, show: boolean): Record<string, string> | null {
  return map === null || show ? map : maskSecrets(map);
}

/** The liveness of the node an instance runs on, in a live read (as-of reads have none: liveness is now, not history). */
type NodeOf = (instance: InstanceView) => NodeLiveness | null;

/**
 * An instance as shown: secrets masked (by key name) in its connection and its request
 * parameters, unless asked for; in a live read, `node`: whether the node it runs on answers.
 */
function present(instance: InstanceView, show: boolean, nodeOf?: NodeOf): InstanceView & { node?: NodeLiveness | null } {
  return {
    ...instance,
    parameters: maskMap(instance.parameters, show) ?? {},
    connection: maskMap(instance.connection, show),
    ...(nodeOf === undefined ? {} : { node: nodeOf(instance) }),
  };
}

function presentAnswer(answer: Answer, show: boolean): Answer {
  return answer.status === "ready" ? { ...answer, connection: maskMap(answer.connection, show) ?? {} } : answer;
}

function sendAnswer(reply: FastifyReply, answer: Answer): FastifyReply {
  return reply.code(answer.status === "pending" ? 202 : 200).send(answer);
}

/**
 * The master's HTTP API (see API.md). Every body, query and header is parsed with zod; errors
 * answer `{ error: { code, message, issues? } }` with 400/403/404/409, never a stack trace.
 */
export function buildHttpApi(master: Master, logger: Logger, options: { credentials: Credentials; dashboard?: DashboardFolder }) {
  const app = Fastify({
    loggerInstance: logger,
    bodyLimit: 1024 * 1024,
    forceCloseConnections: true,
    // References may be 512 characters, and percent-encoded up to three times longer.
    routerOptions: { maxParamLength: 2_048 },
    // The router's and the HTTP parser's own refusals in the API's error shape.
    frameworkErrors: (error, _request, reply) => {
      void (reply as FastifyReply).code(error.statusCode ?? 400).send({ error: { code: "BadRequest", message: error.message } });
    },
    clientErrorHandler: answerClientError,
    // Heartbeats (one per node every few seconds) are not logged as requests; their failures still are.
    logController: new LogController({ disableRequestLogging: (request) => request.method === "POST" && HEARTBEAT_URL.test(request.url) }),
  });

  // Every route but the public ones needs a token (see auth.ts); the actor it names is kept per request.
  const actors = new WeakMap<FastifyRequest, Actor>();
  app.addHook("onRequest", (request, _reply, done) => {
    const route = request.routeOptions.url;
    if (route !== undefined && (PUBLIC_ROUTES.has(route) || isDashboardPath(route))) return done();
    const header = (name: string): string | undefined => {
      const v = request.headers[name];
      return Array.isArray(v) ? v[0] : v;
    };
    const result = authenticate(options.credentials, header("authorization"), header("x-slap-partition"));
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
    if (error instanceof CommandRejected) {
      const status = { Forbidden: 403, NotFound: 404, Conflict: 409 }[error.rejection.reason];
      return reply.code(status).send({ error: { code: error.rejection.reason, message: error.rejection.detail } });
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
    const seen = request.headers["x-slap-seen"];
    // Only for authenticated callers: a stranger must not hold requests open (public routes).
    if (seen === undefined || !actors.has(request)) return;
    const position = parse(SeenHeader, seen, "header x-slap-seen");
    if (position <= master.position) return;
    await master.settledWithin(position, SEEN_WAIT_MS);
    // Past the deadline: the caller reads another log (a node on another stream?) or a commit there is malformed.
    if (position > master.position) request.log.warn({ seen: position, position: master.position }, "x-slap-seen names a position this master has not reached: answering anyway");
  });
  app.setNotFoundHandler((request, reply) =>
    reply.code(404).send({ error: { code: "NotFound", message: `no route ${request.method} ${request.url.split("?")[0]}` } }),
  );

  /** The read models a read is answered from: the live ones, or (`asOf`, `at`) fresh ones folded up to that moment. */
  interface Read {
    views: CloudView;
    asOf?: { time: string | null; position: number };
  }
  const live = (): Read => ({ views: master.view.state });
  const readAt = async (query: { asOf?: string | undefined; at?: number | undefined }): Promise<Read> => {
    const moment = query.asOf !== undefined ? { time: query.asOf } : query.at !== undefined ? { position: query.at } : undefined;
    if (moment === undefined) return live();
    const read = await master.asOf(moment);
    return { views: read.views, asOf: { time: read.time, position: read.position } };
  };
  const asOfOf = (read: Read) => (read.asOf === undefined ? {} : { asOf: read.asOf });

  /**
   * In a live read, the liveness of the node an instance runs on: its placement's computer (a
   * shared instance: its host's). Null when it runs nowhere. As of a past moment: none.
   */
  const nodeOf = (read: Read): NodeOf | undefined => {
    if (read.asOf !== undefined) return undefined;
    return (instance) => {
      const host = instance.host === null ? undefined : read.views.instances.instances[instance.host.instanceId];
      const placement = instance.placement ?? host?.placement ?? null;
      return placement === null ? null : { computerId: placement.computerId, ...master.liveness(placement.computerId) };
    };
  };
  /** A computer as shown: in a live read, with `liveness`. */
  /**
   * A computer as the actor may see it: admin and nodes see who holds each partition; a user or a
   * partition sees the instances it may see, and of others' only that the partition is held.
   */
  const presentComputer = (computer: ComputerView, read: Read, actor: Actor): ComputerView & { liveness?: Liveness } => {
    const seesAll = actor.kind === "node" || (actor.kind === "user" && actor.userId === "admin");
    const shown = (instanceId: string): boolean => {
      const instance = read.views.instances.instances[instanceId];
      return instance !== undefined && visible(actor, instance, read);
    };
    const partitions = seesAll
      ? computer.partitions
      : Object.fromEntries(
          Object.entries(computer.partitions).map(([id, p]) => [
            id,
            {
              ...p,
              ...(p.instanceId !== null && !shown(p.instanceId) ? { instanceId: HIDDEN, treeId: HIDDEN } : {}),
              ...(p.supersededClaim !== null && !shown(p.supersededClaim.instanceId) ? { supersededClaim: { instanceId: HIDDEN, treeId: HIDDEN } } : {}),
            },
          ]),
        );
    const masked = { ...computer, partitions };
    return read.asOf === undefined ? { ...masked, liveness: master.liveness(computer.computerId) } : masked;
  };

  /**
   * Whether the actor may see the instance in the read models. As of a past moment it must be
   * visible then and now: a partition sees the trees it holds now, not those it held before.
   */
  const visible = (actor: Actor, instance: InstanceView, read: Read = live()): boolean =>
    mayManage(instance, { ...master.context(actor), ...read.views }) === undefined &&
    (read.asOf === undefined || mayManage(instance, master.context(actor)) === undefined);

  const found = (actor: Actor, instanceId: string, read: Read = live()): InstanceView => {
    const instance = read.views.instances.instances[instanceId];
    if (instance === undefined || !visible(actor, instance, read)) throw new HttpError(404, "NotFound", `no instance ${instanceId}`);
    return instance;
  };

  /**
   * A shared instance's pending reason names its host; when the SLA names (instance_guid) a host
   * the actor may not see, the reason must not describe it (its release, state, placement).
   */
  const guardReason = (actor: Actor, instance: InstanceView, answer: Answer, read: Read = live()): Answer => {
    const named = instance.shared ? instance.sla.instance_guid : undefined;
    if (answer.status !== "pending" || named === undefined || named === "") return answer;
    const host = read.views.instances.instances[named];
    if (host !== undefined && visible(actor, host, read)) return answer;
    return { ...answer, reason: `waiting for a host: instance_guid ${named} is not a ready host this requester may use` };
  };

  const details = (actor: Actor, instance: InstanceView, show: boolean, read: Read = live()) => ({
    instance: present(instance, show, nodeOf(read)),
    answer: presentAnswer(guardReason(actor, instance, master.answer(instance, read.views), read), show),
    // Only those the actor may see: a host's owner does not see other users' shared instances on it.
    sharedInstances: Object.values(read.views.instances.instances)
      .filter((i) => i.host?.instanceId === instance.instanceId && visible(actor, i, read))
      .map((i) => present(i, show, nodeOf(read))),
    ...asOfOf(read),
  });

  app.get("/healthz", () => ({ ok: true, position: master.position }));

  app.get("/v1/whoami", (request) => ({ actor: actorOf(request) }));

  app.get("/v1/audit", async (request) => {
    const actor = actorOf(request);
    if (actor.kind !== "user" || actor.userId !== "admin") throw new HttpError(403, "Forbidden", "only admin may audit");
    return master.audit();
  });
  app.get("/openapi.json", () => openApiDocument());
  if (options.dashboard !== undefined) registerDashboard(app, options.dashboard);

  app.post("/v1/requests", async (request, reply) => {
    const actor = actorOf(request);
    const command = parse(RequestInstance, request.body, "request body");
    const { wait } = parse(WaitQuery, request.query, "query");
    const result = await master.execute(actor, (ctx) => decideRequest(command, ctx));
    const instanceId = result.instanceId!;
    const answer = await master.waitForAnswer(instanceId, wait);
    if (answer === undefined) throw new HttpError(500, "Internal", `instance ${instanceId} is missing from the read model`);
    return sendAnswer(reply, guardReason(actor, master.instance(instanceId)!, answer));
  });

  app.get("/v1/instances", async (request) => {
    const actor = actorOf(request);
    const query = parse(ReadQuery, request.query, "query");
    const show = query.secrets === "1" || query.secrets === "true";
    const read = await readAt(query);
    const instances = Object.values(read.views.instances.instances).filter((i) => visible(actor, i, read));
    const treeIds = new Set(instances.map((i) => i.treeId));
    return {
      instances: instances.map((i) => present(i, show, nodeOf(read))),
      trees: Object.values(read.views.instances.trees).filter((t) => treeIds.has(t.treeId)),
      ...asOfOf(read),
    };
  });

  app.get("/v1/instances/:instanceId", async (request) => {
    const actor = actorOf(request);
    const { instanceId } = parse(InstanceIdParam, request.params, "path");
    const query = parse(ReadQuery, request.query, "query");
    const read = await readAt(query);
    return details(actor, found(actor, instanceId, read), query.secrets === "1" || query.secrets === "true", read);
  });

  app.get("/v1/references/:reference", async (request) => {
    const actor = actorOf(request);
    const { reference } = parse(ReferenceParam, request.params, "path");
    const query = parse(ReadQuery, request.query, "query");
    const read = await readAt(query);
    const requester = requesterOf({ ...master.context(actor), ...read.views });
    if ("ok" in requester) throw new CommandRejected(requester);
    return details(actor, found(actor, keyOf(requester, reference).instanceId, read), query.secrets === "1" || query.secrets === "true", read);
  });

  app.get("/v1/instances/:instanceId/watch", (request, reply) => {
    const actor = actorOf(request);
    const { instanceId } = parse(InstanceIdParam, request.params, "path");
    found(actor, instanceId);
    // Like the answer to a request, a watch serves the requester: connection parameters unmasked.
    const show = true;
    let last = "";
    const stream = openEventStream(request, reply);
    const push = (): void => {
      const instance = master.instance(instanceId);
      if (instance === undefined) return;
      const answer = JSON.stringify(presentAnswer(guardReason(actor, instance, master.answer(instance)), show));
      if (answer !== last) {
        last = answer;
        void stream.send("answer", answer);
      }
    };
    push();
    const unsubscribe = master.onChange(push);
    stream.onClose(unsubscribe);
  });

  const executeOn = (handler: (request: FastifyRequest, actor: Actor, instanceId: string) => ReturnType<Master["execute"]>) =>
    async (request: FastifyRequest) => {
      const actor = actorOf(request);
      const { instanceId } = parse(InstanceIdParam, request.params, "path");
      // Instance ids derive from (requester, reference): a user must not learn, from a 403 or a
      // 409, that someone else's instance exists. Nodes read the log, they know the ids anyway.
      if (actor.kind === "user") found(actor, instanceId);
      const result = await handler(request, actor, instanceId);
      return { instanceId, position: result.position };
    };

  app.post("/v1/instances/:instanceId/state", async (request, reply) => {
    const actor = actorOf(request);
    const { instanceId } = parse(InstanceIdParam, request.params, "path");
    const { state } = parse(ChangeRequestedState, request.body, "body");
    found(actor, instanceId);
    await master.execute(actor, (ctx) => decideStateChange(instanceId, state, ctx));
    const instance = master.instance(instanceId)!;
    return sendAnswer(reply, guardReason(actor, instance, master.answer(instance)));
  });
  app.post(
    "/v1/instances/:instanceId/bang",
    executeOn((request, actor, id) => {
      found(actor, id);
      const command = parse(Bang, request.body, "body");
      return master.execute(actor, (ctx) => decideBang(id, command, ctx));
    }),
  );
  app.post(
    "/v1/instances/:instanceId/connection",
    executeOn((request, actor, id) => {
      const command = parse(PublishConnectionParameters, request.body, "body");
      return master.execute(actor, (ctx) => decidePublish(id, command, ctx));
    }),
  );
  app.post(
    "/v1/instances/:instanceId/status",
    executeOn((request, actor, id) => {
      const command = parse(ReportInstanceStatus, request.body, "body");
      return master.execute(actor, (ctx) => decideStatus(id, command, ctx));
    }),
  );
  app.post(
    "/v1/instances/:instanceId/destroyed",
    executeOn((request, actor, id) => {
      parse(EmptyBody, request.body, "body");
      return master.execute(actor, (ctx) => decideDestroyed(id, ctx));
    }),
  );

  app.post("/v1/computers", async (request) => {
    const actor = actorOf(request);
    const command = parse(RegisterComputer, request.body, "body");
    const result = await master.execute(actor, (ctx) => decideRegisterComputer(command, ctx));
    return { computerId: command.computerId, position: result.position };
  });
  app.get("/v1/computers", async (request) => {
    const actor = actorOf(request);
    const read = await readAt(parse(MomentQuery, request.query, "query"));
    return { computers: Object.values(read.views.computers.computers).map((c) => presentComputer(c, read, actor)), ...asOfOf(read) };
  });
  app.get("/v1/computers/:computerId", async (request) => {
    const actor = actorOf(request);
    const { computerId } = parse(ComputerIdParam, request.params, "path");
    const read = await readAt(parse(MomentQuery, request.query, "query"));
    const computer = read.views.computers.computers[computerId];
    if (computer === undefined) throw new HttpError(404, "NotFound", `no computer ${computerId}`);
    return { computer: presentComputer(computer, read, actor), ...asOfOf(read) };
  });
  // A node's sign of life (recorded by the onRequest hook, as for any call with its token).
  app.post("/v1/computers/:computerId/heartbeat", (request) => {
    const actor = actorOf(request);
    const { computerId } = parse(ComputerIdParam, request.params, "path");
    parse(EmptyBody, request.body, "body");
    if ((actor.kind !== "node" && actor.kind !== "partition") || actor.computerId !== computerId) {
      throw new HttpError(403, "Forbidden", `only the node of computer ${computerId} may send its heartbeat`);
    }
    if (master.computers.computers[computerId] === undefined) throw new HttpError(404, "NotFound", `no computer ${computerId}: register it first`);
    return { computerId, liveness: master.liveness(computerId) };
  });
  app.post("/v1/computers/:computerId/supply", async (request) => {
    const actor = actorOf(request);
    const { computerId } = parse(ComputerIdParam, request.params, "path");
    const command = parse(SupplySoftware, request.body, "body");
    const result = await master.execute(actor, (ctx) => decideSupply(computerId, command, ctx));
    return { computerId, position: result.position };
  });
  app.post("/v1/computers/:computerId/software", async (request) => {
    const actor = actorOf(request);
    const { computerId } = parse(ComputerIdParam, request.params, "path");
    const command = parse(ReportSoftwareStatus, request.body, "body");
    const result = await master.execute(actor, (ctx) => decideSoftwareStatus(computerId, command, ctx));
    return { computerId, position: result.position };
  });

  const eventMatches = (query: z.infer<typeof EventsQuery>, event: DomainEvent): boolean =>
    (query.type === undefined || event.type === query.type) && (query.since === undefined || Date.parse(event.time) >= Date.parse(query.since));

  /** The tree an event is about, when it is about one (instance events, allocations). */
  const treeOf = (event: DomainEvent): string | undefined => {
    if (event.aggregate.kind === "instance") return event.aggregate.treeId;
    if (event.type === "PartitionAllocated") return event.data.treeId;
    if (event.type === "PartitionReleased") return master.instance(event.data.instanceId)?.treeId;
    return undefined;
  };

  /**
   * What an actor may read of the log: admin everything; a user the events of their own trees
   * and of computers (public, as in `GET /v1/computers`); a partition its own tree and computer;
   * a node its own computer and the instances placed on it.
   */
  const mayRead = (actor: Actor, event: DomainEvent): boolean => {
    const tree = treeOf(event);
    const computerId = event.aggregate.kind === "instance" ? undefined : event.aggregate.computerId;
    const ownsTree = (): boolean => {
      const root = tree === undefined ? undefined : master.instance(tree);
      return root !== undefined && mayManage(root, master.context(actor)) === undefined;
    };
    switch (actor.kind) {
      case "user":
        return actor.userId === "admin" || (tree === undefined ? true : ownsTree());
      case "partition":
        return tree === undefined ? computerId === actor.computerId : ownsTree();
      case "node": {
        if (computerId !== undefined) return computerId === actor.computerId;
        const instanceId = event.aggregate.kind === "instance" ? event.aggregate.instanceId : undefined;
        return instanceId !== undefined && master.computers.bindings[instanceId]?.computerId === actor.computerId;
      }
      case "service":
        return false;
      default: {
        const never: never = actor;
        return never;
      }
    }
  };

  /** Secret-looking parameter values masked, as in the instance views. */
  const maskEvent = (event: DomainEvent): DomainEvent => {
    switch (event.type) {
      case "ConnectionParametersPublished":
        return { ...event, data: { ...event.data, parameters: maskMap(event.data.parameters, false) ?? {} } };
      case "InstanceRequested":
      case "InstanceParametersChanged":
        return { ...event, data: { ...event.data, parameters: maskMap(event.data.parameters, false) ?? {} } } as DomainEvent;
      default:
        return event;
    }
  };

  const readable = (actor: Actor, query: z.infer<typeof EventsQuery>, event: DomainEvent): DomainEvent | undefined => {
    if (!eventMatches(query, event) || !mayRead(actor, event)) return undefined;
    return query.secrets === "1" || query.secrets === "true" ? event : maskEvent(event);
  };

  app.get("/v1/events", async (request) => {
    const actor = actorOf(request);
    const query = parse(EventsQuery, request.query, "query");
    const events: Array<{ position: number; streamKey: string; event: DomainEvent }> = [];
    // Read to the end, `next` is the log's head, not the last commit the filter matched: it must
    // not tell whether someone else's tree or instance has events.
    const head = await master.store.head();
    if (head > master.position) await master.settledWithin(head, SEEN_WAIT_MS);
    let next = query.after;
    let complete = true;
    for await (const commit of master.store.readAll({ after: query.after, ...(query.filter === undefined ? {} : { filter: query.filter }) })) {
      for (const event of commit.events) {
        const shown = readable(actor, query, event);
        if (shown !== undefined) events.push({ position: commit.position, streamKey: commit.streamKey, event: shown });
      }
      next = commit.position;
      if (events.length >= query.limit) {
        complete = false;
        break;
      }
    }
    return { events, next: complete ? Math.max(next, head) : next };
  });

  app.get("/v1/events/stream", (request, reply) => {
    const actor = actorOf(request);
    const query = parse(EventsQuery, request.query, "query");
    const stream = openEventStream(request, reply);
    const subscription = master.store.subscribe({ after: query.after, ...(query.filter === undefined ? {} : { filter: query.filter }) });
    stream.onClose(() => void subscription.close());
    void (async () => {
      try {
        for await (const commit of subscription as AsyncIterable<Commit>) {
          // Who may read an event depends on the read models (whose tree is it?): they must have
          // this commit, or a user's own new tree would be taken for someone else's.
          if (commit.position > master.position) await master.settledWithin(commit.position, SEEN_WAIT_MS);
          for (const event of commit.events) {
            const shown = readable(actor, query, event);
            // Backpressure: a slow reader pauses the subscription instead of buffering the log in memory.
            if (shown !== undefined) await stream.send("event", JSON.stringify({ position: commit.position, streamKey: commit.streamKey, event: shown }));
          }
        }
      } finally {
        stream.end();
      }
    })().catch((error: unknown) => logger.warn({ err: error }, "event stream ended"));
  });

  return app;
}

/** Server-sent events on a hijacked reply, with a heartbeat so proxies keep the stream open. */
function openEventStream(request: FastifyRequest, reply: FastifyReply) {
  reply.hijack();
  const raw = reply.raw;
  raw.writeHead(200, { "content-type": "text/event-stream", "cache-control": "no-cache", connection: "keep-alive" });
  raw.write(": connected\n\n");
  const heartbeat = setInterval(() => raw.write(": heartbeat\n\n"), 15_000);
  const closers: Array<() => void> = [() => clearInterval(heartbeat)];
  request.raw.on("close", () => {
    for (const close of closers) close();
  });
  let closed = false;
  closers.push(() => {
    closed = true;
  });
  return {
    /** Writes one event; resolves once the socket can take more (or is gone). */
    send(event: string, data: string): Promise<void> {
      if (closed || raw.write(`event: ${event}\ndata: ${data}\n\n`)) return Promise.resolve();
      return new Promise((resolve) => {
        raw.once("drain", resolve);
        closers.push(resolve);
      });
    },
    onClose(close: () => void): void {
      closers.push(close);
    },
    end(): void {
      if (!closed) raw.end();
    },
  };
}
