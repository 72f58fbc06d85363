import { setImmediate as yieldToLoop, setTimeout as sleep } from "node:timers/promises";
import {
  EventStoreError,
  ProjectionRunner,
  WrongExpectedVersionError,
  streamKeyOf,
  type CheckpointStore,
  type Commit,
  type DomainEvent,
  type EventStore,
  type InstanceView,
  cloudProjection,
  type CloudView,
} from "@slap/events";
import type { Logger } from "pino";
import { monotonicFactory } from "ulid";
import {
  CapacityIndex,
  HostIndex,
  attachHost,
  hostUnreadiness,
  isPending,
  partitionAllocatedEvent,
  place,
  ringOffset,
  rotationOf,
  sharedInstanceAttachedEvent,
  supersededReleasedEvent,
  type Attachment,
  type EventMeta,
  type PendingReason,
  type Placement,
} from "@slap/placement";
import { Deferrals } from "./deferrals.js";

export interface AllocatorOptions {
  store: EventStore;
  logger: Logger;
  /** This replica's name, in every log line (default `allocator`). */
  replica?: string;
  /**
   * Where this replica starts on the ring of computers, partitions and pending instances
   * (see `ringOffset`). Default: from the replica name (`rotationOf`: its trailing number,
   * else a hash), so `allocator-0`, `allocator-1`, `allocator-2` get distinct rotations.
   */
  rotation?: number;
  /** Most appends in flight at once (default 128). */
  maxInFlight?: number;
  /**
   * Checkpoints of the read model (default none: it is rebuilt from the log on start, ~2 s per
   * 100,000 commits). Saved every 100,000 commits and on stop: a checkpoint is the whole view.
   */
  checkpoints?: CheckpointStore;
  /**
   * After a lost claim (version conflict) the instance is retried once the read model has
   * reached the conflicting position, or after this long at the latest (default 1,000 ms).
   */
  conflictRetryMs?: number;
  /**
   * A replica with a rotation other than 0 is a standby for fresh work: it considers an
   * instance queued by a live event (a request, a change, capacity that appeared), releases a
   * superseded claim, or starts on the backlog found at start, only after
   * `standbyMs × min(rotation, 5)` (default 100 ms per step), so that racing replicas do not
   * all claim the same instance on different partitions. 0: eager.
   */
  standbyMs?: number;
}

/** Why an instance waits, as last found by this replica. */
export interface PendingInfo {
  reason: PendingReason;
  detail: string;
  /** When this reason was first found (ISO-8601). */
  since: string;
}

/** Counters since start. */
export interface AllocatorStats {
  /** Claims that bound their instance (seen in the read model). */
  placed: number;
  attached: number;
  /** Superseded claims released by this replica. */
  released: number;
  /** Appends refused because the stream had moved (lost races). */
  conflicts: number;
  /** Store failures (timeouts, disconnections) met while appending. */
  storeErrors: number;
}

type Attempt =
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

const APPEND_TRIES = 5;
const BACKOFF_MS = [50, 200, 800, 2_000];
const DEFAULT_MAX_IN_FLIGHT = 128;
const DEFAULT_CONFLICT_RETRY_MS = 1_000;
const DEFAULT_STANDBY_MS = 100;
/** An append whose outcome is unknown (store failure) is settled by the read model within this long. */
const UNCERTAIN_MS = 5_000;
/** A refused append (a bug: invalid event) is tried again after this long, with an error logged each time. */
const REFUSED_RETRY_MS = 30_000;
const TICK_MS = 50;
/** Pending instances considered between two yields to the event loop. */
const YIELD_EVERY = 1_000;

