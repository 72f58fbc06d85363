import { createHash, randomBytes } from "node:crypto";
import { watch, type FSWatcher } from "node:fs";
import { mkdir, readFile, rename, writeFile } from "node:fs/promises";
import { basename, dirname, join } from "node:path";
import type { Logger } from "pino";
import { z } from "zod";
import { ApiToken, ComputerId, PartitionId, UserId, type Actor } from "@slap/events";

/**
 * API tokens: who a caller of the master's HTTP API is.
 *
 * A token file (JSON, see `TokenFile`) lists the tokens the master accepts, each with its role:
 * `admin` (sees and changes everything), `user` (their own instance trees), `node` (the agent
 * of one computer: it registers that computer, reports its software, and acts for the partitions
 * of that computer only), or `metrics` (reads `GET /metrics`, nothing else). A token may be stored as its SHA-256 (`sha256`) rather than in clear
 * (`token`); the master keeps only hashes in memory either way.
 */

const Sha256 = z.string().regex(/^[0-9a-f]{64}$/, "must be 64 lowercase hex digits (the token's SHA-256)");

const secretFields = { token: ApiToken.optional(), sha256: Sha256.optional(), name: z.string().max(200).optional() };
const oneSecret = {
  check: (entry: { token?: string | undefined; sha256?: string | undefined }) => (entry.token === undefined) !== (entry.sha256 === undefined),
  issue: { message: "give exactly one of token or sha256" },
};

export const TokenEntry = z.discriminatedUnion("role", [
  z.object({ role: z.literal("admin"), ...secretFields }).strict().refine(oneSecret.check, oneSecret.issue),
  z
    .object({ role: z.literal("user"), user: UserId.refine((u) => u !== "admin", "admin is a role: use role admin"), ...secretFields })
    .strict()
    .refine(oneSecret.check, oneSecret.issue),
  z.object({ role: z.literal("node"), computer: ComputerId, ...secretFields }).strict().refine(oneSecret.check, oneSecret.issue),
  z.object({ role: z.literal("metrics"), ...secretFields }).strict().refine(oneSecret.check, oneSecret.issue),
]);
export type TokenEntry = z.infer<typeof TokenEntry>;

/** The token file: `{ "tokens": [ { "role": "admin", "token": "…" }, { "role": "user", "user": "alice", "sha256": "…" }, { "role": "node", "computer": "COMP-1", "token": "…" } ] }`. */
export const TokenFile = z.object({ tokens: z.array(TokenEntry) }).strict();
export type TokenFile = z.infer<typeof TokenFile>;

/** Who a token says the caller is. */
export type Identity = { role: "admin" } | { role: "user"; user: string } | { role: "node"; computer: string } | { role: "metrics" };

/**
 * A token as it may be shown (`GET /v1/tokens`, `slap token list`): never the secret, nor its
 * whole hash — `id` is the first 16 hex digits of its SHA-256, enough to name it for `revoke`.
 */
export type TokenInfo = {
  id: string;
  role: TokenEntry["role"];
  user?: string;
  computer?: string;
  name?: string;
};

/** A token file that cannot be read or is not valid: says which file and which entry. */
export class TokenFileError extends Error {
  override name = "TokenFileError";
  readonly retryable = false;
}

export function sha256Of(token: string): string {
  return createHash("sha256").update(token, "utf8").digest("hex");
}

/** A new random token (32 bytes of entropy, URL-safe). */
export function newToken(): string {
  return `slap_${randomBytes(32).toString("base64url")}`;
}

function identityOf(entry: TokenEntry): Identity {
  switch (entry.role) {
    case "admin":
      return { role: "admin" };
    case "user":
      return { role: "user", user: entry.user };
    case "node":
      return { role: "node", computer: entry.computer };
    case "metrics":
      return { role: "metrics" };
  }
}

const TOKEN_ID_LENGTH = 16;

/** A token's id: the start of its SHA-256 (see `TokenInfo`). */
export function tokenIdOf(entry: TokenEntry): string {
  return (entry.sha256 ?? sha256Of(entry.token!)).slice(0, TOKEN_ID_LENGTH);
}

/** An entry of the token file as it may be shown. */
export function tokenInfoOf(entry: TokenEntry): TokenInfo {
  return {
    id: tokenIdOf(entry),
    role: entry.role,
    ...(entry.role === "user" ? { user: entry.user } : {}),
    ...(entry.role === "node" ? { computer: entry.computer } : {}),
    ...(entry.name === undefined ? {} : { name: entry.name }),
  };
}

/** The tokens the master accepts, by SHA-256: a lookup never compares secrets byte by byte. */
export class Credentials {
  private readonly byHash = new Map<string, Identity>();

