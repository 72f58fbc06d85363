import { access, readFile } from "node:fs/promises";
import { z } from "zod";
import { ComputerId, UserId } from "@slap/events";
import { newToken, sha256Of, TokenFile, writeSecretFile, type TokenEntry } from "@slap/master";
import { CliError, HELP, printHelp, splitArgv, validate, type Command } from "./args.js";

const tokenArgv = {
  options: { file: { type: "string" }, role: { type: "string" }, user: { type: "string" }, computer: { type: "string" }, name: { type: "string" }, out: { type: "string" } },
} as const;

const TokenArgs = z
  .object({
    file: z.string({ error: "is required: the master's token file (created when missing)" }).min(1),
    role: z.enum(["admin", "user", "node"], { error: "must be admin, user or node" }),
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
  summary: "create an API token: its hash is added to the master's token file, the token printed once",
  help: `usage: slap token --file FILE --role admin|user|node [--user ID] [--computer ID] [--name TEXT] [--out TOKEN_FILE]

Creates a random API token, adds its SHA-256 to the token file FILE (created, mode 0600, when
missing; the master reads it at start: slap master --tokens FILE) and writes the token to
TOKEN_FILE (mode 0600; refused if it exists), or prints it on stdout — the only place it ever
appears. Restart the master to accept it.

  --role admin                 sees and changes everything
  --role user --user ID        sees and changes the trees it requests
  --role node --computer ID    the node agent of that computer (give it to the node: SLAP_TOKEN_FILE)
  --name TEXT                  a note kept beside the hash (who holds it)

example: slap token --file config/tokens.json --role node --computer COMP-1 --out config/node-1.token`,
  async run(argv, io) {
    const split = splitArgv(tokenArgv, argv);
    if (split === HELP) return printHelp(io, tokenCommand);
    const args = validate(TokenArgs, split.values);
    const file = await existing(args.file);
    if (args.out !== undefined && (await exists(args.out))) throw new CliError(`${args.out} exists: not overwritten (a token file is written once)`);
    const token = newToken();
    const secret = { sha256: sha256Of(token), ...(args.name === undefined ? {} : { name: args.name }) };
    const entry: TokenEntry =
      args.role === "admin" ? { role: "admin", ...secret } : args.role === "user" ? { role: "user", user: args.user!, ...secret } : { role: "node", computer: args.computer!, ...secret };
    // The token first: if the token file cannot be written, no hash names a token nobody has.
    if (args.out !== undefined) await writeSecretFile(args.out, `${token}\n`);
    await writeSecretFile(args.file, `${JSON.stringify({ tokens: [...file.tokens, entry] }, null, 2)}\n`);
    if (args.out === undefined) io.stdout.write(`${token}\n`);
    io.stderr.write(`added ${args.role === "admin" ? "an" : "a"} ${args.role} token to ${args.file} (${file.tokens.length + 1} tokens); restart the master to accept it\n`);
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
