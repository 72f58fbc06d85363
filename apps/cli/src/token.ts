import { access, readFile } from "node:fs/promises";
import { z } from "zod";
import { ComputerId, UserId } from "@slap/events";
import { newToken, readTokenFile, revokeInTokenFile, sha256Of, TokenFile, tokenInfoOf, writeSecretFile, type TokenEntry } from "@slap/master";
import type { TokenInfo } from "@slap/api";
import { CliError, HELP, positionalLabels, printHelp, splitArgv, validate, type Command, type Io } from "./args.js";
import { MasterClient, clientHelp, clientOptions, connectionOf } from "./client.js";
import { table } from "./format.js";

const tokenArgv = {
  options: { file: { type: "string" }, role: { type: "string" }, user: { type: "string" }, computer: { type: "string" }, name: { type: "string" }, out: { type: "string" } },
} as const;

const TokenArgs = z
  .object({
    file: z.string({ error: "is required: the master's token file (created when missing)" }).min(1),
    role: z.enum(["admin", "user", "node", "metrics"], { error: "must be admin, user, node or metrics" }),
    user: UserId.optional(),
    computer: ComputerId.optional(),
    name: z.string().max(200).optional(),
    out: z.string().min(1).optional(),
  })
  .superRefine((args, ctx) => {
    if (args.role === "user" && args.user === undefined) ctx.addIssue({ code: "custom", path: ["user"], message: "is required with --role user" });
    if (args.role === "user" && args.user === "admin") ctx.addIssue({ code: "custom", path: ["user"], message: "admin is a role: use --role admin" });
    if (args.role === "node" && args.computer === undefined) ctx.addIssue({ code: "custom", path: ["computer"], message: "is required with --role node" });
    if (args.role !== "user" && args.user !== undefined) ctx.addIssue({ code: "custom", path: ["user"], message: "goes with --role user only" });
    if (args.role !== "node" && args.computer !== undefined) ctx.addIssue({ code: "custom", path: ["computer"], message: "goes with --role node only" });
  });

export const tokenCommand: Command = {
  name: "token",
  summary: "create, list or revoke API tokens (the master's token file; no restart needed)",
  help: `usage: slap token --file FILE --role admin|user|node|metrics [--user ID] [--computer ID] [--name TEXT] [--out TOKEN_FILE]
       slap token list [--file FILE] [--json]
       slap token revoke <id> [--file FILE]

Creates a random API token, adds its SHA-256 to the token file FILE (created, mode 0600, when
missing; the master reads it: slap master --tokens FILE) and writes the token to TOKEN_FILE
(mode 0600; refused if it exists), or prints it on stdout — the only place it ever appears. A
running master reads its token file again when it changes: the token is accepted at once.

  --role admin                 sees and changes everything
  --role user --user ID        sees and changes the trees it requests
  --role node --computer ID    the node agent of that computer (give it to the node: SLAP_TOKEN_FILE)
  --role metrics               reads GET /metrics only (a Prometheus scraper's)
  --name TEXT                  a note kept beside the hash (who holds it)

list: the tokens, by id (the first 16 hex digits of the token's SHA-256), role, user or computer,
and name; never a token or its hash. revoke <id>: removes that token; the master refuses it from
then on (not the file's last admin token). With --file, they read and edit that file; without,
they ask the master (admin: GET /v1/tokens, POST /v1/tokens/<id>/revoke), which edits its own.

example: slap token --file config/tokens.json --role node --computer COMP-1 --out config/node-1.token
${clientHelp}`,
  async run(argv, io) {
    if (argv[0] === "list") return listTokens(argv.slice(1), io);
    if (argv[0] === "revoke") return revokeToken(argv.slice(1), io);
    const split = splitArgv(tokenArgv, argv);
    if (split === HELP) return printHelp(io, tokenCommand);
    const args = validate(TokenArgs, split.values);
    const file = await existing(args.file);
    if (args.out !== undefined && (await exists(args.out))) throw new CliError(`${args.out} exists: not overwritten (a token file is written once)`);
    const token = newToken();
    const secret = { sha256: sha256Of(token), ...(args.name === undefined ? {} : { name: args.name }) };
    const entry: TokenEntry =
      args.role === "user" ? { role: "user", user: args.user!, ...secret } : args.role === "node" ? { role: "node", computer: args.computer!, ...secret } : { role: args.role, ...secret };
    // The token first: if the token file cannot be written, no hash names a token nobody has.
    if (args.out !== undefined) await writeSecretFile(args.out, `${token}\n`);
    await writeSecretFile(args.file, `${JSON.stringify({ tokens: [...file.tokens, entry] }, null, 2)}\n`);
    if (args.out === undefined) io.stdout.write(`${token}\n`);
    io.stderr.write(`added ${args.role === "admin" ? "an" : "a"} ${args.role} token to ${args.file} (${file.tokens.length + 1} tokens); a master reading that file accepts it at once\n`);
    return 0;
  },
};