/**
 * The allocator: follows the log into its read model (computers and instances, one
 * projection), keeps the set of instances waiting for a partition or a host, and places them.
 *
 * - Every commit that can change capacity or demand wakes the instances it may concern, and a
 *   coalesced allocation pass runs: `place()` (pure) → append `PartitionAllocated` to the
 *   partition stream with the partition's version as expected version. Many appends are in
 *   flight at once, never two of this replica for the same instance or partition: the
 *   partition stays reserved, and the instance set aside, until the read model has seen the
 *   claim (or the append failed).
 * - A lost race (`WrongExpectedVersionError`) drops the attempt; the instance is retried once
 *   the read model has reached the conflicting position. Repeated conflicts on one stream
 *   re-read its true version from the store (a malformed message the read model skipped
 *   still counts for the version). Store failures are retried with back-off; nothing throws.
 * - Janitor: every superseded claim it sees (an instance claimed twice by racing replicas: the
 *   later claim holds its partition) is released with `PartitionReleased {reason: superseded}`.
 * - Shared instances are attached to a ready host (`attachHost()`) with
 *   `SharedInstanceAttached` on their own stream, at the instance's version.
 *
 * Correctness never rests on this replica's memory: the expected versions and the read
 * models' first-claim rule guarantee that no partition holds two instances and no instance is
 * bound twice, whatever replicas run; the memory only avoids wasted appends.
 */
export class Allocator {
  readonly replica: string;
  readonly rotation: number;
  readonly stats: AllocatorStats = { placed: 0, attached: 0, released: 0, conflicts: 0, storeErrors: 0 };

  private readonly store: EventStore;
  private readonly logger: Logger;
  private readonly runner: ProjectionRunner<CloudView>;
  private readonly maxInFlight: number;
  private readonly conflictRetryMs: number;
  /** How long fresh work waits before this replica considers it (0 for rotation 0). */
  private readonly standbyDelayMs: number;
  private readonly nextId = monotonicFactory();

  private capacity = new CapacityIndex();
  private hosts: HostIndex | undefined;
  /** Instances to consider in the next pass, in arrival order. */
  private readonly queue = new Set<string>();
  /** Instances that did not fit, by what would wake them (`p:` or `s:` + release URL). */
  private readonly waiting = new Map<string, Set<string>>();
  private readonly waitKeyOf = new Map<string, string>();
  private readonly reasons = new Map<string, PendingInfo>();
  /** Appends of this replica not yet seen in the read model, by event id. */
  private readonly attempts = new Map<string, Attempt>();
  /** Instances with an attempt in flight or a retry scheduled: not considered meanwhile. */
  private readonly busy = new Set<string>();
  /** Fresh instances this standby replica leaves to others until then (epoch ms). */
  private readonly eligibleAt = new Map<string, number>();
  /** Fresh instances set aside until their `eligibleAt`. */
  private readonly standby = new Set<string>();
  /** Partition stream keys with a janitor release in flight. */
  private readonly releasing = new Set<string>();
  /** Partition stream keys with a janitor release scheduled after the standby delay. */
  private readonly janitorLater = new Set<string>();
  /** Stream versions learnt from the store that the read model does not show (malformed commits). */
  private readonly overrides = new Map<string, number>();
  /** Conflicts in a row per stream key. */
  private readonly conflicts = new Map<string, number>();
  private readonly deferrals = new Deferrals();
  private readonly running = new Set<Promise<void>>();
  private slotWaiters: Array<() => void> = [];
  private appending = 0;
  /** Grows whenever capacity grows: a cached "does not fit" from an older epoch is stale. */
  private epoch = 0;
  private passScheduled = false;
  /** No pass before this time (epoch ms): a standby replica's start. */
  private holdUntil = 0;
  private holdTimer: NodeJS.Timeout | undefined;
  private pass: Promise<void> | undefined;
  private ready = false;
  private stopping = false;
  private started = false;
  private timer: NodeJS.Timeout | undefined;
  private unsubscribe: (() => void) | undefined;
  private readonly abort = new AbortController();

  constructor(options: AllocatorOptions) {
    this.store = options.store;
    this.replica = options.replica ?? "allocator";
    this.rotation = options.rotation ?? rotationOf(options.replica);
    this.logger = options.logger.child({ component: "allocator", replica: this.replica });
    this.maxInFlight = options.maxInFlight ?? DEFAULT_MAX_IN_FLIGHT;
    this.conflictRetryMs = options.conflictRetryMs ?? DEFAULT_CONFLICT_RETRY_MS;
    this.standbyDelayMs = this.rotation === 0 ? 0 : (options.standbyMs ?? DEFAULT_STANDBY_MS) * Math.min(this.rotation, 5);
    this.runner = new ProjectionRunner(this.store, cloudProjection, {
      logger: this.logger,
      ...(options.checkpoints === undefined ? {} : { checkpoints: options.checkpoints, checkpointEvery: 100_000 }),
    });
  }