  /** @throws TokenFileError when two entries are the same token: which identity it names would be a guess. */
  constructor(entries: readonly TokenEntry[]) {
    const at = new Map<string, number>();
    entries.forEach((entry, index) => {
      const hash = entry.sha256 ?? sha256Of(entry.token!);
      const first = at.get(hash);
      if (first !== undefined) throw new TokenFileError(`tokens.${index}: the same token as tokens.${first}`);
      at.set(hash, index);
      this.byHash.set(hash, identityOf(entry));
    });
  }

  get size(): number {
    return this.byHash.size;
  }

  identify(token: string): Identity | undefined {
    return this.byHash.get(sha256Of(token));
  }

  /** Itself: a fixed set of credentials is a `CredentialSource` that never changes. */
  get current(): Credentials {
    return this;
  }

  /** These credentials plus more (tokens minted in-process, e.g. the embedded node's). */
  with(entries: readonly TokenEntry[]): Credentials {
    const merged = new Credentials(entries);
    for (const [hash, identity] of this.byHash) if (!merged.byHash.has(hash)) merged.byHash.set(hash, identity);
    return merged;
  }

  /** Reads and validates a token file. */
  static async load(path: string): Promise<Credentials> {
    const file = await readTokenFile(path);
    try {
      return new Credentials(file.tokens);
    } catch (error) {
      throw new TokenFileError(`invalid token file ${path}: ${(error as Error).message}`);
    }
  }
}

/** Reads and validates a token file (`TokenFileError` naming the file and the entry; `cause.code` ENOENT when it is missing). */
export async function readTokenFile(path: string): Promise<TokenFile> {
  let text: string;
  try {
    text = await readFile(path, "utf8");
  } catch (error) {
    throw new TokenFileError(`cannot read the token file ${path}: ${(error as Error).message}`, { cause: error });
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    // Not the parser's message: it quotes the text around the error, which may be a token.
    throw new TokenFileError(`the token file ${path} is not JSON`);
  }
  const parsed = TokenFile.safeParse(json);
  if (!parsed.success) {
    const issues = parsed.error.issues.map((i) => `${i.path.map(String).join(".") || "(root)"}: ${i.message}`).join("; ");
    throw new TokenFileError(`invalid token file ${path}: ${issues}`);
  }
  return parsed.data;
}

/** Why a token cannot be revoked: there is none of that id, or it is the file's last admin token. */
export type RevokeRefusal = { ok: false; reason: "NotFound"; detail: string } | { ok: false; reason: "Conflict"; detail: string };

/**
 * Removes the token `id` names from the token file (rewritten atomically, 0600) and answers what
 * it was. Refused: no token has that id; it is the last admin token of the file (nobody could
 * administer the master any more). A master watching the file stops accepting it at once.
 */
export async function revokeInTokenFile(path: string, id: string): Promise<TokenInfo | RevokeRefusal> {
  const file = await readTokenFile(path);
  const index = file.tokens.findIndex((entry) => tokenIdOf(entry) === id);
  if (index < 0) return { ok: false, reason: "NotFound", detail: `no token ${id} in ${path}` };
  const entry = file.tokens[index]!;
  if (entry.role === "admin" && file.tokens.filter((t) => t.role === "admin").length === 1) {
    return { ok: false, reason: "Conflict", detail: `token ${id} is the last admin token of ${path}: add another admin token first` };
  }
  await writeSecretFile(path, `${JSON.stringify({ tokens: file.tokens.filter((_, i) => i !== index) }, null, 2)}\n`);
  return tokenInfoOf(entry);
}

/** Where the HTTP layer reads the tokens it accepts, at each request: fixed `Credentials`, or a `TokenFileWatch`. */
export interface CredentialSource {
  readonly current: Credentials;
}

/**
 * The token file, read again whenever it changes (watched through its folder, as editors and
 * `writeSecretFile` replace it by a rename) — no restart, no request dropped: a request is
 * judged by the tokens of the moment it arrives. A file that cannot be read or is invalid
 * leaves the last good tokens in place, logged. `extra` tokens (in-process ones: `slap up`'s
 * node) are accepted besides the file's, always.
 */
export class TokenFileWatch implements CredentialSource {
  private watcher: FSWatcher | undefined;
  private timer: NodeJS.Timeout | undefined;
  private reloading: Promise<void> = Promise.resolve();

  private constructor(
    readonly path: string,
    private credentials: Credentials,
    private readonly extra: readonly TokenEntry[],
    private readonly logger: Logger,
  ) {}

  /** Reads the file (a missing or bad one is a `TokenFileError`: the master does not start) and watches it. */
  static async open(path: string, logger: Logger, extra: readonly TokenEntry[] = []): Promise<TokenFileWatch> {
    const source = new TokenFileWatch(path, (await Credentials.load(path)).with(extra), extra, logger);
    source.watcher = watch(dirname(path), { persistent: false }, (_event, name) => {
      if (name !== null && name !== basename(path)) return;
      // A rename is two events, an editor's save several: one reload after they settle.
      clearTimeout(source.timer);
      source.timer = setTimeout(() => void source.reload(), 50);
    });
    source.watcher.on("error", (error) => logger.error({ err: error, tokens: path }, "cannot watch the token file: changes need a restart"));
    return source;
  }

