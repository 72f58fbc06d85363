import { setTimeout as sleep } from "node:timers/promises";
import type { DomainEvent, InstanceView } from "@slap/events";
import type { Logger } from "pino";
import { ExpectedVersions } from "../core/expected-versions.js";
import type { ClaimWriter } from "./claim-writer.js";
import type { Deferrals } from "./deferrals.js";

/** One claim of this replica, from its proposal until the read model shows it (or it is dropped). */
export type Attempt =
  | (AttemptBase & { kind: "place"; instance: InstanceView; computerId: string; partitionId: string })
  | (AttemptBase & { kind: "attach"; instance: InstanceView; hostInstanceId: string })
  | (AttemptBase & { kind: "release"; instanceId: string; computerId: string; partitionId: string });

interface AttemptBase {
  event: DomainEvent;
  streamKey: string;
  expectedVersion: number;
  /** Fields of every log line about this attempt. */
  fields: Record<string, unknown>;
}

export interface ClaimAppenderOptions {
  writer: ClaimWriter;
  logger: Logger;
  /** Most appends in flight at once. */
  maxInFlight: number;
  /** After a lost race, retry once the read model reached the conflicting position, or after this long. */
  conflictRetryMs: number;
  /** Work run by log position or deadline (the allocator runs what is due on every commit and tick). */
  deferrals: Deferrals;
  /** Counted here: lost races and store failures. */
  stats: { conflicts: number; storeErrors: number };
  /** The read model's position. */
  position(): number;
  /** The version of the attempt's stream as the read model shows it now. */
  shownVersion(attempt: Attempt): number;
  /** A stored claim the read model did not show in time: settle it anyway. */
  settle(eventId: string): void;
  /** The claim was dropped (lost, failed, not stored): consider its subject again. */
  retry(attempt: Attempt): void;
}

const APPEND_TRIES = 5;
const BACKOFF_MS = [50, 200, 800, 2_000];
/** An append whose outcome is unknown (store failure) is settled by the read model within this long. */
const UNCERTAIN_MS = 5_000;
/** A refused append (a bug: invalid event) is tried again after this long, with an error logged each time. */
export const REFUSED_RETRY_MS = 30_000;

/**
 * Writes this replica's claims through the `ClaimWriter`, many at once but at most
 * `maxInFlight`: a store failure is retried with back-off (the same commit: its event id makes
 * a retry idempotent); a lost race (version conflict) drops the claim and hands it back to the
 * allocator (`retry`) once the read model has caught up with the conflicting position; repeated
 * conflicts on one stream re-read its true version from the store. An attempt stays here until
 * the read model shows its event (`take`) or it is dropped.
 */
export class ClaimAppender {
  /** Appends of this replica not yet seen in the read model, by event id. */
  private readonly attempts = new Map<string, Attempt>();
  private readonly versions = new ExpectedVersions();
  private readonly running = new Set<Promise<void>>();
  private slotWaiters: Array<() => void> = [];
  private appending = 0;
  private stopping = false;
  private readonly abort = new AbortController();

  constructor(private readonly options: ClaimAppenderOptions) {}

  /** Whether as many appends as allowed are in flight. */
  get full(): boolean {
    return this.appending >= this.options.maxInFlight;
  }

  /** Resolves once an append slot is free (or at stop). */
  freeSlot(): Promise<void> {
    if (!this.full || this.stopping) return Promise.resolve();
    return new Promise((resolve) => this.slotWaiters.push(resolve));
  }

  /** The expected version of a claim on a stream the read model shows at `shown`. */
  expected(streamKey: string, shown: number): number {
    return this.versions.expected(streamKey, shown, this.options.position());
  }

  /** Starts appending a claim. */
  launch(attempt: Attempt): void {
    this.attempts.set(attempt.event.id, attempt);
    this.appending++;
    const run = this.execute(attempt).finally(() => {
      this.appending--;
      this.running.delete(run);
      this.slotWaiters.shift()?.();
    });
    this.running.add(run);
  }

  /** The read model shows this event: answers its attempt (if it is one of ours), which is over. */
  take(eventId: string): Attempt | undefined {
    const attempt = this.attempts.get(eventId);
    if (attempt !== undefined) this.attempts.delete(eventId);
    return attempt;
  }

  /** Stops retrying and frees whoever waits for a slot; `drain()` then waits for the appends in flight. */
  stop(): void {
    this.stopping = true;
    this.abort.abort();
    for (const wake of this.slotWaiters.splice(0)) wake();
  }

  async drain(): Promise<void> {
    await Promise.allSettled([...this.running]);
  }