  /** The read model this replica decides on. Read-only. */
  get view(): CloudView {
    return this.runner.state;
  }

  /** The last log position folded into the view. */
  get position(): number {
    return this.runner.position;
  }

  /** Resolves once the view includes `position`. */
  waitFor(position: number): Promise<void> {
    return this.runner.waitFor(position);
  }

  /** Why an instance waits, as last found by this replica; undefined when it does not wait (or was not tried yet). */
  pendingReason(instanceId: string): PendingInfo | undefined {
    return this.reasons.get(instanceId);
  }

  /** Every waiting instance with its reason. */
  pendingReasons(): ReadonlyMap<string, PendingInfo> {
    return this.reasons;
  }

  /** Catches up with the log, then places what waits and keeps following. */
  async start(): Promise<void> {
    if (this.started) throw new Error("allocator already started");
    this.started = true;
    this.unsubscribe = this.runner.onCommit((_state, commit) => this.onCommit(commit));
    await this.runner.start();
    // Synchronous from here to the end: every commit folded so far is in the state read below,
    // and every later one reaches onCommit.
    const view = this.view;
    this.capacity = CapacityIndex.fromView(view.computers);
    for (const instance of Object.values(view.instances.instances)) {
      if (isPending(instance, view)) this.queue.add(instance.instanceId);
    }
    for (const computer of Object.values(view.computers.computers)) {
      for (const partition of Object.values(computer.partitions)) {
        if (partition.supersededClaim !== null) this.janitor(computer.computerId, partition.partitionId);
      }
    }
    this.ready = true;
    this.holdUntil = Date.now() + this.standbyDelayMs;
    this.timer = setInterval(() => this.tick(), TICK_MS);
    this.timer.unref();
    this.logger.info(
      { position: this.position, rotation: this.rotation, pending: this.queue.size, computers: Object.keys(view.computers.computers).length },
      "allocator started",
    );
    this.schedulePass();
  }

  /** Stops placing, waits for the appends in flight, and stops following the log. Does not close the store. */
  async stop(): Promise<void> {
    if (!this.started || this.stopping) return;
    this.stopping = true;
    this.abort.abort();
    if (this.timer !== undefined) clearInterval(this.timer);
    if (this.holdTimer !== undefined) clearTimeout(this.holdTimer);
    for (const wake of this.slotWaiters.splice(0)) wake();
    await this.pass;
    await Promise.allSettled([...this.running]);
    this.unsubscribe?.();
    this.deferrals.clear();
    await this.runner.stop();
    this.logger.info({ position: this.position, ...this.stats }, "allocator stopped");
  }

  // --- following the log ------------------------------------------------------------------

  private onCommit(commit: Commit): void {
    if (!this.ready || this.stopping) return;
    for (const event of commit.events) this.apply(event);
    this.runDue(commit.position);
    if (this.queue.size > 0) this.schedulePass();
  }

  private apply(event: DomainEvent): void {
    const view = this.view;
    switch (event.type) {
      case "ComputerRegistered":
      case "SoftwareSupplied":
      case "SoftwareUnsupplied":
      case "SoftwareReleaseStatusReported":
        this.wake(this.capacity.syncComputer(view.computers, event.aggregate.computerId));
        this.hosts = undefined;
        return;
      case "PartitionAllocated": {
        const { computerId, partitionId } = event.aggregate;
        this.settle(event.id);
        this.wake(this.capacity.syncPartition(view.computers, computerId, partitionId));
        this.refresh(event.data.instanceId);
        this.janitor(computerId, partitionId, event);
        this.hostChanged(event.data.instanceId);
        return;
      }
      case "PartitionReleased": {
        const { computerId, partitionId } = event.aggregate;
        this.settle(event.id);
        this.wake(this.capacity.syncPartition(view.computers, computerId, partitionId));
        this.refresh(event.data.instanceId);
        const instance = view.instances.instances[event.data.instanceId];
        if (instance !== undefined) this.wakeTree(instance.treeId);
        this.hostChanged(event.data.instanceId);
        return;
      }
      case "SharedInstanceAttached":
        this.settle(event.id);
        this.hosts = undefined;
        this.refresh(event.aggregate.instanceId);
        return;
      case "InstanceRequested":
        this.refresh(event.aggregate.instanceId);
        return;
      case "InstanceParametersChanged":
      case "InstanceRequestedStateChanged":
      case "ConnectionParametersPublished":
      case "InstanceDestroyed":
        this.refresh(event.aggregate.instanceId);
        this.hostChanged(event.aggregate.instanceId);
        return;
      case "InstanceStatusReported":
      case "InstanceBanged":
        return;
      default: {
        const never: never = event;
        this.logger.warn({ type: (never as DomainEvent).type }, "event type not handled by the allocator");
      }
    }
  }

