import { EventStoreError, WrongExpectedVersionError, type DomainEvent, type EventStore } from "@slap/events";

/** What became of a proposed claim. Never an exception: the allocator decides what to do with each. */
export type ClaimResult =
  /** Stored (or already stored: the same event id was appended before) at this log position. */
  | { kind: "appended"; position: number; duplicate: boolean }
  /** The stream had moved past the version the claim was decided at: another writer came first. */
  | { kind: "conflict"; expected: number; actual: number | undefined }
  /** The store failed (`retryable`: a timeout or a disconnection; else it refused the event). */
  | { kind: "failed"; error: unknown; retryable: boolean };

/**
 * The allocator's applier (Nomad's `Planner`): the allocator decides on its read model and
 * proposes one claim at a time — a `PartitionAllocated`, a `SharedInstanceAttached` or a
 * superseded `PartitionReleased`, each on its own stream, with the stream version it was decided
 * at — and the writer disposes: stored, or refused as a conflict, or failed. The allocator never
 * appends its claims itself, so a harness can refuse them to test the conflict path without a
 * server (`ClaimWriterHarness`).
 */
export interface ClaimWriter {
  /** Appends `event` iff its stream is at `expectedVersion`; the event id is the de-duplication key. */
  submit(event: DomainEvent, expectedVersion: number): Promise<ClaimResult>;
  /** The stream's version as the store knows it (counting commits a read model may have skipped). Throws on a store failure. */
  streamVersion(streamKey: string): Promise<number>;
  /** The log's last position. Throws on a store failure. */
  head(): Promise<number>;
}

/** The claim writer over the event store: one commit per claim, appended with its expected version. */
export class StoreClaimWriter implements ClaimWriter {
  constructor(private readonly store: EventStore) {}

  async submit(event: DomainEvent, expectedVersion: number): Promise<ClaimResult> {
    try {
      const { position, duplicate } = await this.store.append([event], { expectedVersion });
      return { kind: "appended", position, duplicate };
    } catch (error) {
      if (error instanceof WrongExpectedVersionError) return { kind: "conflict", expected: error.expected, actual: error.actual };
      return { kind: "failed", error, retryable: error instanceof EventStoreError && error.retryable };
    }
  }

  async streamVersion(streamKey: string): Promise<number> {
    return (await this.store.readStream(streamKey)).version;
  }

  head(): Promise<number> {
    return this.store.head();
  }
}

/** One claim the allocator proposed, and what the harness answered. */
export interface Proposal {
  event: DomainEvent;
  expectedVersion: number;
  result: ClaimResult;
}

/**
 * Answers a proposal instead of the real writer, or returns undefined to let it through. It may
 * first write to the store itself (a racing replica's claim), through `inner`.
 */
export type ClaimScript = (event: DomainEvent, expectedVersion: number, inner: ClaimWriter) => Promise<ClaimResult | undefined> | ClaimResult | undefined;

/**
 * A claim writer for tests (Nomad's scheduler test harness): passes proposals to a real writer
 * unless a script answers them first — as a conflict, a store failure, or after a rival's write —
 * and records every proposal with its answer.
 */
export class ClaimWriterHarness implements ClaimWriter {
  readonly proposals: Proposal[] = [];
  private readonly scripts: Array<{ script: ClaimScript; times: number; match: (event: DomainEvent) => boolean }> = [];
  private reads = 0;

  constructor(private readonly inner: ClaimWriter) {}

  /** How many times the allocator re-read a stream's version from the store (after repeated conflicts). */
  get streamVersionReads(): number {
    return this.reads;
  }

  /** Answers the next `times` matching proposals with `script` (`times` Infinity: every one). */
  on(script: ClaimScript, options: { times?: number; match?: (event: DomainEvent) => boolean } = {}): this {
    this.scripts.push({ script, times: options.times ?? 1, match: options.match ?? (() => true) });
    return this;
  }

  /** Refuses the next matching proposals as version conflicts, without writing them. */
  rejectNext(times = 1, match?: (event: DomainEvent) => boolean): this {
    return this.on((_event, expected) => ({ kind: "conflict", expected, actual: undefined }), { times, ...(match === undefined ? {} : { match }) });
  }

  /** Fails the next matching proposals as the store would (retryable: a timeout), without writing them. */
  failNext(times = 1, options: { retryable?: boolean; match?: (event: DomainEvent) => boolean } = {}): this {
    const error = new EventStoreError("injected store failure", { retryable: options.retryable ?? true });
    return this.on(() => ({ kind: "failed", error, retryable: error.retryable }), { times, ...(options.match === undefined ? {} : { match: options.match }) });
  }

  /** The proposals of this event type, in order. */
  proposed(type: DomainEvent["type"]): Proposal[] {
    return this.proposals.filter((p) => p.event.type === type);
  }

  async submit(event: DomainEvent, expectedVersion: number): Promise<ClaimResult> {
    const index = this.scripts.findIndex((s) => s.times > 0 && s.match(event));
    let result: ClaimResult | undefined;
    if (index >= 0) {
      const scripted = this.scripts[index]!;
      scripted.times--;
      result = await scripted.script(event, expectedVersion, this.inner);
    }
    result ??= await this.inner.submit(event, expectedVersion);
    this.proposals.push({ event, expectedVersion, result });
    return result;
  }

  streamVersion(streamKey: string): Promise<number> {
    this.reads++;
    return this.inner.streamVersion(streamKey);
  }

  head(): Promise<number> {
    return this.inner.head();
  }
}
