import { Token } from "@slap/events";
import { z } from "zod";

/** The NATS credentials of a service: spread into `JetStreamStoreOptions` (`{}` when none are set). */
export interface NatsCredentials {
  user?: string;
  pass?: string;
}

/** Invalid credential variables: says which and why; never contains the password. */
export class NatsCredentialsError extends Error {
  override name = "NatsCredentialsError";
}

const emptyAsAbsent = (value: unknown): unknown => (value === "" ? undefined : value);

/**
 * The NATS settings every service's configuration shares (spread into its zod object): the NATS
 * user and password (from `NATS_USER`/`NATS_PASSWORD`; both or neither) and the replicas of the
 * streams when they are created (`SLAP_REPLICAS`: 1, 3 or 5; an existing stream keeps its own).
 */
export const natsConfigFields = {
  natsUser: z.preprocess(emptyAsAbsent, Token.optional()),
  natsPassword: z.preprocess(emptyAsAbsent, z.string().max(1_024, "must be at most 1,024 characters").optional()),
  replicas: z.preprocess(emptyAsAbsent, z.coerce.number().pipe(z.union([z.literal(1), z.literal(3), z.literal(5)], { error: "must be 1, 3 or 5" })).optional()),
};

const CredentialsConfig = z.object({ natsUser: natsConfigFields.natsUser, natsPassword: natsConfigFields.natsPassword });
const ENV_NAMES: Readonly<Record<string, string>> = { natsUser: "NATS_USER", natsPassword: "NATS_PASSWORD" };

/**
 * The NATS user and password from `NATS_USER` and `NATS_PASSWORD` (written by `slap nats-config`
 * into each service's env file), checked as the services check them. Both unset (or empty):
 * `{}`, a server without authentication. The NATS client ignores credentials in a
 * `nats://user:pass@host` URL, hence these variables.
 * @throws NatsCredentialsError when only one is set or the user name is not a token.
 */
export function natsCredentialsFromEnv(env: Readonly<Record<string, string | undefined>> = process.env): NatsCredentials {
  const parsed = CredentialsConfig.safeParse({ natsUser: env.NATS_USER, natsPassword: env.NATS_PASSWORD });
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    const name = issue.path.length === 0 ? undefined : ENV_NAMES[String(issue.path[0])];
    throw new NatsCredentialsError(`invalid NATS credentials: ${name === undefined ? "" : `${name}: `}${issue.message}`);
  }
  const { user, pass } = natsConnectOptions(parsed.data);
  return user === undefined || pass === undefined ? {} : { user, pass };
}

/** The `JetStreamStoreOptions` of the shared settings; throws `NatsCredentialsError` when only one of user and password is set. */
export function natsConnectOptions(config: { natsUser?: string | undefined; natsPassword?: string | undefined; replicas?: 1 | 3 | 5 | undefined }): NatsCredentials & { replicas?: number } {
  if ((config.natsUser === undefined) !== (config.natsPassword === undefined)) {
    throw new NatsCredentialsError("invalid NATS credentials: NATS_USER and NATS_PASSWORD go together: set both or neither");
  }
  return {
    ...(config.natsUser === undefined || config.natsPassword === undefined ? {} : { user: config.natsUser, pass: config.natsPassword }),
    ...(config.replicas === undefined ? {} : { replicas: config.replicas }),
  };
}

/** The reply-subject prefix of a NATS user: `_INBOX_<user>`. The store connects with it (`inboxPrefix`); the server lets each user read its own only. */
export function inboxPrefixOf(user: string): string {
  return `_INBOX_${user}`;
}
