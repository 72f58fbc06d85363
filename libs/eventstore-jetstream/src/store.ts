import {
  DeliverPolicy,
  JetStreamApiCodes,
  JetStreamApiError,
  StorageType,
  jetstream,
  jetstreamManager,
  type Consumer,
  type ConsumerMessages,
  type JetStreamClient,
  type JetStreamManager,
  type JetStreamPublishOptions,
  type JsMsg,
  type StreamInfo,
} from "@nats-io/jetstream";
import {
  PermissionViolationError,
  connect as natsConnect,
  headers as natsHeaders,
  nanos,
  type NatsConnection,
} from "@nats-io/transport-node";
import {
  DEFAULT_SUBJECT_PREFIX,
  EventStoreError,
  EventValidationError,
  WrongExpectedVersionError,
  decodeCommit,
  encodeCommit,
  validateAppend,
  type AppendOptions,
  type AppendResult,
  type Commit,
  type DomainEvent,
  type EventStore,
  type ReadOptions,
  type StreamSlice,
  type Subscription,
  type ValidationIssue,
} from "@slap/events";
import { inboxPrefixOf } from "./credentials.js";
import type { Logger } from "pino";

export interface JetStreamStoreOptions {
  /**
   * NATS server URL(s) to connect to when no `nc` is given (default: the client's,
   * `127.0.0.1:4222`). That connection reconnects forever and captures no async stack traces
   * (a stack capture per request costs about a fifth of pipelined append throughput).
   */
  servers?: string | string[];
  /**
   * An existing connection to use. The store never closes a connection it was given; it
   * closes (drains) one it opened itself.
   */
  nc?: NatsConnection;
  /** NATS user name for the connection the store opens (ignored with `nc`). */
  user?: string;
  /** NATS password for the connection the store opens (ignored with `nc`); never logged. */
  pass?: string;
  /**
   * TLS for the connection the store opens (ignored with `nc`): the CA file the server's
   * certificate must chain to, and a client certificate and key when the server asks for one.
   */
  tls?: { caFile?: string; certFile?: string; keyFile?: string };
  /** JetStream stream holding the log (default `SLAP_EVENTS`). Created when missing, reused when present. */
  streamName?: string;
  /** Subject prefix of every stream key (default `DEFAULT_SUBJECT_PREFIX`, `slap.ev`). */
  subjectPrefix?: string;
  logger: Logger;
  /**
   * How long the server remembers commit ids for de-duplication (default 120,000 ms, two
   * minutes). A retry of a commit older than that is written again. Only applied when the
   * stream is created; an existing stream keeps its own window.
   */
  duplicateWindowMs?: number;
  /** Stream replicas when the stream is created (default 1). */
  replicas?: number;
  /**
   * Copy each malformed commit a read meets into the dead-letter stream (default true): the
   * stream `<streamName>_DEAD` on `slap.dead.<streamName>.>`, created on connect by a user that
   * may create streams. Each one goes to `slap.dead.<streamName>.<position>`, published once per
   * store and stored once whatever the number of readers (the publish expects the subject to be
   * empty). When the user may not read that stream's info or publish there (a node), or the
   * stream is missing, it is said once in the log and malformed commits are only logged.
   */
  deadLetters?: boolean;
}

/** Stream name used when none is given. */
export const DEFAULT_STREAM_NAME = "SLAP_EVENTS";

/** The dead-letter stream of a log stream: `<streamName>_DEAD`. */
export function deadLetterStreamName(streamName: string): string {
  return `${streamName}_DEAD`;
}

/** The subject prefix of a log stream's dead letters, `slap.dead.<streamName>`; one letter per subject `<prefix>.<position>`. */
export function deadLetterSubjectPrefix(streamName: string): string {
  return `slap.dead.${streamName}`;
}

