import type { IncomingMessage, ServerResponse } from "node:http";
import type { FastifyBaseLogger, FastifyInstance, FastifyReply, FastifyRequest, RawServerDefault } from "fastify";
import type { z } from "zod";
import { routes, routerPath, type OperationId, type RouteSpec, type Routes } from "@slap/api";
import type { Actor } from "@slap/events";
import type { Rejection } from "../../core/decide.js";
import { CommandRejected } from "../master.js";

/** A refusal of the HTTP layer itself (a bad input, no credentials), answered in the API's error shape. */
export class HttpError extends Error {
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

/** Parses an input with its schema; a refusal is a 400 naming every issue's path. */
export function parse<T extends z.ZodType>(schema: T, value: unknown, where: string): z.output<T> {
  // An absent body or query is empty; a JSON `null` is not (it is refused as not an object).
  const parsed = schema.safeParse(value === undefined ? {} : value);
  if (parsed.success) return parsed.data;
  const issues = parsed.error.issues.map((i) => ({ path: i.path.map(String).join("."), message: i.message }));
  throw new HttpError(400, "BadRequest", `invalid ${where}: ${issues.map((i) => `${i.path || "(root)"}: ${i.message}`).join("; ")}`, issues);
}

/** A value, or the policy's (or a decider's) refusal thrown for the error handler to answer (403, 404, 409). */
export function orRefuse<T extends object>(result: T | Rejection): T {
  if ("ok" in result && result.ok === false) throw new CommandRejected(result);
  return result as T;
}

/** Throws a policy refusal, if any. */
export function refuseIf(rejection: Rejection | undefined): void {
  if (rejection !== undefined) throw new CommandRejected(rejection);
}

type Output<S> = S extends z.ZodType ? z.output<S> : undefined;

/** What a handler is given: the sender (none on a public route) and the inputs, parsed with the route's schemas. */
export interface Call<R extends RouteSpec> {
  actor: R["auth"] extends "public" ? undefined : Actor;
  params: Output<R["params"]>;
  query: Output<R["query"]>;
  body: Output<R["body"]>;
  request: FastifyRequest;
  reply: FastifyReply;
}

/** What a handler answers after it hijacked the reply to stream server-sent events. */
export const STREAMED = Symbol("streamed");

type SuccessStatus = 200 | 201 | 202;

type Known<T> = { [K in keyof T as string extends K ? never : number extends K ? never : K]: T[K] };

/**
 * A body as the master builds it for a schema's input: the schema's fields, checked, without the
 * loose objects' `[key: string]: unknown` (the read models' interfaces have none, and extra
 * fields, such as an instance's `node`, are allowed). A record stays a record.
 */
export type Sent<T> = T extends readonly (infer U)[]
  ? ReadonlyArray<Sent<U>>
  : T extends object
    ? [keyof Known<T>] extends [never]
      ? { [key: string]: Sent<T[keyof T]> }
      : { [K in keyof Known<T>]: Sent<T[K]> }
    : T;

/** What a handler answers: one of its route's success statuses with that status's body (as the table's schema takes it), or a stream. */
export type Reply<R extends RouteSpec> =
  | {
      [S in keyof R["responses"]]: S extends SuccessStatus ? (R["responses"][S] extends { body: infer B extends z.ZodType } ? { status: S; body: Sent<z.input<B>> } : never) : never;
    }[keyof R["responses"]]
  | (R["responses"] extends { 200: { stream: unknown } } ? typeof STREAMED : never);

/** The handler of one route of the table. */
export interface Handler<R extends RouteSpec> {
  /**
   * Runs after the path parameters are parsed, before the query and the body are: a refusal
   * that must come first (a user must not learn, from a 400 about a body, that an instance exists).
   */
  guard?: (actor: Call<R>["actor"], params: Output<R["params"]>) => void;
  handle: (call: Call<R>) => Reply<R> | Promise<Reply<R>>;
}

/** Handlers for some of the table's routes, by operationId. */
export type Handlers<K extends OperationId> = { [O in K]: Handler<Routes[O]> };

/**
 * Registers a handler for each route of the table it is given: Fastify's route from the table's
 * method and path; the path parameters, the query and the body parsed with the table's schemas
 * (those a route has no schema for are not read); the handler's status and body sent.
 */
export function registerRoutes<K extends OperationId, L extends FastifyBaseLogger>(
  app: FastifyInstance<RawServerDefault, IncomingMessage, ServerResponse, L>,
  handlers: Handlers<K>,
  actorOf: (request: FastifyRequest) => Actor,
): void {
  for (const operation of Object.keys(handlers) as K[]) {
    const route: RouteSpec = routes[operation];
    const handler = handlers[operation] as unknown as Handler<RouteSpec>;
    app.route({
      method: route.method,
      url: routerPath(route),
      handler: async (request, reply) => {
        const actor = route.auth === "public" ? undefined : actorOf(request);
        const params = route.params === undefined ? undefined : parse(route.params, request.params, "path");
        handler.guard?.(actor as never, params);
        const query = route.query === undefined ? undefined : parse(route.query, request.query, "query");
        const body = route.body === undefined ? undefined : parse(route.body, request.body, "body");
        const answer = (await handler.handle({ actor, params, query, body, request, reply } as never)) as typeof STREAMED | { status: number; body: unknown };
        if (answer === STREAMED) return reply;
        return reply.code(answer.status).send(answer.body);
      },
    });
  }
}
