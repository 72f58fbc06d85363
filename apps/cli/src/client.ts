import { closeSync, existsSync, openSync, readSync } from "node:fs";
import { join } from "node:path";
import { z } from "zod";
import type { RequestedState } from "@slap/events";
import { ApiToken } from "@slap/events";
import { Answer, ApiError, Appended, AsOfInfo, AuditReport, ComputerList, ComputerView, EventPage, EventRecord, InstanceDetails, InstanceList, InstanceView, PartitionView, SoftwareView, TreeView } from "@slap/api";
import { CliError, HELP, UsageError, fromEnv, quoted, splitArgv, validate, type Io, type OptionSpec } from "./args.js";

// The contract, re-exported for the commands (they import their views from here).
export { Answer, ApiError, Appended, AsOfInfo, AuditReport, ComputerList, ComputerView, EventPage, EventRecord, InstanceDetails, InstanceList, InstanceView, PartitionView, SoftwareView, TreeView };

// ---------------------------------------------------------------------------------------------
// Errors
// ---------------------------------------------------------------------------------------------

/** The master could not be reached at all (refused, unknown host, reset). Retrying may help. */
export class MasterUnreachable extends CliError {
  override name = "MasterUnreachable";
  readonly retryable = true;
  constructor(url: string, cause: unknown) {
    super(`cannot reach the master at ${url} (is it running? slap master)`, 1, { cause });
  }
}

/** The master answered with an API error (`{ error: { code, message, issues } }`). */
export class MasterRejected extends CliError {
  override name = "MasterRejected";
  readonly retryable = false;
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
  ) {
    super(`${code}: ${message}`);
  }
}

/** The master answered something that is not what API.md promises. Retrying will not help. */
export class UnexpectedAnswer extends CliError {
  override name = "UnexpectedAnswer";
  readonly retryable = false;
}

// ---------------------------------------------------------------------------------------------
// Connection options shared by the client commands
// ---------------------------------------------------------------------------------------------

export const DEFAULT_MASTER = "http://127.0.0.1:8080";

export const clientOptions = {
  master: { type: "string" },
  "token-file": { type: "string" },
} as const satisfies Record<string, OptionSpec>;

export const clientHelp = `connection:
  --master URL        the master (env SLAP_MASTER, default ${DEFAULT_MASTER})
  --token-file FILE   the file holding your API token (env SLAP_TOKEN_FILE); or the token
                      itself in env SLAP_TOKEN; default, for a master on this host only:
                      <SLAP_DATA or ./data>/admin.token when it exists (written by the
                      master at its first start)`;

/** `--as-of`: a past moment to read at, as the master's query (`asOf` for a time, `at` for a log position). */
export type AsOfQuery = { asOf: string } | { at: number };

const AS_OF_ERROR = "must be an ISO time with Z or an offset, e.g. 2026-11-23T10:00:00Z, or a log position";

/** `--as-of TIME|POSITION`, parsed as the master will: an ISO-8601 time with Z or an offset, or a log position. */
export const AsOfArg = z.string().transform((value, ctx): AsOfQuery => {
  if (/^\d{1,15}$/.test(value)) return { at: Number(value) };
  if (z.iso.datetime({ offset: true }).safeParse(value).success) return { asOf: value };
  ctx.addIssue({ code: "custom", message: AS_OF_ERROR });
  return z.NEVER;
});

export const asOfOption = { "as-of": { type: "string" } } as const satisfies Record<string, OptionSpec>;

export const asOfHelp = `  --as-of WHEN   as it was at WHEN: an ISO time with Z or an offset (2026-11-23T10:00:00Z),
                 or a log position; the master folds the log up to the last commit whose
                 time is at or before WHEN (see slap events for times and positions)`;

/** The header of a read as of a past moment: `as of <time> (log position N)`. */
export function asOfHeader(asOf: AsOfInfo): string {
  return `as of ${asOf.time ?? "the start of the log"} (log position ${asOf.position})`;
}

const Connection = z.object({
  master: z.url({ protocol: /^https?$/, error: "must be an http:// or https:// URL" }).transform((url) => url.replace(/\/+$/, "")),
  token: ApiToken.optional(),
});
export type Connection = z.infer<typeof Connection>;

/**
 * `--master`, falling back on `SLAP_MASTER`, then the default; the API token from `--token-file`,
 * else `SLAP_TOKEN`, else `SLAP_TOKEN_FILE`, else (for a master on loopback only) the master's `admin.token` in `SLAP_DATA`
 * (./data) when that exists. Without any, calls go without a token and the master's 401 says so.
 */