/** Headers of a dead letter (its body is the malformed commit's, cut to fit the server's max payload). */
export const DEAD_LETTER_HEADERS = {
  /** Why it was refused: the parse error or the zod issues as JSON, ASCII, at most 4 KiB. */
  reason: "Slap-Dead-Reason",
  /** The log stream it was found in. */
  stream: "Slap-Dead-Stream",
  /** Its subject in the log. */
  subject: "Slap-Dead-Subject",
  /** Its position (stream sequence) in the log. */
  sequence: "Slap-Dead-Sequence",
  /** Its body's length in bytes when the body kept here had to be cut. */
  truncated: "Slap-Dead-Truncated",
} as const;
const MAX_REASON_BYTES = 4_096;
/** Positions a store remembers having dead-lettered (oldest forgotten first). */
const DEAD_LETTERS_REMEMBERED = 10_000;
const DEFAULT_DUPLICATE_WINDOW_MS = 120_000;
/** Most messages one pull request asks for while replaying; large batches approach raw consumer speed. */
const REPLAY_BATCH = 10_000;
/** Pull size of a live subscription (it replays first, so it benefits from large batches too). */
const LIVE_BATCH = 5_000;
/** How long `close()` lets a drain flush before closing the connection outright (a drain waits for a server that may be gone). */
const DRAIN_TIMEOUT_MS = 5_000;
const WRONG_LAST_SEQUENCE = /wrong last sequence: (\d+)/;

interface SubscriptionState {
  closed: boolean;
  messages: ConsumerMessages | undefined;
}

/**
 * The event store on a NATS JetStream stream. Mapping:
 *
 * - One stream (`SLAP_EVENTS`, file storage) captures `<prefix>.>`; every aggregate stream is
 *   the subject `<prefix>.<streamKey>`, and every commit is one message whose body is the
 *   JSON array of its events (`encodeCommit`).
 * - A commit's position is the message's stream sequence; a stream's version is the sequence
 *   of the last message on its subject (malformed messages included), so `expectedVersion`
 *   is the publish expectation `Nats-Expected-Last-Subject-Sequence` (0: no message yet,
 *   honoured by nats-server 2.9).
 * - The commit id (first event id) is the `Nats-Msg-Id`: the server de-duplicates within
 *   the stream's duplicate window and checks de-duplication before the expectation, so a
 *   retry after a lost acknowledgement answers the original position.
 * - Reads use ordered, ephemeral, single-filter pull consumers (nats-server 2.9 compatible:
 *   no multi-filter consumers), deleted when the read ends.
 * - A message that does not decode is logged (`malformed commit skipped`, with its position)
 *   and skipped by every read; it still counts for its stream's version. It is also copied, once,
 *   into the dead-letter stream with the reason (see `deadLetters`).
 * - The NATS client drops what is published while it reconnects, so an append made then fails
 *   after the JetStream request timeout with a retryable `EventStoreError` (nothing was written).
 */
export class JetStreamEventStore implements EventStore {
  private readonly prefixLength: number;
  private readonly active = new Set<ConsumerMessages>();
  private readonly cleanups = new Set<Promise<unknown>>();
  private readonly deadLettered = new Set<number>();
  private closed = false;

  private constructor(
    private readonly nc: NatsConnection,
    private readonly ownsConnection: boolean,
    private readonly js: JetStreamClient,
    private readonly jsm: JetStreamManager,
    /** The JetStream stream holding the log. */
    readonly streamName: string,
    /** The subject prefix: stream key `k` is subject `<subjectPrefix>.k`. */
    readonly subjectPrefix: string,
    private readonly logger: Logger,
    /** Where malformed commits are copied (`undefined`: dead letters off). */
    private deadLetterPrefix: string | undefined,
  ) {
    this.prefixLength = subjectPrefix.length + 1;
  }

