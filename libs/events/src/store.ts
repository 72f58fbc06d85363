import { z } from "zod";
import { EventValidationError, issuesOf, type ValidationIssue } from "./errors.js";
import { DomainEvent } from "./schemas.js";
import { streamKeyOf } from "./subjects.js";

/**
 * The event-store port. Two adapters implement it (embedded file log, JetStream) and one
 * contract suite (`@slap/testkit`) runs unchanged against both.
 *
 * Vocabulary:
 * - A **commit** is what one `append` writes: one or more events of one aggregate stream,
 *   atomically (all or nothing). It is one record in the log (one JetStream message).
 * - A **position** is a commit's place in the whole log: 1, 2, 3… (the JetStream stream
 *   sequence). Positions only grow; the events of a commit share its position.
 * - A stream's **version** is the position of its last commit, 0 when it has none.
 *   `expectedVersion` in `append` is compared with it (JetStream: expected last subject sequence).
 */
export interface EventStore {
  /**
   * Appends `events` (all of one aggregate stream) as one commit.
   * - Every event is validated against its schema first; a mismatch throws
   *   `EventValidationError` naming the field path, and nothing is written.
   * - `expectedVersion` (a number) must equal the stream's version, else
   *   `WrongExpectedVersionError` and nothing is written; `"any"` skips the check.
   * - The commit's id is its first event's id: appending the same commit again (a retry)
   *   writes nothing and answers the original position with `duplicate: true`. The
   *   de-duplication check comes before the version check, so a retry after a lost
   *   acknowledgement succeeds. Adapters keep ids for a window (see each adapter).
   */
  append(events: readonly DomainEvent[], options: AppendOptions): Promise<AppendResult>;
  /** Every commit of one stream, oldest first, and the stream's version. */
  readStream(streamKey: string): Promise<StreamSlice>;
  /**
   * Commits after position `after` (default 0: from the start), oldest first, up to the head
   * as it was when the read began. With `filter`, only streams matching it (NATS wildcards).
   */
  readAll(options?: ReadOptions): AsyncIterable<Commit>;
  /**
   * Commits after `after`, then every new one as it is appended: in order, with no gap and
   * no duplicate at the seam between catch-up and live. Ends when closed.
   */
  subscribe(options?: ReadOptions): Subscription;
  /** Position of the last commit in the log (0 when empty). */
  head(): Promise<number>;
  close(): Promise<void>;
}

export type ExpectedVersion = number | "any";

export interface AppendOptions {
  expectedVersion: ExpectedVersion;
}

export interface AppendResult {
  position: number;
  /** True when the commit had already been appended (idempotent retry): nothing was written. */
  duplicate: boolean;
}

export interface Commit {
  position: number;
  streamKey: string;
  events: readonly DomainEvent[];
}

export interface StreamSlice {
  version: number;
  commits: Commit[];
}

export interface ReadOptions {
  after?: number;
  /** Stream-key filter with NATS wildcards, e.g. `tree.<id>.>` (see `follow`). */
  filter?: string;
}

export interface Subscription extends AsyncIterable<Commit> {
  close(): Promise<void>;
}

const CommitEvents = z.array(DomainEvent).min(1).max(1_000);

/**
 * Validates the events of an append and returns its stream key.
 * @throws EventValidationError naming the path (`events.<i>.<field>`) of every mismatch.
 */
export function validateAppend(events: unknown): { streamKey: string; events: DomainEvent[] } {
  const parsed = CommitEvents.safeParse(events);
  if (!parsed.success) throw new EventValidationError(issuesOf(parsed.error, ["events"]), "event refused");
  const streamKey = streamKeyOf(parsed.data[0]!.aggregate);
  parsed.data.forEach((event, i) => {
    if (streamKeyOf(event.aggregate) !== streamKey) {
      throw new EventValidationError(
        [{ path: `events.${i}.aggregate`, message: `all events of one append must belong to stream ${streamKey}` }],
        "event refused",
      );
    }
  });
  return { streamKey, events: parsed.data };
}

/** The body of a commit record: the JSON array of its events. */
export function encodeCommit(events: readonly DomainEvent[]): Uint8Array {
  return Buffer.from(JSON.stringify(events));
}

export type Decoded = { ok: true; events: DomainEvent[] } | { ok: false; issues: ValidationIssue[] };

/** Parses a commit body found in the log. Never throws: a malformed body is reported as issues. */
export function decodeCommit(body: Uint8Array, expectedStreamKey?: string): Decoded {
  let json: unknown;
  try {
    json = JSON.parse(Buffer.from(body.buffer, body.byteOffset, body.byteLength).toString("utf8"));
  } catch (error) {
    return { ok: false, issues: [{ path: "", message: `not JSON: ${(error as Error).message}` }] };
  }
  const parsed = CommitEvents.safeParse(json);
  if (!parsed.success) return { ok: false, issues: issuesOf(parsed.error) };
  if (expectedStreamKey !== undefined) {
    const bad = parsed.data.findIndex((e) => streamKeyOf(e.aggregate) !== expectedStreamKey);
    if (bad >= 0) return { ok: false, issues: [{ path: `${bad}.aggregate`, message: `does not belong to ${expectedStreamKey}` }] };
  }
  return { ok: true, events: parsed.data };
}