export function connectionOf(values: { master?: unknown; "token-file"?: unknown }, env: Io["env"]): Connection {
  // A flag first, then the environment (as for --master): --token-file, SLAP_TOKEN, SLAP_TOKEN_FILE, the data folder's admin token.
  const flag = typeof values["token-file"] === "string" ? values["token-file"] : undefined;
  const envFile = fromEnv(env, "SLAP_TOKEN_FILE");
  const master = values.master ?? fromEnv(env, "SLAP_MASTER") ?? DEFAULT_MASTER;
  const token =
    flag !== undefined
      ? readTokenFile(flag, "--token-file")
      : (fromEnv(env, "SLAP_TOKEN") ??
        (envFile !== undefined ? readTokenFile(envFile, "SLAP_TOKEN_FILE") : isLoopback(master) ? defaultAdminToken(fromEnv(env, "SLAP_DATA") ?? "./data") : undefined));
  return validate(
    Connection,
    { master, token },
    { master: "--master (or SLAP_MASTER)", token: "the API token (SLAP_TOKEN, --token-file or SLAP_TOKEN_FILE)" },
  );
}

/** The token in a file (its first line); a missing or unreadable file is a usage error naming `where`. */
export function readTokenFile(path: string, where: string): string {
  // The first 4 KiB at most: a token is a line, and /dev/zero is a file too.
  const buffer = Buffer.alloc(4_096);
  let fd: number | undefined;
  try {
    fd = openSync(path, "r");
    const read = readSync(fd, buffer, 0, buffer.length, null);
    return buffer.subarray(0, read).toString("utf8").split("\n")[0]!.trim();
  } catch (error) {
    throw new UsageError(`${where}: cannot read ${quoted(path)}: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}`);
  } finally {
    if (fd !== undefined) closeSync(fd);
  }
}

/** Whether a master URL names this host: the data folder's admin token is sent only there, never to another machine. */
function isLoopback(master: unknown): boolean {
  try {
    const host = new URL(String(master)).hostname;
    return host === "localhost" || host === "[::1]" || /^127\.\d+\.\d+\.\d+$/.test(host);
  } catch {
    return false;
  }
}

function defaultAdminToken(data: string): string | undefined {
  const path = join(data, "admin.token");
  return existsSync(path) ? readTokenFile(path, `the admin token ${path}`) : undefined;
}

const listingArgv = { options: { ...clientOptions, ...asOfOption, json: { type: "boolean" } } } as const;
const ListingArgs = z.object({ json: z.boolean().default(false), "as-of": AsOfArg.optional() });

/** The arguments of the listing commands (`slap instances`, `slap computers`): `--json`, `--as-of` and the connection. */
export function parseListingArgs(argv: readonly string[], env: Io["env"]) {
  const split = splitArgv(listingArgv, argv);
  if (split === HELP) return HELP;
  return { ...validate(ListingArgs, split.values), connection: connectionOf(split.values, env) };
}

// ---------------------------------------------------------------------------------------------
// The client
// ---------------------------------------------------------------------------------------------

/** How long a plain call may take before the CLI gives up on it. */
const CALL_TIMEOUT_MS = 30_000;
/** Margin over a long poll's `wait` before the call counts as lost. */
const LONG_POLL_MARGIN_MS = 15_000;

export interface RequestBody {
  releaseUrl: string;
  reference: string;
  softwareType: string;
  parameters: Record<string, string>;
  sla: Record<string, string>;
  shared: boolean;
  state: RequestedState;
}

export interface EventQuery {
  after?: number;
  limit?: number;
  filter?: string;
  type?: string;
  since?: string;
}

interface CallOptions {
  body?: unknown;
  query?: Record<string, string | number | undefined>;
  timeoutMs?: number;
  signal?: AbortSignal;
}

/**
 * The master's HTTP API (API.md) over Node's `fetch`. Every answer is parsed with its zod
 * schema; every failure is a `CliError` whose message is one line for the user.
 */
export class MasterClient {
  constructor(
    readonly connection: Connection,
    private readonly fetchImpl: typeof fetch = fetch,
  ) {}