  /**
   * Connects (unless `options.nc` is given) and makes sure the stream exists: created with file
   * storage, subjects `<prefix>.>`, the duplicate window and replicas when missing; reused as it
   * is when present (it must capture `<prefix>.>`). A user that may only read the log (a node)
   * opens an existing stream; when it is missing, the error says so. With `deadLetters` (the
   * default) the dead-letter stream is checked and created the same way, but its absence only
   * turns dead letters off.
   * @throws EventStoreError when the server cannot be reached or refuses the credentials, the
   *   existing stream does not fit, or the stream is missing and this user may not create it.
   */
  static async connect(options: JetStreamStoreOptions): Promise<JetStreamEventStore> {
    const streamName = options.streamName ?? DEFAULT_STREAM_NAME;
    const subjectPrefix = options.subjectPrefix ?? DEFAULT_SUBJECT_PREFIX;
    const logger = options.logger.child({ component: "jetstream-store", stream: streamName });
    let nc = options.nc;
    const ownsConnection = nc === undefined;
    if (nc === undefined) {
      try {
        nc = await natsConnect({
          ...(options.servers === undefined ? {} : { servers: options.servers }),
          name: "slap-event-store",
          ...(options.user === undefined ? {} : { user: options.user, inboxPrefix: inboxPrefixOf(options.user) }),
          ...(options.pass === undefined ? {} : { pass: options.pass }),
          ...(options.tls === undefined ? {} : { tls: options.tls }),
          maxReconnectAttempts: -1,
          noAsyncTraces: true,
        });
      } catch (cause) {
        const refused = /authorization/i.test(messageOf(cause));
        throw new EventStoreError(
          refused
            ? `NATS refused the credentials${options.user === undefined ? " (none given: set the user and password)" : ` of user ${options.user}`}: ${messageOf(cause)}`
            : `cannot connect to NATS: ${messageOf(cause)}`,
          { cause, retryable: !refused },
        );
      }
    }
    try {
      const jsm = await jetstreamManager(nc);
      await ensureStream(jsm, {
        streamName,
        subjectPrefix,
        duplicateWindowMs: options.duplicateWindowMs ?? DEFAULT_DUPLICATE_WINDOW_MS,
        replicas: options.replicas ?? 1,
        logger,
      });
      const deadLetters =
        (options.deadLetters ?? true) && (await ensureDeadLetterStream(jsm, { streamName, replicas: options.replicas ?? 1, logger }));
      return new JetStreamEventStore(
        nc,
        ownsConnection,
        jetstream(nc),
        jsm,
        streamName,
        subjectPrefix,
        logger,
        deadLetters ? deadLetterSubjectPrefix(streamName) : undefined,
      );
    } catch (cause) {
      if (ownsConnection) await nc.close();
      if (cause instanceof EventStoreError) throw cause;
      throw new EventStoreError(`cannot open JetStream stream ${streamName}: ${messageOf(cause)}`, { cause, retryable: true });
    }
  }

  /**
   * Publishes the commit with `Nats-Msg-Id` = first event id and, for a numeric
   * `expectedVersion`, `Nats-Expected-Last-Subject-Sequence`. A failure other than a version
   * conflict (timeout, disconnection) is a retryable `EventStoreError`: the commit may or may
   * not have been written, and retrying the same events is safe within the duplicate window.
   */
  async append(events: readonly DomainEvent[], options: AppendOptions): Promise<AppendResult> {
    this.assertOpen();
    const { streamKey, events: valid } = validateAppend(events);
    const expected = options.expectedVersion;
    if (expected !== "any" && !(Number.isSafeInteger(expected) && expected >= 0)) {
      throw new EventValidationError(
        [{ path: "expectedVersion", message: "must be a non-negative integer or \"any\"" }],
        "append refused",
      );
    }
    const body = encodeCommit(valid);
    const maxPayload = this.nc.info?.max_payload;
    if (maxPayload !== undefined && body.length > maxPayload) {
      throw new EventStoreError(`commit of ${body.length} bytes exceeds the server's max payload (${maxPayload})`, {
        retryable: false,
      });
    }
    const publishOptions: Partial<JetStreamPublishOptions> =
      expected === "any" ? { msgID: valid[0]!.id } : { msgID: valid[0]!.id, expect: { lastSubjectSequence: expected } };
    try {
      const ack = await this.js.publish(`${this.subjectPrefix}.${streamKey}`, body, publishOptions);
      return { position: ack.seq, duplicate: ack.duplicate };
    } catch (cause) {
      if (expected !== "any" && isWrongLastSequence(cause)) {
        // A replicated stream (nats-server 2.9) checks the expected version before the msgID: a
        // retry of a commit whose acknowledgement was lost meets its own commit as a conflict.
        // When that commit is still the stream's last, answer it as the duplicate it is.
        const own = await this.lastIfOwn(streamKey, valid[0]!.id);
        if (own !== undefined) return { position: own, duplicate: true };
        const actual = WRONG_LAST_SEQUENCE.exec(cause.message)?.[1];
        throw new WrongExpectedVersionError(streamKey, expected, actual === undefined ? undefined : Number(actual), { cause });
      }
      if (isPermissionViolation(cause)) {
        throw new EventStoreError(`append to ${streamKey} refused: this NATS user may not publish on ${this.subjectPrefix}.${streamKey}`, {
          cause,
          retryable: false,
        });
      }
      throw new EventStoreError(`append to ${streamKey} failed: ${messageOf(cause)}`, { cause, retryable: true });
    }
  }