  /** Puts an instance back in the queue if it waits for something, forgets it otherwise. */
  private refresh(instanceId: string): void {
    const instance = this.view.instances.instances[instanceId];
    if (instance === undefined || !isPending(instance, this.view)) {
      this.queue.delete(instanceId);
      this.unwait(instanceId);
      this.reasons.delete(instanceId);
      this.eligibleAt.delete(instanceId);
      this.standby.delete(instanceId);
      return;
    }
    if (this.busy.has(instanceId)) return;
    this.unwait(instanceId);
    this.enqueue(instanceId);
  }

  /** Queues an instance after a live event: a standby replica lets the others try first. */
  private enqueue(instanceId: string): void {
    if (this.standbyDelayMs > 0 && !this.eligibleAt.has(instanceId)) this.eligibleAt.set(instanceId, Date.now() + this.standbyDelayMs);
    this.queue.add(instanceId);
  }

  /** Capacity grew for these releases: the instances waiting for them are tried again. */
  private wake(releases: readonly string[]): void {
    if (releases.length === 0) return;
    this.epoch++;
    for (const url of releases) this.requeueWaiting(`p:${url}`);
  }

  /**
   * Something that can make an instance a ready host, or not, happened to it: the host index
   * is stale, and if it is ready now, the shared instances waiting for its release try again.
   */
  private hostChanged(instanceId: string): void {
    const instance = this.view.instances.instances[instanceId];
    if (instance === undefined || instance.shared) return;
    this.hosts = undefined;
    if (hostUnreadiness(instance, instance, this.view) === null) this.requeueWaiting(`s:${instance.releaseUrl}`);
  }

  /** An instance of the tree left its partition: a `unique_by_network` sibling may fit now. */
  private wakeTree(treeId: string): void {
    for (const id of this.view.instances.trees[treeId]?.instanceIds ?? []) {
      if (this.waitKeyOf.has(id)) {
        this.unwait(id);
        this.enqueue(id);
      }
    }
  }

  private requeueWaiting(key: string): void {
    const ids = this.waiting.get(key);
    if (ids === undefined) return;
    this.waiting.delete(key);
    for (const id of ids) {
      this.waitKeyOf.delete(id);
      this.enqueue(id);
    }
  }

  private unwait(instanceId: string): void {
    const key = this.waitKeyOf.get(instanceId);
    if (key === undefined) return;
    this.waitKeyOf.delete(instanceId);
    const ids = this.waiting.get(key);
    ids?.delete(instanceId);
    if (ids?.size === 0) this.waiting.delete(key);
  }

  private runDue(position: number): void {
    if (this.deferrals.size === 0) return;
    for (const run of this.deferrals.due(position, Date.now())) run();
  }

  private tick(): void {
    if (this.stopping) return;
    this.runDue(this.position);
    if (this.queue.size > 0) this.schedulePass();
  }

  // --- allocation passes ------------------------------------------------------------------

  private schedulePass(): void {
    if (this.passScheduled || this.stopping || !this.ready) return;
    const hold = this.holdUntil - Date.now();
    if (hold > 0) {
      this.holdTimer ??= setTimeout(() => {
        this.holdTimer = undefined;
        this.schedulePass();
      }, hold);
      return;
    }
    this.passScheduled = true;
    setImmediate(() => {
      this.passScheduled = false;
      if (this.pass !== undefined || this.stopping) return;
      this.pass = this.runPass()
        .catch((error: unknown) => this.logger.error({ err: error }, "allocation pass failed; the next commit or tick retries"))
        .finally(() => {
          this.pass = undefined;
          if (this.queue.size > 0) this.schedulePass();
        });
    });
  }