  /** `POST /v1/requests[?wait=ms]`: the request is idempotent, so asking again is how to poll. */
  request(body: RequestBody, options: { waitMs?: number; signal?: AbortSignal } = {}): Promise<Answer> {
    const wait = options.waitMs ?? 0;
    return this.call("POST", "/v1/requests", Answer, {
      body,
      query: { wait: wait > 0 ? wait : undefined },
      timeoutMs: wait + LONG_POLL_MARGIN_MS,
      ...(options.signal === undefined ? {} : { signal: options.signal }),
    });
  }

  /** `GET /v1/instances/:id/watch`: the answer now and at every change, until `signal` aborts or the master ends it. */
  watch(instanceId: string, signal: AbortSignal): AsyncGenerator<Answer> {
    return this.stream(`/v1/instances/${encodeURIComponent(instanceId)}/watch`, { secrets: "1" }, "answer", Answer, signal);
  }

  /** The caller's instances and trees, now or (`asOf`) as of a past moment. */
  instances(asOf?: AsOfQuery): Promise<InstanceList> {
    return this.call("GET", "/v1/instances", InstanceList, { query: { ...asOf } });
  }

  /** The instance the caller requested under `reference`; connection values masked unless `secrets`. */
  byReference(reference: string, secrets = false, asOf?: AsOfQuery): Promise<InstanceDetails> {
    return this.call("GET", `/v1/references/${encodeURIComponent(reference)}`, InstanceDetails, {
      query: { secrets: secrets ? "1" : undefined, ...asOf },
    });
  }

  bang(instanceId: string, message: string | undefined): Promise<z.infer<typeof Appended>> {
    return this.call("POST", `/v1/instances/${encodeURIComponent(instanceId)}/bang`, Appended, {
      body: message === undefined ? {} : { message },
    });
  }

  supply(computerId: string, releaseUrl: string, state: "available" | "destroyed"): Promise<z.infer<typeof Appended>> {
    return this.call("POST", `/v1/computers/${encodeURIComponent(computerId)}/supply`, Appended, { body: { releaseUrl, state } });
  }

  computers(asOf?: AsOfQuery): Promise<ComputerList> {
    return this.call("GET", "/v1/computers", ComputerList, { query: { ...asOf } });
  }

  /** `GET /v1/audit` (admin): the read models rebuilt from the log, compared with the live ones. */
  audit(): Promise<AuditReport> {
    return this.call("GET", "/v1/audit", AuditReport, { timeoutMs: 300_000 });
  }

  events(query: EventQuery): Promise<EventPage> {
    return this.call("GET", "/v1/events", EventPage, { query: { ...query } });
  }

  /** `GET /v1/events/stream`: live events after `query.after`, until `signal` aborts. */
  eventStream(query: EventQuery, signal: AbortSignal): AsyncGenerator<EventRecord> {
    return this.stream("/v1/events/stream", { ...query }, "event", EventRecord, signal);
  }

  private url(path: string, query: CallOptions["query"] = {}): string {
    const url = new URL(this.connection.master + path);
    for (const [key, value] of Object.entries(query)) if (value !== undefined) url.searchParams.set(key, String(value));
    return url.toString();
  }

  private async send(method: string, path: string, options: CallOptions, accept: string): Promise<Response> {
    const timeoutMs = options.timeoutMs ?? CALL_TIMEOUT_MS;
    const timeout = Number.isFinite(timeoutMs) ? AbortSignal.timeout(timeoutMs) : undefined;
    const signals = [timeout, options.signal].filter((s) => s !== undefined);
    const signal = signals.length === 1 ? signals[0] : signals.length > 1 ? AbortSignal.any(signals) : undefined;
    const headers: Record<string, string> = { accept };
    if (this.connection.token !== undefined) headers.authorization = `Bearer ${this.connection.token}`;
    if (options.body !== undefined) headers["content-type"] = "application/json";
    try {
      return await this.fetchImpl(this.url(path, options.query), {
        method,
        headers,
        ...(signal === undefined ? {} : { signal }),
        ...(options.body === undefined ? {} : { body: JSON.stringify(options.body) }),
      });
    } catch (error) {
      if (options.signal?.aborted === true) throw error;
      if (timeout?.aborted === true) {
        throw new CliError(`the master at ${this.connection.master} did not answer ${method} ${path} within ${Math.round(timeoutMs / 1000)} s`, 1, { cause: error });
      }
      throw new MasterUnreachable(this.connection.master, error);
    }
  }

