/**
 * The nats-server configuration of a deployment: one user per service and what it may do on
 * the event log. A deployment helper (`slap nats-config`, `slap cluster`); no service reads it.
 */
import { DEFAULT_SUBJECT_PREFIX } from "@slap/events";
import { DEFAULT_STREAM_NAME, deadLetterStreamName, deadLetterSubjectPrefix, inboxPrefixOf } from "@slap/eventstore-jetstream";
import { encodeBase64, hashSync } from "bcryptjs";
import { z } from "zod";
import { Token } from "@slap/events";

/**
 * What one NATS user may do: nats-server `permissions`. Anything not in an `allow` list is
 * refused; `deny` wins over `allow` (kept as a guard should an allow list ever grow).
 */
export interface NatsPermissions {
  publish: { allow: string[]; deny?: string[] };
  subscribe: { allow: string[] };
}

/** Names of the log's stream and subjects the permissions are about (defaults: what the services use). */
export interface NatsLogNames {
  /** JetStream stream of the log (default `SLAP_EVENTS`). */
  streamName?: string;
  /** Subject prefix of the log (default `slap.ev`). */
  subjectPrefix?: string;
}

export type NatsRole = "master" | "allocator" | "reader";


/**
 * The JetStream API requests `JetStreamEventStore` makes to read the log (traced against
 * nats-server 2.9 with @nats-io/jetstream 3): account info (its API check on connect), stream
 * info (`connect`, `head`), one message by subject (`readStream`), and ordered consumers
 * (named create with the filter subject in the API subject, info, pull, delete when a read
 * ends). Ordered consumers do not acknowledge and pull consumers have no flow control, so no
 * `$JS.ACK` subject is needed; replies come back on the user's own inbox (`inboxPrefixOf`).
 *
 * Not included, hence refused: stream create/update/delete/purge, message delete, stream and
 * consumer listings, the legacy `CONSUMER.DURABLE.CREATE` subject, direct get (the log's stream
 * does not allow it).
 */
export function logReaderApi(streamName: string = DEFAULT_STREAM_NAME): string[] {
  return [
    "$JS.API.INFO",
    `$JS.API.STREAM.INFO.${streamName}`,
    `$JS.API.STREAM.MSG.GET.${streamName}`,
    `$JS.API.CONSUMER.CREATE.${streamName}.>`,
    `$JS.API.CONSUMER.INFO.${streamName}.*`,
    `$JS.API.CONSUMER.MSG.NEXT.${streamName}.*`,
    `$JS.API.CONSUMER.DELETE.${streamName}.*`,
  ];
}

/**
 * The permissions of each role on the log:
 *
 * - **master**: the whole JetStream API (it creates the log's stream and the dead-letter
 *   stream), every log subject, dead letters.
 * - **allocator**: reads the log; appends on partition subjects (`PartitionAllocated`,
 *   `PartitionReleased`) and on instance subjects, because `SharedInstanceAttached` is an event
 *   of the shared instance's own stream (`<prefix>.tree.*.instance.*`); writes dead letters and
 *   reads the dead-letter stream's info. No computer subject, no stream administration.
 * - **reader**: reads the log, nothing else (a backup, an auditor's tool). It publishes on no log
 *   subject at all and writes no dead letters.
 *
 * Nodes have no NATS user: a node talks to the master only, over HTTP (its computer's desired
 * state, its reports), so it reads nothing of the log.
 */
export function natsPermissions(role: NatsRole, names: NatsLogNames = {}, user?: string): NatsPermissions {
  const streamName = names.streamName ?? DEFAULT_STREAM_NAME;
  const prefix = names.subjectPrefix ?? DEFAULT_SUBJECT_PREFIX;
  const dead = `${deadLetterSubjectPrefix(streamName)}.>`;
  // Each user its own reply subjects: no one reads another's replies (and learns, say, its consumers' names).
  const inbox = { allow: [`${user === undefined ? "_INBOX" : inboxPrefixOf(user)}.>`] };
  switch (role) {
    case "master":
      return { publish: { allow: ["$JS.API.>", `${prefix}.>`, dead] }, subscribe: inbox };
    case "allocator":
      return {
        publish: {
          allow: [
            ...logReaderApi(streamName),
            `$JS.API.STREAM.INFO.${deadLetterStreamName(streamName)}`,
            `${prefix}.computer.*.partition.*`,
            `${prefix}.tree.*.instance.*`,
            dead,
          ],
        },
        subscribe: inbox,
      };
    case "reader":
      return { publish: { allow: logReaderApi(streamName), deny: [`${prefix}.>`, dead] }, subscribe: inbox };
    default: {
      const never: never = role;
      throw new Error(`unknown role ${String(never)}`);
    }
  }
}

/**
 * The bcrypt hash of `password` (`$2a$<cost>$<salt><hash>`, 60 characters), the form
 * nats-server checks in its configuration. `salt` is 16 random bytes (given, so a test can
 * choose them); cost 4 to 31.
 */