  /**
   * Considers every queued instance once, starting at this replica's point of the queue
   * (rotation 0: the oldest), until the queue is empty. A rejection for an instance without SLA
   * is reused for the other ones of the same release in the same capacity epoch.
   */
  private async runPass(): Promise<void> {
    const noFit = new Map<string, { epoch: number; rejection: Extract<Placement, { ok: false }> }>();
    let sinceYield = 0;
    while (this.queue.size > 0 && !this.stopping) {
      const ids = [...this.queue];
      const start = ringOffset(this.rotation, ids.length);
      for (let k = 0; k < ids.length && !this.stopping; k++) {
        const id = ids[(start + k) % ids.length]!;
        if (!this.queue.delete(id)) continue;
        try {
          this.consider(id, noFit);
        } catch (error) {
          // A bug, not a store failure: keep the instance, say so, try again later.
          this.logger.error({ err: error, instanceId: id }, `placement failed; trying again in ${REFUSED_RETRY_MS} ms`);
          this.setAside(id, Date.now() + REFUSED_RETRY_MS);
        }
        if (this.appending >= this.maxInFlight) {
          await this.freeSlot();
          sinceYield = 0;
        } else if (++sinceYield >= YIELD_EVERY) {
          await yieldToLoop();
          sinceYield = 0;
        }
      }
    }
  }

  private consider(instanceId: string, noFit: Map<string, { epoch: number; rejection: Extract<Placement, { ok: false }> }>): void {
    const view = this.view;
    const instance = view.instances.instances[instanceId];
    if (instance === undefined || !isPending(instance, view)) return this.refresh(instanceId);
    if (this.busy.has(instanceId)) return;
    const eligibleAt = this.eligibleAt.get(instanceId);
    if (eligibleAt !== undefined) {
      if (eligibleAt > Date.now()) return this.setAside(instanceId, eligibleAt);
      this.eligibleAt.delete(instanceId);
    }
    if (instance.shared) {
      this.hosts ??= HostIndex.fromView(view);
      const attachment = attachHost(instance, view, { hosts: this.hosts });
      if (attachment.ok) this.attach(instance, attachment);
      else this.wait(instance, attachment);
      return;
    }
    const plain = Object.keys(instance.sla).length === 0;
    const known = plain ? noFit.get(instance.releaseUrl) : undefined;
    if (known !== undefined && known.epoch === this.epoch) return this.wait(instance, known.rejection);
    const placement = place(instance, view, { capacity: this.capacity, rotation: this.rotation });
    if (placement.ok) return this.claim(instance, placement);
    if (plain) noFit.set(instance.releaseUrl, { epoch: this.epoch, rejection: placement });
    this.wait(instance, placement);
  }

  /** Leaves a fresh instance to the other replicas until `eligibleAt`, then queues it (if it still waits). */
  private setAside(instanceId: string, eligibleAt: number): void {
    if (this.standby.has(instanceId)) return;
    this.standby.add(instanceId);
    this.deferrals.add(Number.POSITIVE_INFINITY, eligibleAt, () => {
      if (!this.standby.delete(instanceId)) return;
      this.queue.add(instanceId);
      this.schedulePass();
    });
  }

  private wait(instance: InstanceView, rejection: { reason: PendingReason; detail: string }): void {
    const key = `${instance.shared ? "s" : "p"}:${instance.releaseUrl}`;
    this.unwait(instance.instanceId);
    let ids = this.waiting.get(key);
    if (ids === undefined) this.waiting.set(key, (ids = new Set()));
    ids.add(instance.instanceId);
    this.waitKeyOf.set(instance.instanceId, key);
    const previous = this.reasons.get(instance.instanceId);
    if (previous?.reason === rejection.reason && previous.detail === rejection.detail) return;
    this.reasons.set(instance.instanceId, { reason: rejection.reason, detail: rejection.detail, since: new Date().toISOString() });
    this.logger.debug(
      { instanceId: instance.instanceId, correlationId: instance.correlationId, reason: rejection.reason, detail: rejection.detail },
      "instance pending",
    );
  }