  get current(): Credentials {
    return this.credentials;
  }

  /** Reads the file again now (also after the master edited it itself); resolves once done. */
  reload(): Promise<void> {
    this.reloading = this.reloading.then(async () => {
      try {
        const next = (await Credentials.load(this.path)).with(this.extra);
        const before = this.credentials.size;
        this.credentials = next;
        this.logger.info({ tokens: this.path, count: next.size, before }, "token file reloaded");
      } catch (error) {
        this.logger.error({ tokens: this.path, reason: (error as Error).message }, "token file not reloaded: keeping the tokens it had");
      }
    });
    return this.reloading;
  }

  close(): void {
    clearTimeout(this.timer);
    this.watcher?.close();
  }
}

/** Writes a file readable by its owner only, atomically (a temporary file renamed over it). */
export async function writeSecretFile(path: string, content: string): Promise<void> {
  await mkdir(dirname(path), { recursive: true });
  const temporary = `${path}.${process.pid}.tmp`;
  await writeFile(temporary, content, { mode: 0o600 });
  await rename(temporary, path);
}

/**
 * The token file at `path`, created when it does not exist: one admin token, whose secret is
 * written to `admin.token` beside it (mode 0600) and stored in the token file as its hash only.
 */
export async function openOrCreateTokenFile(path: string): Promise<{ credentials: Credentials; created?: { adminTokenFile: string } }> {
  try {
    return { credentials: await Credentials.load(path) };
  } catch (error) {
    if ((error as { cause?: { code?: string } }).cause?.code !== "ENOENT") throw error;
  }
  const token = newToken();
  const adminTokenFile = join(dirname(path), "admin.token");
  await writeSecretFile(adminTokenFile, `${token}\n`);
  const file: TokenFile = { tokens: [{ role: "admin", name: "created by the master at first start", sha256: sha256Of(token) }] };
  await writeSecretFile(path, `${JSON.stringify(file, null, 2)}\n`);
  return { credentials: await Credentials.load(path), created: { adminTokenFile } };
}

/** Why a request is not authenticated (401), its partition header is malformed (400) or not its own (403). */
export interface AuthFailure {
  status: 400 | 401 | 403;
  code: "BadRequest" | "Unauthorized" | "Forbidden";
  message: string;
}

/** The scheme is case-insensitive (RFC 9110 §11.1). */
const Bearer = /^Bearer ([\x21-\x7e]{1,512})$/i;

const PartitionHeader = z.string().transform((value, ctx) => {
  const [computerId, partitionId, ...rest] = value.split("/");
  const c = ComputerId.safeParse(computerId);
  const p = PartitionId.safeParse(partitionId);
  if (rest.length > 0 || !c.success || !p.success) {
    ctx.addIssue({ code: "custom", message: "must be <computerId>/<partitionId>" });
    return z.NEVER;
  }
  return { computerId: c.data, partitionId: p.data };
});

/**
 * The actor of a request from its `authorization` header (`Bearer <token>`) and, for a node's
 * token, an optional `x-slap-partition: <computerId>/<partitionId>` naming one of its own
 * partitions (the node acting for the instance that partition holds). A metrics token names no
 * actor: it is a scraper, which may read `GET /metrics` only.
 */
export function authenticate(credentials: Credentials, authorization: string | undefined, partition: string | undefined): { actor: Actor } | { scraper: true } | AuthFailure {
  if (authorization === undefined) return unauthorized("missing credentials: send the header Authorization: Bearer <token>");
  const match = Bearer.exec(authorization);
  if (match === null) return unauthorized("header authorization: must be Bearer <token>");
  const identity = credentials.identify(match[1]!);
  if (identity === undefined) return unauthorized("header authorization: unknown token");
  if (identity.role === "metrics") return partition === undefined ? { scraper: true } : forbidden("header x-slap-partition: only a node's token may act for a partition");
  if (identity.role !== "node") {
    if (partition !== undefined) return forbidden("header x-slap-partition: only a node's token may act for a partition");
    return { actor: { kind: "user", userId: identity.role === "admin" ? "admin" : identity.user } };
  }
  if (partition === undefined) return { actor: { kind: "node", computerId: identity.computer } };
  const parsed = PartitionHeader.safeParse(partition);
  if (!parsed.success) return { status: 400, code: "BadRequest", message: "header x-slap-partition: must be <computerId>/<partitionId>" };
  if (parsed.data.computerId !== identity.computer) {
    return forbidden(`header x-slap-partition: the token of computer ${identity.computer} cannot act for a partition of ${parsed.data.computerId}`);
  }
  return { actor: { kind: "partition", ...parsed.data } };
}

const unauthorized = (message: string): AuthFailure => ({ status: 401, code: "Unauthorized", message });
const forbidden = (message: string): AuthFailure => ({ status: 403, code: "Forbidden", message });