  /** The position of the stream's last commit when it is the one whose first event is `id` (else undefined). */
  private async lastIfOwn(streamKey: string, id: string): Promise<number | undefined> {
    try {
      const last = await this.jsm.streams.getMessage(this.streamName, { last_by_subj: `${this.subjectPrefix}.${streamKey}` });
      return last !== null && last.header?.get("Nats-Msg-Id") === id ? last.seq : undefined;
    } catch {
      return undefined;
    }
  }

  /** The version is the sequence of the subject's last message; the commits come from an ordered consumer on that subject. */
  async readStream(streamKey: string): Promise<StreamSlice> {
    this.assertOpen();
    assertStreamKey(streamKey);
    const subject = `${this.subjectPrefix}.${streamKey}`;
    let last;
    try {
      last = await this.jsm.streams.getMessage(this.streamName, { last_by_subj: subject });
    } catch (cause) {
      if (cause instanceof JetStreamApiError && cause.code === JetStreamApiCodes.NoMessageFound) last = null;
      else throw new EventStoreError(`cannot read stream ${streamKey}: ${messageOf(cause)}`, { cause, retryable: true });
    }
    if (last === null) return { version: 0, commits: [] };
    const version = last.seq;
    const commits: Commit[] = [];
    for await (const commit of this.replay(subject, 1, version)) commits.push(commit);
    return { version, commits };
  }

  /** Reads up to the stream's `last_seq` taken when the iteration starts. */
  readAll(options: ReadOptions = {}): AsyncIterable<Commit> {
    const after = Math.max(options.after ?? 0, 0);
    const filter = `${this.subjectPrefix}.${options.filter ?? ">"}`;
    return { [Symbol.asyncIterator]: () => this.replay(filter, after + 1) };
  }

  /**
   * An ordered consumer from `after + 1`: catch-up and live delivery are one sequence-ordered
   * flow, so there is no seam. The subscription is iterated once; `close()` ends the iteration
   * (also while it waits) and deletes the consumer.
   */
  subscribe(options: ReadOptions = {}): Subscription {
    const after = Math.max(options.after ?? 0, 0);
    const filter = `${this.subjectPrefix}.${options.filter ?? ">"}`;
    const state: SubscriptionState = { closed: false, messages: undefined };
    const iterator = this.follow(filter, after + 1, state);
    return {
      [Symbol.asyncIterator]: () => iterator,
      close: async () => {
        if (state.closed) return;
        state.closed = true;
        await state.messages?.close();
        await iterator.return(undefined);
      },
    };
  }

  /** The stream's `last_seq`: the position of the last commit, 0 when the log is empty. */
  async head(): Promise<number> {
    this.assertOpen();
    try {
      return (await this.jsm.streams.info(this.streamName)).state.last_seq;
    } catch (cause) {
      throw new EventStoreError(`cannot read the head of ${this.streamName}: ${messageOf(cause)}`, { cause, retryable: true });
    }
  }

  /** Ends every read and subscription, deletes their consumers, and drains the connection if the store opened it. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await Promise.all([...this.active].map((messages) => messages.close()));
    await Promise.allSettled([...this.cleanups]);
    if (this.ownsConnection && !this.nc.isClosed()) await drainOrClose(this.nc);
  }

  private assertOpen(): void {
    if (this.closed) throw new EventStoreError("event store is closed", { retryable: false });
  }

  /**
   * Publishes `body` on the subject of `streamKey` with no validation and no expectation, as a
   * foreign or buggy writer would. For tests of how readers cope with
   * malformed commits; never used by services.
   */
  async publishRawForTesting(streamKey: string, body: Uint8Array): Promise<void> {
    this.assertOpen();
    await this.js.publish(`${this.subjectPrefix}.${streamKey}`, body);
  }