  private async call<S extends z.ZodType>(method: string, path: string, schema: S, options: CallOptions = {}): Promise<z.output<S>> {
    const response = await this.send(method, path, options, "application/json");
    let text: string;
    try {
      text = await response.text();
    } catch (error) {
      if (options.signal?.aborted === true) throw error;
      throw new MasterUnreachable(this.connection.master, error);
    }
    if (!response.ok) throw this.failure(method, path, response.status, text);
    return parseBody(schema, text, `${method} ${path}`, response.status);
  }

  private failure(method: string, path: string, status: number, text: string): CliError {
    const parsed = ApiError.safeParse(safeJson(text));
    if (!parsed.success) {
      return new UnexpectedAnswer(`unexpected answer from the master to ${method} ${path}: HTTP ${status} ${snippet(text)}`);
    }
    const { code, message, issues } = parsed.data.error;
    const detail = issues !== undefined && issues.length > 0 && !message.includes(issues[0]?.message ?? "") ? ` (${issues.map((i) => `${i.path}: ${i.message}`).join("; ")})` : "";
    const hint = status === 401 ? " (give your token with SLAP_TOKEN, --token-file or SLAP_TOKEN_FILE)" : "";
    return new MasterRejected(status, code, `${message}${detail}${hint}`);
  }

  private async *stream<S extends z.ZodType>(
    path: string,
    query: NonNullable<CallOptions["query"]>,
    eventName: string,
    schema: S,
    signal: AbortSignal,
  ): AsyncGenerator<z.output<S>> {
    // No overall timeout on a stream: it lasts until `signal`; the master sends heartbeats.
    const response = await this.send("GET", path, { query, signal, timeoutMs: Infinity }, "text/event-stream");
    if (!response.ok) throw this.failure("GET", path, response.status, await response.text().catch(() => ""));
    if (response.body === null) throw new UnexpectedAnswer(`unexpected answer from the master to GET ${path}: no body`);
    try {
      for await (const message of serverSentEvents(response.body)) {
        if (message.event !== eventName) continue;
        yield parseBody(schema, message.data, `GET ${path}`, response.status);
      }
    } catch (error) {
      if (signal.aborted || error instanceof CliError) throw error;
      throw new MasterUnreachable(this.connection.master, error);
    }
  }
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
export function parseBody<S extends z.ZodType>(schema: S, text: string, what: string, status: number): z.output<S> {
  const json = safeJson(text);
  if (json === undefined) throw new UnexpectedAnswer(`unexpected answer from the master to ${what}: HTTP ${status}, not JSON: ${snippet(text)}`);
  const parsed = schema.safeParse(json);
  if (parsed.success) return parsed.data;
  const issue = parsed.error.issues[0];
  const where = issue === undefined || issue.path.length === 0 ? "(root)" : issue.path.map(String).join(".");
  throw new UnexpectedAnswer(`unexpected answer from the master to ${what}: ${where}: ${issue?.message ?? "invalid"}`);
}

export interface ServerSentEvent {
  event: string;
  data: string;
}

/**
 * Splits a `text/event-stream` body into its events (`event:` name, default `message`, and
 * `data:` lines joined by newlines). Comments (heartbeats) and other fields are skipped.
 */
export async function* serverSentEvents(body: ReadableStream<Uint8Array>): AsyncGenerator<ServerSentEvent> {
  const reader = body.getReader();
  const decoder = new TextDecoder();
  let buffer = "";
  let event = "message";
  let data: string[] = [];
  try {
    for (;;) {
      const { done, value } = await reader.read();
      buffer += done ? decoder.decode() : decoder.decode(value, { stream: true });
      let newline: number;
      while ((newline = buffer.search(/\r\n|\r|\n/)) >= 0) {
        // A \r ending a chunk may be the first half of \r\n: wait for the next chunk.
        if (!done && newline === buffer.length - 1 && buffer.endsWith("\r")) break;
        const line = buffer.slice(0, newline);
        buffer = buffer.slice(newline + (buffer.startsWith("\r\n", newline) ? 2 : 1));
        if (line === "") {
          if (data.length > 0) yield { event, data: data.join("\n") };
          event = "message";
          data = [];
          continue;
        }
        if (line.startsWith(":")) continue;
        const colon = line.indexOf(":");
        const field = colon < 0 ? line : line.slice(0, colon);
        const value = colon < 0 ? "" : line.slice(colon + 1).replace(/^ /, "");
        if (field === "event") event = value;
        else if (field === "data") data.push(value);
      }
      if (done) return;
    }
  } finally {
    await reader.cancel().catch(() => undefined);
  }
}
