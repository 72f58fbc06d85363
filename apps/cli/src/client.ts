import { closeSync, existsSync, openSync, readFileSync, readSync } from "node:fs";
import { join } from "node:path";
import { z } from "zod";
import { ApiToken } from "@slap/events";
import {
  Answer,
  ApiError,
  Appended,
  AsOfInfo,
  AuditReport,
  ComputerList,
  ComputerView,
  EventPage,
  EventRecord,
  InstanceDetails,
  InstanceList,
  InstanceView,
  MasterClient as ApiClient,
  MasterError,
  MasterRejected,
  MasterTimedOut,
  MasterUnreachable,
  PartitionView,
  SoftwareView,
  TreeView,
  UnexpectedAnswer,
  type AsOfMoment,
  type RequestInstance,
} from "@slap/api";
import { CliError, HELP, UsageError, fromEnv, quoted, splitArgv, validate, type Io, type OptionSpec } from "./args.js";

// The contract, re-exported for the commands (they import their views from here).
export { Answer, ApiError, Appended, AsOfInfo, AuditReport, ComputerList, ComputerView, EventPage, EventRecord, InstanceDetails, InstanceList, InstanceView, PartitionView, SoftwareView, TreeView };
// The client's errors, for `isMasterFailure`.
export { MasterError, MasterRejected, MasterUnreachable, UnexpectedAnswer };

// ---------------------------------------------------------------------------------------------
// Errors
// ---------------------------------------------------------------------------------------------

/**
 * A call to the master that failed, as the CLI says it: one line for the user, exit code 1. Its
 * `reason` is the client's `MasterError` (`MasterUnreachable`, `MasterTimedOut`, `MasterRejected`,
 * `UnexpectedAnswer`), whose name, status, code and retryability it carries.
 */
export class MasterFailure extends CliError {
  override name: string;
  readonly status: number;
  readonly code: string;
  readonly retryable: boolean;
  constructor(
    readonly reason: MasterError,
    message: string,
  ) {
    super(message, 1, { cause: reason });
    this.name = reason.name;
    this.status = reason.status;
    this.code = reason.code;
    this.retryable = reason.retryable;
  }
}

/** Whether an error is a failed call to the master of this kind (`MasterRejected`, `UnexpectedAnswer`, …). */
export function isMasterFailure<E extends MasterError>(error: unknown, kind: abstract new (...args: never[]) => E): error is MasterFailure & { reason: E } {
  return error instanceof MasterFailure && error.reason instanceof kind;
}

/** Node's codes for a TLS certificate it does not trust (or that does not name the host). */
const UNTRUSTED_CERTIFICATE = /^(UNABLE_TO_VERIFY_LEAF_SIGNATURE|UNABLE_TO_GET_ISSUER_CERT(_LOCALLY)?|SELF_SIGNED_CERT_IN_CHAIN|DEPTH_ZERO_SELF_SIGNED_CERT|CERT_HAS_EXPIRED|CERT_NOT_YET_VALID|ERR_TLS_CERT_ALTNAME_INVALID|CERT_UNTRUSTED)$/;

/** The first `code` in an error's chain of causes. */
function codeIn(error: unknown): string | undefined {
  for (let at: unknown = error, depth = 0; at instanceof Error && depth < 5; at = at.cause, depth++) {
    const code = (at as { code?: unknown }).code;
    if (typeof code === "string" && UNTRUSTED_CERTIFICATE.test(code)) return code;
  }
  return undefined;
}

/** What the CLI says of a failed call: which master, why (unreachable, a certificate not trusted), and for a 401 how to give a token. */
function sayFailure(error: MasterError, master: string): MasterFailure {
  if (error instanceof MasterTimedOut) return new MasterFailure(error, error.message);
  const tls = codeIn(error);
  if (tls !== undefined) return new MasterFailure(error, `the master at ${master} has a certificate this client does not trust (${tls}): give its CA with --ca FILE or SLAP_CA`);
  if (error instanceof MasterUnreachable) return new MasterFailure(error, `cannot reach the master at ${master} (is it running? slap master)`);
  const hint = error.status === 401 ? ` (the master at ${master} refused it; give your token with SLAP_TOKEN, --token-file or SLAP_TOKEN_FILE, and --master or SLAP_MASTER for another master)` : "";
  return new MasterFailure(error, `${error.message}${hint}`);
}