export function bcryptHash(password: string, salt: Uint8Array, cost: number): string {
  if (salt.length !== 16) throw new RangeError(`bcrypt salt must be 16 bytes, not ${salt.length}`);
  if (!Number.isInteger(cost) || cost < 4 || cost > 31) throw new RangeError(`bcrypt cost must be 4 to 31, not ${cost}`);
  return hashSync(password, `$2a$${String(cost).padStart(2, "0")}$${encodeBase64(salt, 16)}`);
}

const UserName = Token;
/** A bcrypt hash (`$2a$…`) or a plain password; printable ASCII without quotes or backslashes, so it needs no escaping. */
const Password = z.string().regex(/^[\x21\x23-\x5b\x5d-\x7e]{8,200}$/, "must be 8-200 printable ASCII characters without \" or \\");

/** The users of a deployment and their passwords (bcrypt hashes, or plain text), for `renderNatsConfig`. */
export const NatsConfigSpec = z
  .object({
    streamName: Token.optional(),
    subjectPrefix: z.string().regex(/^[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*$/).optional(),
    master: z.object({ user: UserName.default("master"), password: Password }),
    allocators: z.array(z.object({ user: UserName, password: Password })),
    /** Read-only users of the log (none by default; never a node). */
    readers: z.array(z.object({ user: UserName, password: Password })).default([]),
  })
  .superRefine((spec, ctx) => {
    const seen = new Map<string, string>();
    const names: Array<[string, (string | number)[]]> = [
      [spec.master.user, ["master", "user"]],
      ...spec.allocators.map((a, i): [string, (string | number)[]] => [a.user, ["allocators", i, "user"]]),
      ...spec.readers.map((r, i): [string, (string | number)[]] => [r.user, ["readers", i, "user"]]),
    ];
    for (const [name, path] of names) {
      const first = seen.get(name);
      if (first !== undefined) ctx.addIssue({ code: "custom", path, message: `user ${name} is already ${first}` });
      else seen.set(name, path.join("."));
    }
  });
export type NatsConfigSpec = z.input<typeof NatsConfigSpec>;

/**
 * A nats-server 2.9 configuration with one user per service, for `nats-server -js -c <file>`.
 *
 * One account (the server's global account, through `authorization { users }`), not one
 * account per service: the log is one stream that every service reads, and separate accounts
 * would need the stream and its JetStream API exported and imported between them. Subject
 * permissions within the one account express the same boundaries.
 *
 * Users: the master (`master` unless named) and each allocator (nodes have none: they talk to
 * the master over HTTP only); their permissions are `natsPermissions`. Passwords go in as given: a bcrypt
 * hash (`bcryptHash`) keeps the file free of secrets, nats-server checks either.
 * @throws Error naming the field of an invalid spec (user name, password, duplicate user).
 */
export function renderNatsConfig(input: NatsConfigSpec): string {
  const parsed = NatsConfigSpec.safeParse(input);
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    throw new Error(`invalid NATS configuration spec: ${issue.path.join(".")}: ${issue.message}`);
  }
  const spec = parsed.data;
  const names: NatsLogNames = {
    ...(spec.streamName === undefined ? {} : { streamName: spec.streamName }),
    ...(spec.subjectPrefix === undefined ? {} : { subjectPrefix: spec.subjectPrefix }),
  };
  const users = [
    { comment: "master: the whole log and its administration", user: spec.master.user, password: spec.master.password, role: "master" as const },
    ...spec.allocators.map((a) => ({ comment: "allocator: reads; appends partition and instance events", user: a.user, password: a.password, role: "allocator" as const })),
    ...spec.readers.map((r) => ({ comment: "reader: reads only", user: r.user, password: r.password, role: "reader" as const })),
  ];
  const list = (items: readonly string[]): string => `[${items.map((s) => JSON.stringify(s)).join(", ")}]`;
  const rendered = users.map(({ comment, user, password, role }) => {
    const p = natsPermissions(role, names, user);
    const publish = `allow: ${list(p.publish.allow)}${p.publish.deny === undefined ? "" : `, deny: ${list(p.publish.deny)}`}`;
    return [
      `    # ${comment}`,
      `    {`,
      `      user: ${JSON.stringify(user)}`,
      `      password: ${JSON.stringify(password)}`,
      `      permissions: {`,
      `        publish: { ${publish} }`,
      `        subscribe: { allow: ${list(p.subscribe.allow)} }`,
      `      }`,
      `    }`,
    ].join("\n");
  });
  return [
    "# nats-server configuration of a slap deployment (generated by `slap nats-config`).",
    "# Run with JetStream: nats-server -js -sd <store dir> -c nats.conf",
    `# Log stream ${names.streamName ?? DEFAULT_STREAM_NAME} on ${names.subjectPrefix ?? DEFAULT_SUBJECT_PREFIX}.>; one user per service.`,
    "authorization {",
    "  users = [",
    rendered.join("\n"),
    "  ]",
    "}",
    "",
  ].join("\n");
}
