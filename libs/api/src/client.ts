import type { z } from "zod";
import { MasterError, MasterRejected, MasterTimedOut, MasterUnreachable, UnexpectedAnswer } from "./errors.js";
import { routes, pathOf, type OperationId, type RouteSpec, type Routes } from "./routes.js";
import { ApiError, type Answer, type AuditReport, type ComputerList, type EventPage, type EventRecord, type InstanceChanged, type InstanceDetails, type InstanceList, type ComputerChanged, type TokenList, type TokenRevoked } from "./schemas.js";
import type { EventsQuery, RequestInstance } from "./inputs.js";
import { serverSentEvents } from "./sse.js";

type Query = Readonly<Record<string, string | number | undefined>>;

/** What a call of a route takes: its path parameters, query and body, as the route table says. */
export type CallInput<R extends RouteSpec> = (R extends { params: infer P extends z.ZodType } ? { params: { readonly [K in keyof z.input<P>]: string } } : { params?: never }) &
  (R extends { query: infer Q extends z.ZodType } ? { query?: { readonly [K in keyof z.input<Q>]?: string | number | undefined } } : { query?: never }) &
  (R extends { body: infer B extends z.ZodType } ? (Record<never, never> extends z.input<B> ? { body?: z.input<B> } : { body: z.input<B> }) : { body?: never });

type SuccessStatus = 200 | 201 | 202;

/** What a route answers on success: the union of its 2xx bodies, as parsed. */
export type AnswerOf<R extends RouteSpec> = {
  [S in keyof R["responses"]]: S extends SuccessStatus ? (R["responses"][S] extends { body: infer B extends z.ZodType } ? z.output<B> : never) : never;
}[keyof R["responses"]];

/** The data of each event a streaming route sends, as parsed. */
export type EventOf<R extends RouteSpec> = R["responses"] extends { 200: { stream: { data: infer D extends z.ZodType } } } ? z.output<D> : never;

/** The routes answering JSON, and those answering a stream of server-sent events. */
export type JsonOperation = { [K in OperationId]: [AnswerOf<Routes[K]>] extends [never] ? never : K }[OperationId];
export type StreamOperation = { [K in OperationId]: [EventOf<Routes[K]>] extends [never] ? never : K }[OperationId];

export interface CallOptions {
  /** Headers of this call (`x-slap-partition`, `x-slap-seen`). */
  headers?: Readonly<Record<string, string>>;
  /** Give up after this long (default 30 s; `Infinity`: never, for a stream). */
  timeoutMs?: number;
  /** Abort the call; an aborted call rejects with the signal's reason, not a `MasterError`. */
  signal?: AbortSignal;
}

export interface MasterClientOptions {
  /** The master's base URL, `http://host:port`. */
  master: string;
  /** The API token, sent as `Authorization: Bearer <token>` on every call. */
  token?: string | undefined;
  fetch?: typeof fetch;
  /**
   * The certificate authorities (PEM) an `https://` master's certificate must chain to, instead
   * of the system's: a master with its own CA (`slap master --tls-cert`). Not with `fetch`.
   */
  ca?: string | Buffer | undefined;
}

/**
 * Node's `fetch`, trusting only the authorities in `ca`: an undici agent as its dispatcher,
 * loaded at the first call (a client that never needs it does not pay for loading undici).
 */
export function fetchTrusting(ca: string | Buffer): typeof fetch {
  let dispatcher: Promise<unknown> | undefined;
  return (async (input: Parameters<typeof fetch>[0], init?: RequestInit) => {
    dispatcher ??= import("undici").then(({ Agent }) => new Agent({ connect: { ca } }));
    return fetch(input, { ...init, dispatcher: await dispatcher } as RequestInit);
  });
}

/** How long a plain call may take. */
export const CALL_TIMEOUT_MS = 30_000;
/** Margin over a long poll's `wait` before the call counts as lost. */
const LONG_POLL_MARGIN_MS = 15_000;

/** `asOf` for a time, `at` for a log position (API.md, "As of"). */
export type AsOfMoment = { asOf: string } | { at: number };

/**
 * The master's HTTP API over `fetch`, through the route table: `call` and `stream` take an
 * operation of `routes` and its input, and parse the answer with the schema the table gives for
 * its status. Every failure is a `MasterError` (`MasterUnreachable`, `MasterTimedOut`,
 * `MasterRejected`, `UnexpectedAnswer`), passed through `fail` (a subclass may turn it into its
 * own error, as the CLI does). The named methods are the calls the CLI and the dashboard make.
 */
export class MasterClient {
  readonly master: string;
  private readonly token: string | undefined;
  private readonly fetchImpl: typeof fetch;

  constructor(options: MasterClientOptions) {
    this.master = options.master.replace(/\/+$/, "");
    this.token = options.token;
    this.fetchImpl = options.fetch ?? (options.ca === undefined ? fetch : fetchTrusting(options.ca));
  }