// ---------------------------------------------------------------------------------------------
// Connection options shared by the client commands
// ---------------------------------------------------------------------------------------------

export const DEFAULT_MASTER = "http://127.0.0.1:8080";

export const clientOptions = {
  master: { type: "string" },
  "token-file": { type: "string" },
  ca: { type: "string" },
} as const satisfies Record<string, OptionSpec>;

export const clientHelp = `connection:
  --master URL        the master (env SLAP_MASTER, default ${DEFAULT_MASTER}); https:// is
                      verified against the system's CAs, or those of --ca
  --ca FILE           the CA certificates (PEM) an https:// master's certificate must chain
                      to (env SLAP_CA)
  --token-file FILE   the file holding your API token (env SLAP_TOKEN_FILE); or the token
                      itself in env SLAP_TOKEN; default, for a master on this host only:
                      <SLAP_DATA or ./data>/admin.token when it exists (written by the
                      master at its first start)`;

/** `--as-of`: a past moment to read at, as the master's query (`asOf` for a time, `at` for a log position). */
export type AsOfQuery = AsOfMoment;

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
  /** The PEM text of `--ca`/`SLAP_CA`. */
  ca: z.string().min(1, "is empty").optional(),
});
export type Connection = z.infer<typeof Connection>;

/**
 * `--master`, falling back on `SLAP_MASTER`, then the default; the API token from `--token-file`,
 * else `SLAP_TOKEN`, else `SLAP_TOKEN_FILE`, else (for a master on loopback only) the master's `admin.token` in `SLAP_DATA`
 * (./data) when that exists. Without any, calls go without a token and the master's 401 says so.
 */
export function connectionOf(values: { master?: unknown; "token-file"?: unknown; ca?: unknown }, env: Io["env"]): Connection {
  // A flag first, then the environment (as for --master): --token-file, SLAP_TOKEN, SLAP_TOKEN_FILE, the data folder's admin token.
  const flag = typeof values["token-file"] === "string" ? values["token-file"] : undefined;
  const envFile = fromEnv(env, "SLAP_TOKEN_FILE");
  const master = values.master ?? fromEnv(env, "SLAP_MASTER") ?? DEFAULT_MASTER;
  const token =
    flag !== undefined
      ? readTokenFile(flag, "--token-file")
      : (fromEnv(env, "SLAP_TOKEN") ??
        (envFile !== undefined ? readTokenFile(envFile, "SLAP_TOKEN_FILE") : isLoopback(master) ? defaultAdminToken(fromEnv(env, "SLAP_DATA") ?? "./data") : undefined));
  const caFile = typeof values.ca === "string" ? values.ca : fromEnv(env, "SLAP_CA");
  const ca = caFile === undefined ? undefined : readCaFile(caFile, typeof values.ca === "string" ? "--ca" : "SLAP_CA");
  return validate(
    Connection,
    { master, token, ...(ca === undefined ? {} : { ca }) },
    { master: "--master (or SLAP_MASTER)", token: "the API token (SLAP_TOKEN, --token-file or SLAP_TOKEN_FILE)", ca: "--ca (or SLAP_CA)" },
  );
}

/** A CA file's PEM text; a missing or unreadable file is a usage error naming `where`. */
function readCaFile(path: string, where: string): string {
  try {
    return readFileSync(path, "utf8");
  } catch (error) {
    throw new UsageError(`${where}: cannot read ${quoted(path)}: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}`);
  }
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

export type RequestBody = z.input<typeof RequestInstance>;
export type EventQuery = Parameters<ApiClient["events"]>[0];

/**
 * The master's HTTP API (API.md) as `@slap/api`'s client calls it (every answer parsed with the
 * route table's schema), with the connection's token; every failure is a `MasterFailure`, a
 * `CliError` whose message is one line for the user.
 */
export class MasterClient extends ApiClient {
  constructor(
    readonly connection: Connection,
    fetchImpl?: typeof fetch,
  ) {
    super({ master: connection.master, token: connection.token, ...(fetchImpl === undefined ? { ca: connection.ca } : { fetch: fetchImpl }) });
  }

  protected override fail(error: MasterError): Error {
    return sayFailure(error, this.connection.master);
  }
}