async function exists(path: string): Promise<boolean> {
  return access(path).then(
    () => true,
    () => false,
  );
}

/** The token file as it is, or an empty one when missing; an invalid one is refused rather than overwritten. */
async function existing(path: string): Promise<TokenFile> {
  let text: string;
  try {
    text = await readFile(path, "utf8");
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === "ENOENT") return { tokens: [] };
    throw new CliError(`cannot read ${path}: ${(error as Error).message}`);
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    throw new CliError(`${path} is not JSON: not changed`);
  }
  const parsed = TokenFile.safeParse(json);
  if (!parsed.success) {
    throw new CliError(`${path} is not a valid token file (${parsed.error.issues.map((i) => `${i.path.map(String).join(".")}: ${i.message}`).join("; ")}): not changed`);
  }
  return parsed.data;
}

const listArgv = { options: { ...clientOptions, file: { type: "string" }, json: { type: "boolean" } } } as const;
const ListArgs = z.object({ file: z.string().min(1).optional(), json: z.boolean().default(false) });
const revokeArgv = { options: { ...clientOptions, file: { type: "string" } }, positionals: ["id"] } as const;
const RevokeArgs = z.object({ id: z.string().regex(/^[0-9a-f]{16}$/, "must be a token id: 16 hex digits (slap token list)"), file: z.string().min(1).optional() });

/** A token file's own error as the CLI says it: one line, exit 1. */
async function fromFile<T>(work: () => Promise<T>): Promise<T> {
  try {
    return await work();
  } catch (error) {
    throw new CliError((error as Error).message, 1, { cause: error });
  }
}

async function listTokens(argv: readonly string[], io: Io): Promise<number> {
  const split = splitArgv(listArgv, argv);
  if (split === HELP) return printHelp(io, tokenCommand);
  const args = validate(ListArgs, split.values);
  const tokens: TokenInfo[] =
    args.file === undefined
      ? (await new MasterClient(connectionOf(split.values, io.env), io.fetch).tokens()).tokens
      : (await fromFile(() => readTokenFile(args.file!))).tokens.map(tokenInfoOf);
  if (args.json) {
    io.stdout.write(`${JSON.stringify({ tokens })}\n`);
    return 0;
  }
  const rows = tokens.map((t) => [t.id, t.role, t.user ?? t.computer ?? "", t.name ?? ""]);
  for (const line of table([["ID", "ROLE", "USER/COMPUTER", "NAME"], ...rows])) io.stdout.write(`${line}\n`);
  return 0;
}

async function revokeToken(argv: readonly string[], io: Io): Promise<number> {
  const split = splitArgv(revokeArgv, argv);
  if (split === HELP) return printHelp(io, tokenCommand);
  const args = validate(RevokeArgs, { ...split.values, ...split.positionals }, positionalLabels(revokeArgv.positionals));
  let revoked: TokenInfo;
  if (args.file === undefined) {
    revoked = (await new MasterClient(connectionOf(split.values, io.env), io.fetch).revokeToken(args.id)).revoked;
  } else {
    const result = await fromFile(() => revokeInTokenFile(args.file!, args.id));
    if ("ok" in result) throw new CliError(result.detail);
    revoked = result;
  }
  const who = revoked.user ?? revoked.computer;
  io.stderr.write(`revoked ${revoked.role} token ${revoked.id}${who === undefined ? "" : ` (${who})`}${revoked.name === undefined ? "" : ` "${revoked.name}"`}\n`);
  return 0;
}