  /**
   * Commits from `startSeq` on `filterSubject` up to position `head` (default: the stream's
   * head when the iteration starts), stopping early when nothing more matches.
   */
  private async *replay(filterSubject: string, startSeq: number, head?: number): AsyncGenerator<Commit> {
    this.assertOpen();
    head ??= await this.head();
    if (head < startSeq) return;
    const consumer = await this.orderedConsumer(filterSubject, startSeq);
    try {
      const pending = (await consumer.info(true)).num_pending;
      if (pending === 0) return;
      const messages = await consumer.consume({ max_messages: Math.min(pending, REPLAY_BATCH) });
      this.active.add(messages);
      let complete = false;
      try {
        for await (const msg of messages) {
          const seq = msg.seq;
          if (seq > head) {
            complete = true;
            break;
          }
          const commit = this.toCommit(msg);
          if (commit !== undefined) yield commit;
          if (seq >= head || msg.info.pending === 0) {
            complete = true;
            break;
          }
        }
      } catch (cause) {
        throw new EventStoreError(`read of ${filterSubject} failed: ${messageOf(cause)}`, { cause, retryable: true });
      } finally {
        this.active.delete(messages);
        await messages.close();
      }
      if (!complete) {
        throw new EventStoreError(`read of ${filterSubject} interrupted: the store or its connection closed`, {
          retryable: !this.closed,
        });
      }
    } finally {
      this.release(consumer);
    }
  }

  private async *follow(filterSubject: string, startSeq: number, state: SubscriptionState): AsyncGenerator<Commit> {
    this.assertOpen();
    let next = startSeq;
    for (;;) {
      const consumer = await this.orderedConsumer(filterSubject, next);
      // nats.js (3.4) re-creates an ordered consumer the server lost (a nats-server restart) but
      // keeps the old pull's pending count: the new consumer delivers a few messages, then stalls
      // until heartbeats are missed, a minute later. So this subscription then moves to a fresh
      // consumer of its own, from the position after the last one it delivered.
      let recreated = false;
      try {
        if (state.closed || this.closed) return;
        const messages = await consumer.consume({ max_messages: LIVE_BATCH });
        state.messages = messages;
        this.active.add(messages);
        if (state.closed || this.closed) await messages.close();
        void (async () => {
          for await (const status of messages.status()) {
            if (status.type !== "ordered_consumer_recreated") continue;
            recreated = true;
            await messages.close();
            return;
          }
        })().catch(() => undefined);
        try {
          for await (const msg of messages) {
            if (recreated) break;
            next = msg.seq + 1;
            const commit = this.toCommit(msg);
            if (commit !== undefined) yield commit;
            if (state.closed) break;
          }
        } catch (cause) {
          if (!state.closed && !this.closed) {
            throw new EventStoreError(`subscription on ${filterSubject} failed: ${messageOf(cause)}`, { cause, retryable: true });
          }
        } finally {
          this.active.delete(messages);
          await messages.close();
        }
      } finally {
        this.release(consumer);
      }
      if (!recreated || state.closed || this.closed) return;
      this.logger.warn({ filter: filterSubject, from: next }, "the server lost the subscription's consumer (restarted?): following on a fresh one");
    }
  }

  private async orderedConsumer(filterSubject: string, startSeq: number): Promise<Consumer> {
    try {
      return await this.js.consumers.get(this.streamName, {
        filter_subjects: filterSubject,
        deliver_policy: DeliverPolicy.StartSequence,
        opt_start_seq: startSeq,
      });
    } catch (cause) {
      throw new EventStoreError(`cannot read ${filterSubject}: ${messageOf(cause)}`, { cause, retryable: true });
    }
  }

  /** Deletes an ephemeral consumer in the background (else it lingers for its inactivity threshold); `close()` waits for it. */
  private release(consumer: Consumer): void {
    if (this.nc.isClosed()) return;
    const deletion = consumer.delete().catch((error: unknown) => {
      this.logger.debug({ err: error }, "ephemeral consumer not deleted");
    });
    this.cleanups.add(deletion);
    void deletion.finally(() => this.cleanups.delete(deletion));
  }

