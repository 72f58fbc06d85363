import { createHash } from "node:crypto";
import { z } from "zod";

/**
 * The property names every JavaScript object has (`__proto__`, `constructor`, `toString`, …).
 * Read models are plain objects keyed by ids and release URLs: such a key would read, and when
 * folded write, the prototype shared by every object instead of an entry.
 */
const PROTOTYPE_NAMES: ReadonlySet<string> = new Set(Object.getOwnPropertyNames(Object.prototype));

/** Whether `key` is safe as a key of a plain object (not one of `Object.prototype`'s names). */
export function isSafeKey(key: string): boolean {
  return !PROTOTYPE_NAMES.has(key);
}

export const SAFE_KEY_MESSAGE = "must not be a property name of every JavaScript object (__proto__, constructor, toString, …)";

/**
 * An identifier that is safe as one NATS subject token, as a file name and as an object key:
 * letters, digits, `_` and `-`, 1 to 64 characters, not a name of `Object.prototype`. Computer,
 * partition, instance and tree ids are all tokens, so a subject can never be forged by an id.
 */
export const Token = z
  .string()
  .regex(/^[A-Za-z0-9_-]{1,64}$/, "must be 1-64 characters of A-Z, a-z, 0-9, _ or -")
  .refine(isSafeKey, SAFE_KEY_MESSAGE);
export type Token = z.infer<typeof Token>;

/**
 * An API token of the master (services/master/src/shell/auth.ts): 16 to 512 printable ASCII
 * characters without spaces, as the master's token file, the CLI and the node read it.
 */
export const ApiToken = z
  .string()
  .min(16, "must be at least 16 characters")
  .max(512, "must be at most 512 characters")
  .regex(/^[\x21-\x7e]+$/, "must be printable ASCII without spaces");

export const ComputerId = Token.describe("computer id");
export type ComputerId = z.infer<typeof ComputerId>;
export const PartitionId = Token.describe("partition id");
export type PartitionId = z.infer<typeof PartitionId>;
export const InstanceId = Token.describe("instance id");
export type InstanceId = z.infer<typeof InstanceId>;
export const TreeId = Token.describe("instance tree id (the root instance id)");
export type TreeId = z.infer<typeof TreeId>;
export const UserId = Token.describe("user id");
export type UserId = z.infer<typeof UserId>;

/** Event and correlation ids are ULIDs: sortable by creation time, unique without coordination. */
export const EventId = z.ulid();
export type EventId = z.infer<typeof EventId>;

const CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ";

/**
 * The id of the instance requested under `scope` (a user id for a root request, the tree id
 * for a request made by a partition) with `reference`. Deterministic, so that two requests
 * with the same key land on the same event stream and optimistic concurrency makes the
 * request idempotent even when two masters race. 26 Crockford base-32 characters (130 bits
 * of SHA-256), so it is a valid token whatever the reference contains.
 */
export function instanceIdFor(scope: { kind: "user"; userId: string } | { kind: "tree"; treeId: string }, reference: string): InstanceId {
  const key = scope.kind === "user" ? `user\u0000${scope.userId}` : `tree\u0000${scope.treeId}`;
  const digest = createHash("sha256").update(`${key}\u0000${reference}`).digest();
  let out = "";
  let bits = 0;
  let value = 0;
  for (const byte of digest) {
    value = (value << 8) | byte;
    bits += 8;
    while (bits >= 5 && out.length < 26) {
      out += CROCKFORD[(value >>> (bits - 5)) & 31];
      bits -= 5;
    }
    value &= (1 << bits) - 1;
    if (out.length === 26) break;
  }
  return out;
}
