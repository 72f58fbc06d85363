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
import { connect as natsConnect, nanos, type NatsConnection } from "@nats-io/transport-node";
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
} from "@slap/events";
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
}

/** Stream name used when none is given. */
export const DEFAULT_STREAM_NAME = "SLAP_EVENTS";
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
 *   and skipped by every read; it still counts for its stream's version.
 * - The NATS client drops what is published while it reconnects, so an append made then fails
 *   after the JetStream request timeout with a retryable `EventStoreError` (nothing was written).
 */
export class JetStreamEventStore implements EventStore {
  private readonly prefixLength: number;
  private readonly active = new Set<ConsumerMessages>();
  private readonly cleanups = new Set<Promise<unknown>>();
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
  ) {
    this.prefixLength = subjectPrefix.length + 1;
  }

  /**
   * Connects (unless `options.nc` is given) and makes sure the stream exists: created with file
   * storage, subjects `<prefix>.>`, the duplicate window and replicas when missing; reused as it
   * is when present (it must capture `<prefix>.>`).
   * @throws EventStoreError when the server cannot be reached or the existing stream does not fit.
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
          maxReconnectAttempts: -1,
          noAsyncTraces: true,
        });
      } catch (cause) {
        throw new EventStoreError(`cannot connect to NATS: ${messageOf(cause)}`, { cause, retryable: true });
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
      return new JetStreamEventStore(nc, ownsConnection, jetstream(nc), jsm, streamName, subjectPrefix, logger);
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
        const actual = WRONG_LAST_SEQUENCE.exec(cause.message)?.[1];
        throw new WrongExpectedVersionError(streamKey, expected, actual === undefined ? undefined : Number(actual), { cause });
      }
      throw new EventStoreError(`append to ${streamKey} failed: ${messageOf(cause)}`, { cause, retryable: true });
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
    const consumer = await this.orderedConsumer(filterSubject, startSeq);
    try {
      if (state.closed || this.closed) return;
      const messages = await consumer.consume({ max_messages: LIVE_BATCH });
      state.messages = messages;
      this.active.add(messages);
      if (state.closed || this.closed) await messages.close();
      try {
        for await (const msg of messages) {
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
    this.logger.warn({ position: msg.seq, streamKey, issues: decoded.issues }, "malformed commit skipped");
    return undefined;
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