  private toCommit(msg: JsMsg): Commit | undefined {
    const streamKey = msg.subject.slice(this.prefixLength);
    const decoded = decodeCommit(msg.data, streamKey);
    if (decoded.ok) return { position: msg.seq, streamKey, events: decoded.events };
    this.logger.warn({ position: msg.seq, streamKey, issues: decoded.issues.slice(0, 20) }, "malformed commit skipped");
    this.deadLetter(msg, decoded.issues);
    return undefined;
  }

  /**
   * Copies a malformed commit into the dead-letter stream, in the background (a read never waits
   * for it; `close()` does). One attempt per position and store; the subject's expected last
   * sequence 0 makes the server store it once whatever the number of readers.
   */
  private deadLetter(msg: JsMsg, issues: readonly ValidationIssue[]): void {
    const prefix = this.deadLetterPrefix;
    const position = msg.seq;
    if (prefix === undefined || this.closed || this.deadLettered.has(position)) return;
    this.deadLettered.add(position);
    if (this.deadLettered.size > DEAD_LETTERS_REMEMBERED) this.deadLettered.delete(this.deadLettered.values().next().value!);
    const h = natsHeaders();
    h.set(DEAD_LETTER_HEADERS.reason, asciiCapped(JSON.stringify(issues), MAX_REASON_BYTES));
    h.set(DEAD_LETTER_HEADERS.stream, this.streamName);
    h.set(DEAD_LETTER_HEADERS.subject, asciiCapped(msg.subject, 1_024));
    h.set(DEAD_LETTER_HEADERS.sequence, String(position));
    let body = msg.data;
    const maxPayload = this.nc.info?.max_payload;
    // The headers, the expectation header and the protocol's framing, with room to spare.
    const overhead = 8_192 + msg.subject.length;
    if (maxPayload !== undefined && body.length + overhead > maxPayload) {
      h.set(DEAD_LETTER_HEADERS.truncated, String(body.length));
      body = body.subarray(0, Math.max(0, maxPayload - overhead));
    }
    const fields = { position, streamKey: msg.subject.slice(this.prefixLength) };
    const publication = this.js
      .publish(`${prefix}.${position}`, body, { headers: h, expect: { lastSubjectSequence: 0 } })
      .then((ack) => this.logger.info({ ...fields, deadLetter: ack.seq }, "malformed commit dead-lettered"))
      .catch((error: unknown) => {
        if (isWrongLastSequence(error)) {
          this.logger.debug(fields, "malformed commit already dead-lettered");
        } else if (isPermissionViolation(error)) {
          if (this.deadLetterPrefix !== undefined) {
            this.deadLetterPrefix = undefined;
            this.logger.warn({ ...fields, subject: `${prefix}.>` }, "dead letters off: this NATS user may not publish them; malformed commits are only logged");
          }
        } else {
          this.logger.warn({ ...fields, err: error }, "malformed commit not dead-lettered (not retried)");
        }
      });
    this.cleanups.add(publication);
    void publication.finally(() => this.cleanups.delete(publication));
  }
}

async function ensureStream(
  jsm: JetStreamManager,
  options: { streamName: string; subjectPrefix: string; duplicateWindowMs: number; replicas: number; logger: Logger },
): Promise<StreamInfo> {
  const { streamName, subjectPrefix, logger } = options;
  const subject = `${subjectPrefix}.>`;
  let info = await streamInfo(jsm, streamName);
  if (info === undefined) {
    try {
      info = await jsm.streams.add({
        name: streamName,
        subjects: [subject],
        storage: StorageType.File,
        duplicate_window: nanos(options.duplicateWindowMs),
        num_replicas: options.replicas,
      });
      logger.info({ subjects: [subject], duplicateWindowMs: options.duplicateWindowMs, replicas: options.replicas }, "event stream created");
      return info;
    } catch (error) {
      if (isPermissionViolation(error)) {
        throw new EventStoreError(
          `stream ${streamName} does not exist and this NATS user may not create it: start the master first (it creates the stream)`,
          { cause: error, retryable: true },
        );
      }
      info = await streamInfo(jsm, streamName);
      if (info === undefined) throw error;
    }
  }
  if (!info.config.subjects?.includes(subject)) {
    throw new EventStoreError(
      `stream ${streamName} exists but does not capture ${subject} (its subjects: ${JSON.stringify(info.config.subjects ?? [])})`,
      { retryable: false },
    );
  }
  logger.debug({ lastSeq: info.state.last_seq }, "event stream reused");
  return info;
}