  private claim(instance: InstanceView, placement: Extract<Placement, { ok: true }>): void {
    const { computerId, partitionId } = placement;
    const event = partitionAllocatedEvent(instance, placement, this.meta());
    const streamKey = streamKeyOf(event.aggregate);
    this.capacity.reserve({ instanceId: instance.instanceId, treeId: instance.treeId, computerId, partitionId });
    this.busy.add(instance.instanceId);
    this.unwait(instance.instanceId);
    this.reasons.delete(instance.instanceId);
    this.launch({
      kind: "place",
      instance,
      computerId,
      partitionId,
      event,
      streamKey,
      expectedVersion: this.expected(streamKey, placement.version),
      fields: { instanceId: instance.instanceId, correlationId: instance.correlationId, computerId, partitionId, eventId: event.id },
    });
  }

  private attach(instance: InstanceView, attachment: Extract<Attachment, { ok: true }>): void {
    const host = { instanceId: attachment.hostInstanceId, treeId: attachment.hostTreeId };
    const event = sharedInstanceAttachedEvent(instance, host, this.meta());
    const streamKey = streamKeyOf(event.aggregate);
    this.hosts?.noteAttached(host.instanceId);
    this.busy.add(instance.instanceId);
    this.unwait(instance.instanceId);
    this.reasons.delete(instance.instanceId);
    this.launch({
      kind: "attach",
      instance,
      hostInstanceId: host.instanceId,
      event,
      streamKey,
      expectedVersion: this.expected(streamKey, attachment.version),
      fields: { instanceId: instance.instanceId, correlationId: instance.correlationId, hostInstanceId: host.instanceId, eventId: event.id },
    });
  }

  /**
   * Releases the superseded claim on a partition, if it has one and no release of ours is in
   * flight (a standby replica first leaves it to the others for its standby delay).
   */
  private janitor(computerId: string, partitionId: string, cause?: DomainEvent, now = false): void {
    if (this.stopping) return;
    const partition = this.view.computers.computers[computerId]?.partitions[partitionId];
    const claim = partition?.supersededClaim;
    if (partition === undefined || claim === null || claim === undefined) return;
    const streamKey = streamKeyOf({ kind: "partition", computerId, partitionId });
    if (this.releasing.has(streamKey)) return;
    if (!now && this.standbyDelayMs > 0) {
      if (this.janitorLater.has(streamKey)) return;
      this.janitorLater.add(streamKey);
      this.deferrals.add(Number.POSITIVE_INFINITY, Date.now() + this.standbyDelayMs, () => {
        this.janitorLater.delete(streamKey);
        this.janitor(computerId, partitionId, cause, true);
      });
      return;
    }
    const meta = this.meta();
    const instance = this.view.instances.instances[claim.instanceId];
    const story =
      instance !== undefined
        ? { correlationId: instance.correlationId, causationId: cause?.id ?? instance.requestEventId }
        : cause !== undefined
          ? { correlationId: cause.correlationId, causationId: cause.id }
          : { correlationId: meta.id, causationId: meta.id };
    const event = supersededReleasedEvent({ computerId, partitionId, instanceId: claim.instanceId }, story, meta);
    this.releasing.add(streamKey);
    this.launch({
      kind: "release",
      instanceId: claim.instanceId,
      computerId,
      partitionId,
      event,
      streamKey,
      expectedVersion: this.expected(streamKey, partition.version),
      fields: { instanceId: claim.instanceId, correlationId: story.correlationId, computerId, partitionId, eventId: event.id },
    });
  }

  // --- appending --------------------------------------------------------------------------

  private launch(attempt: Attempt): void {
    this.attempts.set(attempt.event.id, attempt);
    this.appending++;
    const run = this.execute(attempt).finally(() => {
      this.appending--;
      this.running.delete(run);
      this.slotWaiters.shift()?.();
    });
    this.running.add(run);
  }