  /** Calls a route answering JSON; resolves with its success body, parsed. */
  async call<K extends JsonOperation>(operation: K, input: CallInput<Routes[K]>, options: CallOptions = {}): Promise<AnswerOf<Routes[K]>> {
    const route: RouteSpec = routes[operation];
    const { response, what, timeout, timeoutMs } = await this.send(route, input, options, "application/json");
    let text: string;
    try {
      text = await response.text();
    } catch (error) {
      if (options.signal?.aborted === true) throw error;
      // The time ran out while the body was coming: a timeout, as when it runs out before the headers.
      if (timeout?.aborted === true) throw this.fail(new MasterTimedOut(this.master, what, timeoutMs, error));
      throw this.fail(new MasterUnreachable(this.master, what, error));
    }
    if (!response.ok) throw this.fail(failure(what, response.status, text));
    const spec = route.responses[response.status];
    if (spec === undefined || !("body" in spec)) throw this.fail(new UnexpectedAnswer(`unexpected answer from the master to ${what}: HTTP ${response.status} ${snippet(text)}`, response.status));
    return parseBody(spec.body, text, what, response.status, (error) => this.fail(error)) as AnswerOf<Routes[K]>;
  }

  /** Opens a route answering server-sent events; yields each event's data, parsed, until `signal` aborts or the master ends the stream. */
  async *stream<K extends StreamOperation>(operation: K, input: CallInput<Routes[K]>, signal: AbortSignal, options: Omit<CallOptions, "signal" | "timeoutMs"> = {}): AsyncGenerator<EventOf<Routes[K]>> {
    const route: RouteSpec = routes[operation];
    const spec = route.responses[200];
    if (spec === undefined || !("stream" in spec)) throw new TypeError(`${operation} is not a stream`);
    // No overall timeout on a stream: it lasts until `signal`; the master sends heartbeats.
    const { response, what } = await this.send(route, input, { ...options, signal, timeoutMs: Infinity }, "text/event-stream");
    if (!response.ok) throw this.fail(failure(what, response.status, await response.text().catch(() => "")));
    if (response.body === null) throw this.fail(new UnexpectedAnswer(`unexpected answer from the master to ${what}: no body`, response.status));
    try {
      for await (const message of serverSentEvents(response.body)) {
        if (message.event !== spec.stream.event) continue;
        yield parseBody(spec.stream.data, message.data, what, response.status, (error) => error) as EventOf<Routes[K]>;
      }
    } catch (error) {
      if (signal.aborted) throw error;
      throw this.fail(error instanceof MasterError ? error : new MasterUnreachable(this.master, what, error));
    }
  }

  /** What a failure is thrown as: the `MasterError` itself, unless a subclass says otherwise. */
  protected fail(error: MasterError): Error {
    return error;
  }

  // -- The calls of the CLI and the dashboard -----------------------------------------------

  /** `POST /v1/requests[?wait=ms]`: the request is idempotent, so asking again is how to poll. */
  request(body: z.input<typeof RequestInstance>, options: { waitMs?: number; signal?: AbortSignal; headers?: Readonly<Record<string, string>> } = {}): Promise<Answer> {
    const wait = options.waitMs ?? 0;
    return this.call(
      "requestInstance",
      { body, query: { wait: wait > 0 ? wait : undefined } },
      { timeoutMs: wait + LONG_POLL_MARGIN_MS, ...(options.signal === undefined ? {} : { signal: options.signal }), ...(options.headers === undefined ? {} : { headers: options.headers }) },
    );
  }

  /** `GET /v1/instances/:id/watch`: the answer now and at every change, until `signal` aborts or the master ends it. */
  watch(instanceId: string, signal: AbortSignal): AsyncGenerator<Answer> {
    return this.stream("watchInstance", { params: { instanceId }, query: { secrets: "1" } }, signal);
  }

  /** The caller's instances and trees, now or (`asOf`) as of a past moment. */
  instances(asOf?: AsOfMoment): Promise<InstanceList> {
    return this.call("listInstances", { query: { ...asOf } });
  }

  /** The instance the caller requested under `reference`; connection values masked unless `secrets`. */
  byReference(reference: string, secrets = false, asOf?: AsOfMoment): Promise<InstanceDetails> {
    return this.call("getByReference", { params: { reference }, query: { secrets: secrets ? "1" : undefined, ...asOf } });
  }

  /** An instance by its id, its answer and the shared instances it hosts; connection values masked unless `secrets`. */
  instance(instanceId: string, secrets = false, asOf?: AsOfMoment): Promise<InstanceDetails> {
    return this.call("getInstance", { params: { instanceId }, query: { secrets: secrets ? "1" : undefined, ...asOf } });
  }

  /** `POST /v1/instances/:id/state`: starts, stops or destroys an instance; its parameters stay as they are. */
  changeState(instanceId: string, state: "started" | "stopped" | "destroyed"): Promise<Answer> {
    return this.call("changeState", { params: { instanceId }, body: { state } });
  }

  bang(instanceId: string, message: string | undefined): Promise<InstanceChanged> {
    return this.call("bang", { params: { instanceId }, body: message === undefined ? {} : { message } });
  }