/**
 * Makes sure the dead-letter stream exists (creates it when missing and allowed). Answers whether
 * dead letters can be written; never throws: without that stream the log still works.
 */
async function ensureDeadLetterStream(
  jsm: JetStreamManager,
  options: { streamName: string; replicas: number; logger: Logger },
): Promise<boolean> {
  const name = deadLetterStreamName(options.streamName);
  const subject = `${deadLetterSubjectPrefix(options.streamName)}.>`;
  const logger = options.logger.child({ deadLetterStream: name });
  try {
    let info = await streamInfo(jsm, name);
    if (info === undefined) {
      try {
        info = await jsm.streams.add({ name, subjects: [subject], storage: StorageType.File, num_replicas: options.replicas });
        logger.info({ subjects: [subject] }, "dead-letter stream created");
      } catch (error) {
        info = isPermissionViolation(error) ? undefined : await streamInfo(jsm, name);
        if (info === undefined) throw error;
      }
    }
    if (!info.config.subjects?.includes(subject)) {
      logger.warn({ subjects: info.config.subjects ?? [] }, `dead letters off: stream ${name} does not capture ${subject}`);
      return false;
    }
    return true;
  } catch (error) {
    if (isPermissionViolation(error)) {
      logger.info("dead letters off: this NATS user may not use the dead-letter stream (or create it); malformed commits are only logged");
    } else {
      logger.warn({ err: error }, "dead letters off: the dead-letter stream is not available; malformed commits are only logged");
    }
    return false;
  }
}

async function streamInfo(jsm: JetStreamManager, name: string): Promise<StreamInfo | undefined> {
  try {
    return await jsm.streams.info(name);
  } catch (error) {
    if (error instanceof JetStreamApiError && error.code === JetStreamApiCodes.StreamNotFound) return undefined;
    throw error;
  }
}

async function drainOrClose(nc: NatsConnection): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<void>((resolve) => {
    timer = setTimeout(resolve, DRAIN_TIMEOUT_MS);
  });
  try {
    await Promise.race([nc.drain().catch(() => undefined), timeout]);
  } finally {
    clearTimeout(timer);
  }
  if (!nc.isClosed()) await nc.close();
}

/** Whether the server refused a request for lack of permission (the client's error, or one it caused). */
function isPermissionViolation(error: unknown): boolean {
  for (let e = error, depth = 0; e instanceof Error && depth < 5; e = e.cause, depth++) {
    if (e instanceof PermissionViolationError || e.name === "PermissionViolationError") return true;
  }
  return false;
}

/** `text` in printable ASCII (others as `\uXXXX`), cut to `max` characters: safe as a header value. */
function asciiCapped(text: string, max: number): string {
  const ascii = text.replace(/[^\x20-\x7e]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, "0")}`);
  return ascii.length <= max ? ascii : `${ascii.slice(0, max - 14)}...(truncated)`;
}

function isWrongLastSequence(error: unknown): error is JetStreamApiError {
  return (
    error instanceof JetStreamApiError &&
    (error.code === JetStreamApiCodes.StreamWrongLastSequence || error.code === JetStreamApiCodes.StreamWrongLastSequenceUnknown)
  );
}

/** A stream key is a literal subject tail: tokens without wildcards or whitespace. */
function assertStreamKey(streamKey: string): void {
  const tokens = streamKey.split(".");
  if (tokens.some((t) => t === "" || t === "*" || t === ">" || /\s/.test(t))) {
    throw new EventValidationError([{ path: "streamKey", message: `not a literal stream key: ${JSON.stringify(streamKey)}` }], "read refused");
  }
}

function messageOf(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