  private freeSlot(): Promise<void> {
    if (this.appending < this.maxInFlight || this.stopping) return Promise.resolve();
    return new Promise((resolve) => this.slotWaiters.push(resolve));
  }

  private async execute(attempt: Attempt): Promise<void> {
    for (let tries = 1; ; tries++) {
      try {
        const result = await this.store.append([attempt.event], { expectedVersion: attempt.expectedVersion });
        this.appended(attempt, result.position, result.duplicate);
        return;
      } catch (error) {
        if (error instanceof WrongExpectedVersionError) return this.conflicted(attempt, error);
        const retryable = error instanceof EventStoreError && error.retryable;
        if (retryable) this.stats.storeErrors++;
        if (!retryable || tries >= APPEND_TRIES || this.stopping) return this.failed(attempt, error, retryable);
        this.logger.warn({ ...attempt.fields, err: error, tries }, "append failed; retrying the same commit");
        await this.pause(BACKOFF_MS[Math.min(tries - 1, BACKOFF_MS.length - 1)]!);
        if (this.stopping) return;
      }
    }
  }

  /** The append is stored; the attempt settles when the read model shows it (usually already has). */
  private appended(attempt: Attempt, position: number, duplicate: boolean): void {
    this.conflicts.delete(attempt.streamKey);
    if (!this.attempts.has(attempt.event.id)) return;
    if (this.logger.isLevelEnabled("debug")) this.logger.debug({ ...attempt.fields, position, duplicate }, `${attempt.kind} appended`);
    this.deferrals.add(position, Date.now() + UNCERTAIN_MS, () => {
      if (!this.attempts.has(attempt.event.id)) return;
      this.logger.warn({ ...attempt.fields, position, seen: this.position }, "appended event not seen by the read model; settling it anyway");
      this.settle(attempt.event.id);
    });
  }

  /** Someone else changed the stream first: drop the attempt, retry once the read model has caught up. */
  private conflicted(attempt: Attempt, error: WrongExpectedVersionError): void {
    if (!this.attempts.has(attempt.event.id)) return;
    this.stats.conflicts++;
    const inARow = (this.conflicts.get(attempt.streamKey) ?? 0) + 1;
    this.conflicts.set(attempt.streamKey, inARow);
    this.logger.debug(
      { ...attempt.fields, expected: error.expected, actual: error.actual, inARow },
      attempt.kind === "release" ? "release lost: the partition changed" : `${attempt.kind} lost: the stream changed (another writer came first); retrying after catch-up`,
    );
    // The partition stays reserved until the read model shows what took it.
    const until = error.actual ?? this.position + 1;
    this.deferrals.add(until, Date.now() + this.conflictRetryMs, () => {
      void this.afterConflict(attempt, error.actual, inARow);
    });
  }

  private async afterConflict(attempt: Attempt, actual: number | undefined, inARow: number): Promise<void> {
    const shown = this.streamVersion(attempt);
    if (actual !== undefined && shown < actual && this.position >= actual) {
      this.override(attempt, actual, "the read model skipped a commit of this stream");
    } else if (inARow >= 2) {
      try {
        const { version } = await this.store.readStream(attempt.streamKey);
        if (version > this.streamVersion(attempt)) this.override(attempt, version, "repeated conflicts");
      } catch (error) {
        this.logger.warn({ ...attempt.fields, err: error }, "cannot read the stream's version; retrying later");
      }
    }
    this.retry(attempt);
  }

  /** The store failed (or refused the event): drop the attempt once its outcome is known, and retry. */
  private failed(attempt: Attempt, error: unknown, retryable: boolean): void {
    if (!this.attempts.has(attempt.event.id)) return;
    if (this.stopping) return;
    if (!retryable) {
      this.logger.error({ ...attempt.fields, err: error }, `${attempt.kind} refused by the store; trying again in ${REFUSED_RETRY_MS} ms`);
      this.deferrals.add(Number.POSITIVE_INFINITY, Date.now() + REFUSED_RETRY_MS, () => this.retry(attempt));
      return;
    }
    // The commit may or may not be stored: the read model decides once it reaches the log's head.
    this.logger.warn({ ...attempt.fields, err: error }, `${attempt.kind} failed after ${APPEND_TRIES} tries; the read model will tell whether it was stored`);
    void this.store.head().then(
      (head) => this.deferrals.add(head, Date.now() + UNCERTAIN_MS, () => this.retry(attempt)),
      () => this.deferrals.add(Number.POSITIVE_INFINITY, Date.now() + UNCERTAIN_MS, () => this.retry(attempt)),
    );
  }

