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

const CredentialsEnv = z
  .object({
    NATS_USER: z.preprocess(emptyAsAbsent, z.string().regex(/^[A-Za-z0-9_-]{1,64}$/, "must be 1-64 characters of A-Z, a-z, 0-9, _ or -").optional()),
    NATS_PASSWORD: z.preprocess(emptyAsAbsent, z.string().max(1_024, "must be at most 1,024 characters").optional()),
  })
  .refine((env) => (env.NATS_USER === undefined) === (env.NATS_PASSWORD === undefined), {
    message: "NATS_USER and NATS_PASSWORD go together: set both or neither",
  });

/**
 * The NATS user and password from `NATS_USER` and `NATS_PASSWORD` (written by `slap nats-config`
 * into each service's env file). Both unset (or empty): `{}`, a server without authentication.
 * The NATS client ignores credentials in a `nats://user:pass@host` URL, hence these variables.
 * @throws NatsCredentialsError when only one is set or the user name is not a token.
 */
export function natsCredentialsFromEnv(env: Readonly<Record<string, string | undefined>> = process.env): NatsCredentials {
  const parsed = CredentialsEnv.safeParse({ NATS_USER: env.NATS_USER, NATS_PASSWORD: env.NATS_PASSWORD });
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    const where = issue.path.length === 0 ? "" : `${issue.path.join(".")}: `;
    throw new NatsCredentialsError(`invalid NATS credentials: ${where}${issue.message}`);
  }
  const { NATS_USER: user, NATS_PASSWORD: pass } = parsed.data;
  return user === undefined || pass === undefined ? {} : { user, pass };
}