  supply(computerId: string, releaseUrl: string, state: "available" | "destroyed"): Promise<ComputerChanged> {
    return this.call("supplySoftware", { params: { computerId }, body: { releaseUrl, state } });
  }

  computers(asOf?: AsOfMoment): Promise<ComputerList> {
    return this.call("listComputers", { query: { ...asOf } });
  }

  /** `GET /v1/tokens` (admin): the tokens of the master's token file, without their secrets. */
  tokens(): Promise<TokenList> {
    return this.call("listTokens", {});
  }

  /** `POST /v1/tokens/:id/revoke` (admin): the master removes the token from its file and refuses it from then on. */
  revokeToken(tokenId: string): Promise<TokenRevoked> {
    return this.call("revokeToken", { params: { tokenId } });
  }

  /** `GET /v1/audit` (admin): the read models rebuilt from the log, compared with the live ones. */
  audit(): Promise<AuditReport> {
    return this.call("audit", {}, { timeoutMs: 300_000 });
  }

  events(query: Partial<Pick<EventsQuery, "after" | "limit" | "filter" | "type" | "since">>): Promise<EventPage> {
    return this.call("listEvents", { query: { ...query } });
  }

  /** `GET /v1/events/stream`: live events after `query.after`, until `signal` aborts. */
  eventStream(query: Partial<Pick<EventsQuery, "after" | "filter" | "type" | "since">>, signal: AbortSignal): AsyncGenerator<EventRecord> {
    return this.stream("streamEvents", { query: { ...query } }, signal);
  }

  // -- HTTP ------------------------------------------------------------------------------------

  private url(route: RouteSpec, input: { params?: Readonly<Record<string, string>>; query?: Query }): { url: string; path: string } {
    const path = pathOf(route, input.params);
    const url = new URL(this.master + path);
    for (const [key, value] of Object.entries(input.query ?? {})) if (value !== undefined) url.searchParams.set(key, String(value));
    return { url: url.toString(), path };
  }

  private async send(route: RouteSpec, input: { params?: Readonly<Record<string, string>>; query?: Query; body?: unknown }, options: CallOptions, accept: string) {
    const { url, path } = this.url(route, input);
    const what = `${route.method} ${path}`;
    const timeoutMs = options.timeoutMs ?? CALL_TIMEOUT_MS;
    const timeout = Number.isFinite(timeoutMs) ? AbortSignal.timeout(timeoutMs) : undefined;
    const signals = [timeout, options.signal].filter((s) => s !== undefined);
    const signal = signals.length === 1 ? signals[0] : signals.length > 1 ? AbortSignal.any(signals) : undefined;
    const headers: Record<string, string> = { accept, ...options.headers };
    if (this.token !== undefined) headers.authorization = `Bearer ${this.token}`;
    if (input.body !== undefined) headers["content-type"] = "application/json";
    try {
      const response = await this.fetchImpl(url, {
        method: route.method,
        headers,
        ...(signal === undefined ? {} : { signal }),
        ...(input.body === undefined ? {} : { body: JSON.stringify(input.body) }),
      });
      return { response, what, timeout, timeoutMs };
    } catch (error) {
      if (options.signal?.aborted === true) throw error;
      if (timeout?.aborted === true) throw this.fail(new MasterTimedOut(this.master, what, timeoutMs, error));
      throw this.fail(new MasterUnreachable(this.master, what, error));
    }
  }
}

/** The error of a non-2xx answer: the API's error shape, or something else. */
function failure(what: string, status: number, text: string): MasterError {
  const parsed = ApiError.safeParse(safeJson(text));
  if (!parsed.success) return new UnexpectedAnswer(`unexpected answer from the master to ${what}: HTTP ${status} ${snippet(text)}`, status);
  const { code, message, issues } = parsed.data.error;
  return new MasterRejected(status, code, message, issues ?? []);
}

function safeJson(text: string): unknown {
  try {
    return JSON.parse(text) as unknown;
  } catch {
    return undefined;
  }
}

function snippet(text: string): string {
  const line = text.replace(/\s+/g, " ").trim();
  return line.length > 120 ? `${line.slice(0, 117)}...` : line;
}

/** Parses a body with its schema; a mismatch names the first offending path. */
function parseBody<S extends z.ZodType>(schema: S, text: string, what: string, status: number, fail: (error: MasterError) => Error): z.output<S> {
  const json = safeJson(text);
  if (json === undefined) throw fail(new UnexpectedAnswer(`unexpected answer from the master to ${what}: HTTP ${status}, not JSON: ${snippet(text)}`, status));
  const parsed = schema.safeParse(json);
  if (parsed.success) return parsed.data;
  const issue = parsed.error.issues[0];
  const where = issue === undefined || issue.path.length === 0 ? "(root)" : issue.path.map(String).join(".");
  throw fail(new UnexpectedAnswer(`unexpected answer from the master to ${what}: ${where}: ${issue?.message ?? "invalid"}`, status));
}