  /** Drops an attempt that is not in the read model and considers its subject again. */
  private retry(attempt: Attempt): void {
    if (!this.attempts.delete(attempt.event.id) || this.stopping) return;
    switch (attempt.kind) {
      case "place":
        this.wake(this.capacity.unreserve(this.view.computers, attempt.computerId, attempt.partitionId));
        this.busy.delete(attempt.instance.instanceId);
        this.refresh(attempt.instance.instanceId);
        break;
      case "attach":
        this.busy.delete(attempt.instance.instanceId);
        this.hosts = undefined;
        this.refresh(attempt.instance.instanceId);
        break;
      case "release":
        this.releasing.delete(attempt.streamKey);
        this.janitor(attempt.computerId, attempt.partitionId);
        break;
    }
    if (this.queue.size > 0) this.schedulePass();
  }

  /** The read model shows an event of ours: the attempt is over. */
  private settle(eventId: string): void {
    const attempt = this.attempts.get(eventId);
    if (attempt === undefined) return;
    this.attempts.delete(eventId);
    const view = this.view;
    switch (attempt.kind) {
      case "place": {
        const { instanceId } = attempt.instance;
        this.wake(this.capacity.unreserve(view.computers, attempt.computerId, attempt.partitionId));
        this.busy.delete(instanceId);
        const binding = view.computers.bindings[instanceId];
        if (binding?.computerId === attempt.computerId && binding.partitionId === attempt.partitionId) {
          this.stats.placed++;
          this.logger.info(attempt.fields, "instance placed");
        } else {
          this.logger.info(
            { ...attempt.fields, boundTo: binding ?? null },
            "claim superseded: another allocator bound the instance first; the claim will be released",
          );
        }
        this.refresh(instanceId);
        return;
      }
      case "attach": {
        const { instanceId } = attempt.instance;
        this.busy.delete(instanceId);
        if (view.instances.instances[instanceId]?.host?.instanceId === attempt.hostInstanceId) {
          this.stats.attached++;
          this.logger.info(attempt.fields, "shared instance attached");
        }
        this.refresh(instanceId);
        return;
      }
      case "release":
        this.releasing.delete(attempt.streamKey);
        this.stats.released++;
        this.logger.info(attempt.fields, "superseded claim released");
        return;
    }
  }

  // --- helpers ----------------------------------------------------------------------------

  /**
   * The expected version of an append decided on a view where the stream is at `shown`. A
   * version learnt from the store is used only once the view has folded every commit up to it:
   * then the commits between `shown` and it were all malformed (skipped by every reader) and
   * the view's state of the stream is exact; before that, a valid commit may still be on its
   * way and the decision could be stale.
   */
  private expected(streamKey: string, shown: number): number {
    const known = this.overrides.get(streamKey);
    if (known === undefined) return shown;
    if (shown >= known) {
      this.overrides.delete(streamKey);
      return shown;
    }
    return this.position >= known ? known : shown;
  }

  private override(attempt: Attempt, version: number, why: string): void {
    this.overrides.set(attempt.streamKey, version);
    this.logger.warn({ ...attempt.fields, streamKey: attempt.streamKey, version, why }, "using the stream version read from the store");
  }

  private streamVersion(attempt: Attempt): number {
    if (attempt.kind === "attach") return this.view.instances.instances[attempt.instance.instanceId]?.version ?? 0;
    return this.view.computers.computers[attempt.computerId]?.partitions[attempt.partitionId]?.version ?? 0;
  }

  private meta(): EventMeta {
    return { id: this.nextId(), time: new Date().toISOString() };
  }

  private async pause(ms: number): Promise<void> {
    try {
      await sleep(ms, undefined, { signal: this.abort.signal });
    } catch {
      // aborted by stop()
    }
  }
}