  private async execute(attempt: Attempt): Promise<void> {
    const { logger, writer, stats } = this.options;
    for (let tries = 1; ; tries++) {
      const result = await writer
        .submit(attempt.event, attempt.expectedVersion)
        .catch((error: unknown) => ({ kind: "failed" as const, error, retryable: false }));
      switch (result.kind) {
        case "appended":
          return this.appended(attempt, result.position, result.duplicate);
        case "conflict":
          return this.conflicted(attempt, result.expected, result.actual);
        case "failed":
          if (result.retryable) stats.storeErrors++;
          if (!result.retryable || tries >= APPEND_TRIES || this.stopping) return this.failed(attempt, result.error, result.retryable);
          logger.warn({ ...attempt.fields, err: result.error, tries }, "append failed; retrying the same commit");
          await this.pause(BACKOFF_MS[Math.min(tries - 1, BACKOFF_MS.length - 1)]!);
          if (this.stopping) return;
      }
    }
  }

  /** The append is stored; the attempt settles when the read model shows it (usually already has). */
  private appended(attempt: Attempt, position: number, duplicate: boolean): void {
    this.versions.appended(attempt.streamKey);
    if (!this.attempts.has(attempt.event.id)) return;
    const { logger, deferrals } = this.options;
    if (logger.isLevelEnabled("debug")) logger.debug({ ...attempt.fields, position, duplicate }, `${attempt.kind} appended`);
    deferrals.add(position, Date.now() + UNCERTAIN_MS, () => {
      if (!this.attempts.has(attempt.event.id)) return;
      logger.warn({ ...attempt.fields, position, seen: this.options.position() }, "appended event not seen by the read model; settling it anyway");
      this.options.settle(attempt.event.id);
    });
  }

  /** Someone else changed the stream first: drop the attempt, retry once the read model has caught up. */
  private conflicted(attempt: Attempt, expected: number, actual: number | undefined): void {
    if (!this.attempts.has(attempt.event.id)) return;
    this.options.stats.conflicts++;
    const inARow = this.versions.conflicted(attempt.streamKey);
    this.options.logger.debug(
      { ...attempt.fields, expected, actual, inARow },
      attempt.kind === "release" ? "release lost: the partition changed" : `${attempt.kind} lost: the stream changed (another writer came first); retrying after catch-up`,
    );
    // The partition stays reserved until the read model shows what took it.
    const until = actual ?? this.options.position() + 1;
    this.options.deferrals.add(until, Date.now() + this.options.conflictRetryMs, () => {
      void this.afterConflict(attempt, actual, inARow);
    });
  }

  private async afterConflict(attempt: Attempt, actual: number | undefined, inARow: number): Promise<void> {
    const shown = this.options.shownVersion(attempt);
    if (actual !== undefined && shown < actual && this.options.position() >= actual) {
      this.learn(attempt, actual, "the read model skipped a commit of this stream");
    } else if (inARow >= 2) {
      try {
        const version = await this.options.writer.streamVersion(attempt.streamKey);
        if (version > this.options.shownVersion(attempt)) this.learn(attempt, version, "repeated conflicts");
      } catch (error) {
        this.options.logger.warn({ ...attempt.fields, err: error }, "cannot read the stream's version; retrying later");
      }
    }
    this.drop(attempt);
  }

  /** The store failed (or refused the event): drop the attempt once its outcome is known, and retry. */
  private failed(attempt: Attempt, error: unknown, retryable: boolean): void {
    if (!this.attempts.has(attempt.event.id) || this.stopping) return;
    const { logger, deferrals, writer } = this.options;
    if (!retryable) {
      logger.error({ ...attempt.fields, err: error }, `${attempt.kind} refused by the store; trying again in ${REFUSED_RETRY_MS} ms`);
      deferrals.add(Number.POSITIVE_INFINITY, Date.now() + REFUSED_RETRY_MS, () => this.drop(attempt));
      return;
    }
    // The commit may or may not be stored: the read model decides once it reaches the log's head.
    logger.warn({ ...attempt.fields, err: error }, `${attempt.kind} failed after ${APPEND_TRIES} tries; the read model will tell whether it was stored`);
    void writer.head().then(
      (head) => deferrals.add(head, Date.now() + UNCERTAIN_MS, () => this.drop(attempt)),
      () => deferrals.add(Number.POSITIVE_INFINITY, Date.now() + UNCERTAIN_MS, () => this.drop(attempt)),
    );
  }

  /** Drops an attempt the read model does not show and hands its subject back. */
  private drop(attempt: Attempt): void {
    if (!this.attempts.delete(attempt.event.id) || this.stopping) return;
    this.options.retry(attempt);
  }

  private learn(attempt: Attempt, version: number, why: string): void {
    this.versions.learn(attempt.streamKey, version);
    this.options.logger.warn({ ...attempt.fields, streamKey: attempt.streamKey, version, why }, "using the stream version read from the store");
  }

  private async pause(ms: number): Promise<void> {
    try {
      await sleep(ms, undefined, { signal: this.abort.signal });
    } catch {
      // aborted by stop()
    }
  }
}
