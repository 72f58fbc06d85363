import { createHash, randomBytes } from "node:crypto";
import { mkdir, readFile, rename, writeFile } from "node:fs/promises";
import { dirname, join } from "node:path";
import { z } from "zod";
import { ApiToken, ComputerId, PartitionId, UserId, type Actor } from "@slap/events";

/**
 * API tokens: who a caller of the master's HTTP API is.
 *
 * A token file (JSON, see `TokenFile`) lists the tokens the master accepts, each with its role:
 * `admin` (sees and changes everything), `user` (their own instance trees), or `node` (the agent
 * of one computer: it registers that computer, reports its software, and acts for the partitions
 * of that computer only). A token may be stored as its SHA-256 (`sha256`) rather than in clear
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
]);
export type TokenEntry = z.infer<typeof TokenEntry>;

/** The token file: `{ "tokens": [ { "role": "admin", "token": "…" }, { "role": "user", "user": "alice", "sha256": "…" }, { "role": "node", "computer": "COMP-1", "token": "…" } ] }`. */
export const TokenFile = z.object({ tokens: z.array(TokenEntry) }).strict();
export type TokenFile = z.infer<typeof TokenFile>;

/** Who a token says the caller is. */
export type Identity = { role: "admin" } | { role: "user"; user: string } | { role: "node"; computer: string };

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
  }
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

  /** These credentials plus more (tokens minted in-process, e.g. the embedded node's). */
  with(entries: readonly TokenEntry[]): Credentials {
    const merged = new Credentials(entries);
    for (const [hash, identity] of this.byHash) if (!merged.byHash.has(hash)) merged.byHash.set(hash, identity);
    return merged;
  }

  /** Reads and validates a token file. */
  static async load(path: string): Promise<Credentials> {
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
    try {
      return new Credentials(parsed.data.tokens);
    } catch (error) {
      throw new TokenFileError(`invalid token file ${path}: ${(error as Error).message}`);
    }
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
 * partitions (the node acting for the instance that partition holds).
 */
export function authenticate(credentials: Credentials, authorization: string | undefined, partition: string | undefined): { actor: Actor } | AuthFailure {
  if (authorization === undefined) return unauthorized("missing credentials: send the header Authorization: Bearer <token>");
  const match = Bearer.exec(authorization);
  if (match === null) return unauthorized("header authorization: must be Bearer <token>");
  const identity = credentials.identify(match[1]!);
  if (identity === undefined) return unauthorized("header authorization: unknown token");
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
