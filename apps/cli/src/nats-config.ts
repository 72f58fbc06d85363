/**
 * `slap nats-config`: NATS users for a deployment. Writes a nats-server configuration with one
 * user per service and its subject permissions (`renderNatsConfig`), and one env file per
 * service with its credentials (`NATS_USER`, `NATS_PASSWORD`).
 */
import { randomBytes } from "node:crypto";
import { access, chmod, mkdir, writeFile } from "node:fs/promises";
import { join, resolve } from "node:path";
import { z } from "zod";
import { Token } from "@slap/events";
import { CliError, HELP, envReader, printHelp, splitArgv, validate, type Command, type Io } from "./args.js";
import { bcryptHash, renderNatsConfig } from "./nats-server-config.js";

const argvSpec = {
  options: { allocators: { type: "string" }, out: { type: "string" }, force: { type: "boolean" } },
} as const;

/** bcrypt cost of the hashes in nats.conf: nats-server's own tool's. */
const BCRYPT_COST = 11;

/** Nodes have no NATS user: they talk to the master only, over HTTP. */
const NatsConfigArgs = z.object({
  allocators: z.coerce.number({ error: "must be a number" }).int("must be a whole number").min(0).max(100),
  out: z.string({ error: "is required: the folder to write nats.conf and the env files to" }).min(1),
  streamName: Token.optional(),
  force: z.boolean(),
});

export type NatsConfigArgs = z.output<typeof NatsConfigArgs>;

/** The environment variables `slap nats-config` reads. */
export const NATS_CONFIG_ENV = ["SLAP_STREAM"] as const;

export function parseNatsConfigArgs(argv: readonly string[], env: Io["env"]): NatsConfigArgs | typeof HELP {
  const split = splitArgv(argvSpec, argv);
  if (split === HELP) return HELP;
  const { values } = split;
  const fromEnv = envReader(env, NATS_CONFIG_ENV);
  const args = validate(
    NatsConfigArgs,
    {
      allocators: values.allocators ?? "2",
      out: values.out,
      streamName: fromEnv("SLAP_STREAM"),
      force: values.force === true,
    },
    { streamName: "SLAP_STREAM" },
  );
  const { streamName, ...rest } = args;
  return streamName === undefined ? rest : { ...rest, streamName };
}

/** One file to write: its name in the output folder and its text; for an env file, its variables. */
interface Output {
  name: string;
  text: string;
  env?: Record<string, string>;
}

/**
 * The files of a deployment's NATS users: `nats.conf` (bcrypt hashes only) and one env file per
 * service. `random` gives the bytes of passwords and salts (tests pass their own).
 */
export function natsConfigFiles(args: Pick<NatsConfigArgs, "allocators" | "streamName">, random: (size: number) => Uint8Array = randomBytes): Output[] {
  const credential = () => {
    const password = Buffer.from(random(24)).toString("base64url");
    return { password, hash: bcryptHash(password, random(16), BCRYPT_COST) };
  };
  const envFile = (name: string, service: string, env: Record<string, string>): Output => ({
    name,
    text: [`# NATS credentials of ${service} (written by slap nats-config): keep this file private.`, ...Object.entries(env).map(([key, value]) => `${key}=${value}`), ""].join("\n"),
    env,
  });
  const master = credential();
  const allocators = Array.from({ length: args.allocators }, (_, i) => ({ user: `allocator-${i + 1}`, ...credential() }));
  const config = renderNatsConfig({
    ...(args.streamName === undefined ? {} : { streamName: args.streamName }),
    master: { password: master.hash },
    allocators: allocators.map((a) => ({ user: a.user, password: a.hash })),
  });
  return [
    { name: "nats.conf", text: config },
    envFile("master.env", "the master", { NATS_USER: "master", NATS_PASSWORD: master.password }),
    ...allocators.map((a) => envFile(`${a.user}.env`, `allocator ${a.user}`, { NATS_USER: a.user, NATS_PASSWORD: a.password, ALLOCATOR_REPLICA: a.user })),
  ];
}

export const natsConfigCommand: Command = {
  name: "nats-config",
  summary: "write nats-server users and permissions, and each service's NATS credentials",
  env: NATS_CONFIG_ENV,
  help: `usage: slap nats-config [--allocators N] --out DIR [--force]

Writes DIR/nats.conf, a nats-server configuration with one user per service and what it may do
on the event log, and one env file per service holding its NATS credentials (NATS_USER,
NATS_PASSWORD), all readable by their owner only (0600):

  master.env           the master: the whole log; it creates the streams
  allocator-N.env      allocator N: reads; appends partition and instance events

Nodes get no NATS user: a node talks to the master only, over HTTP, with its API token
(slap token --role node), and reads nothing of the log.

Passwords are random; nats.conf holds only their bcrypt hashes. Start the server with
  nats-server -js -sd <store dir> -c DIR/nats.conf
and the master before the others (it creates the stream the others may only read).

options:
  --allocators N    how many allocator users (default 2)
  --out DIR         where to write the files (created 0700 if missing; required)
  --force           replace files already there (every password changes)

SLAP_STREAM names the log's stream (default SLAP_EVENTS), as for the services.`,
  async run(argv, io) {
    const args = parseNatsConfigArgs(argv, io.env);
    if (args === HELP) return printHelp(io, natsConfigCommand);
    const files = natsConfigFiles(args);
    const dir = resolve(args.out);
    await mkdir(dir, { recursive: true, mode: 0o700 });
    if (!args.force) {
      for (const { name } of files) {
        const exists = await access(join(dir, name)).then(
          () => true,
          () => false,
        );
        if (exists) throw new CliError(`${join(dir, name)} exists: pass --force to replace the files (every password changes)`);
      }
    }
    for (const { name, text } of files) {
      const path = join(dir, name);
      try {
        await writeFile(path, text, { mode: 0o600, flag: args.force ? "w" : "wx" });
        await chmod(path, 0o600);
      } catch (error) {
        throw new CliError(`cannot write ${path}: ${error instanceof Error ? error.message : String(error)}`, 1, { cause: error });
      }
    }
    io.stdout.write(`${files.map(({ name }) => join(dir, name)).join("\n")}\n`);
    io.stderr.write(
      `wrote nats.conf (${files.length - 1} users) and ${files.length - 1} env files to ${dir}\n` +
        `start nats-server with: nats-server -js -sd <store dir> -c ${join(dir, "nats.conf")}\n`,
    );
    return 0;
  },
};
