import { setImmediate as yieldToLoop } from "node:timers/promises";
import { streamKeyOf, type CheckpointStore, type CloudView, type Commit, type DomainEvent, type EventStore, type InstanceView } from "@slap/events";
import type { Logger } from "pino";
import { monotonicFactory } from "ulid";
import {
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
  type Placement,
} from "@slap/placement";
import { ClaimAppender, REFUSED_RETRY_MS, type Attempt } from "./claim-appender.js";
import { StoreClaimWriter, type ClaimWriter } from "./claim-writer.js";
import { Deferrals } from "./deferrals.js";
import { PassScheduler } from "./passes.js";
import { PendingSet, type PendingInfo } from "./pending.js";
import { AllocatorReadModel } from "./read-model.js";

export type { PendingInfo } from "./pending.js";

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
  /**
   * Where claims go (default: a `StoreClaimWriter` over `store`). A test passes a
   * `ClaimWriterHarness` to refuse or fail claims on demand.
   */
  writer?: ClaimWriter;
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

const DEFAULT_MAX_IN_FLIGHT = 128;
const DEFAULT_CONFLICT_RETRY_MS = 1_000;
const DEFAULT_STANDBY_MS = 100;
const TICK_MS = 50;
/** Pending instances considered between two yields to the event loop. */
const YIELD_EVERY = 1_000;

type NoFit = Map<string, { epoch: number; rejection: Extract<Placement, { ok: false }> }>;

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
 * The jobs are apart: the read model and its indexes (`AllocatorReadModel`), who waits for
 * what (`PendingSet`), writing claims (`ClaimAppender` through a `ClaimWriter`: the allocator
 * proposes, the writer disposes), and work deferred to a log position or a deadline
 * (`Deferrals`), and running one allocation pass at a time (`PassScheduler`). This class decides
 * and routes between them.
 *
 * Correctness never rests on this replica's memory: the expected versions and the read
 * models' first-claim rule guarantee that no partition holds two instances and no instance is
 * bound twice, whatever replicas run; the memory only avoids wasted appends.
 */
export class Allocator {
  readonly replica: string;
  readonly rotation: number;
  readonly stats: AllocatorStats = { placed: 0, attached: 0, released: 0, conflicts: 0, storeErrors: 0 };

  private readonly logger: Logger;
  private readonly model: AllocatorReadModel;
  private readonly pending: PendingSet;
  private readonly claims: ClaimAppender;
  private readonly deferrals = new Deferrals();
  /** How long fresh work waits before this replica considers it (0 for rotation 0). */
  private readonly standbyDelayMs: number;
  private readonly nextId = monotonicFactory();

  /** Instances with a claim in flight or a retry scheduled: not considered meanwhile. */
  private readonly busy = new Set<string>();
  /** Partition stream keys with a janitor release in flight. */
  private readonly releasing = new Set<string>();
  /** Partition stream keys with a janitor release scheduled after the standby delay. */
  private readonly janitorLater = new Set<string>();
  private readonly passes: PassScheduler;
  private ready = false;
  private stopping = false;
  private started = false;
  private timer: NodeJS.Timeout | undefined;

  constructor(options: AllocatorOptions) {
    this.replica = options.replica ?? "allocator";
    this.rotation = options.rotation ?? rotationOf(options.replica);
    this.logger = options.logger.child({ component: "allocator", replica: this.replica });
    this.standbyDelayMs = this.rotation === 0 ? 0 : (options.standbyMs ?? DEFAULT_STANDBY_MS) * Math.min(this.rotation, 5);
    this.model = new AllocatorReadModel(options.store, this.logger, options.checkpoints);
    this.pending = new PendingSet({
      logger: this.logger,
      standbyDelayMs: this.standbyDelayMs,
      deferrals: this.deferrals,
      onQueued: () => this.schedulePass(),
    });
    this.passes = new PassScheduler({ run: () => this.runPass(), pending: () => this.pending.size > 0, logger: this.logger });
    this.claims = new ClaimAppender({
      writer: options.writer ?? new StoreClaimWriter(options.store),
      logger: this.logger,
      maxInFlight: options.maxInFlight ?? DEFAULT_MAX_IN_FLIGHT,
      conflictRetryMs: options.conflictRetryMs ?? DEFAULT_CONFLICT_RETRY_MS,
      deferrals: this.deferrals,
      stats: this.stats,
      position: () => this.position,
      shownVersion: (attempt) => this.streamVersion(attempt),
      settle: (eventId) => this.settle(eventId),
      retry: (attempt) => this.retry(attempt),
    });
  }

  /** The read model this replica decides on. Read-only. */
  get view(): CloudView {
    return this.model.view;
  }

  /** The last log position folded into the view. */
  get position(): number {
    return this.model.position;
  }

  /** Resolves once the view includes `position`. */
  waitFor(position: number): Promise<void> {
    return this.model.waitFor(position);
  }

  /** Why an instance waits, as last found by this replica; undefined when it does not wait (or was not tried yet). */
  pendingReason(instanceId: string): PendingInfo | undefined {
    return this.pending.reason(instanceId);
  }

  /** Every waiting instance with its reason. */
  pendingReasons(): ReadonlyMap<string, PendingInfo> {
    return this.pending.allReasons();
  }

  /** Catches up with the log, then places what waits and keeps following. */
  async start(): Promise<void> {
    if (this.started) throw new Error("allocator already started");
    this.started = true;
    await this.model.start((commit) => this.onCommit(commit));
    // Synchronous from here to the end: every commit folded so far is in the state read below,
    // and every later one reaches onCommit.
    const view = this.view;
    for (const instance of Object.values(view.instances.instances)) {
      if (isPending(instance, view)) this.pending.add(instance.instanceId);
    }
    for (const computer of Object.values(view.computers.computers)) {
      for (const partition of Object.values(computer.partitions)) {
        if (partition.supersededClaim !== null) this.janitor(computer.computerId, partition.partitionId);
      }
    }
    this.ready = true;
    this.passes.open(this.standbyDelayMs);
    this.timer = setInterval(() => this.tick(), TICK_MS);
    this.timer.unref();
    this.logger.info(
      { position: this.position, rotation: this.rotation, pending: this.pending.size, computers: Object.keys(view.computers.computers).length },
      "allocator started",
    );
    this.schedulePass();
  }

  /** Stops placing, waits for the appends in flight, and stops following the log. Does not close the store. */
  async stop(): Promise<void> {
    if (!this.started || this.stopping) return;
    this.stopping = true;
    this.claims.stop();
    if (this.timer !== undefined) clearInterval(this.timer);
    await this.passes.close();
    await this.claims.drain();
    this.deferrals.clear();
    await this.model.stop();
    this.logger.info({ position: this.position, ...this.stats }, "allocator stopped");
  }

  // --- following the log ------------------------------------------------------------------

  private onCommit(commit: Commit): void {
    if (!this.ready || this.stopping) return;
    for (const event of commit.events) this.apply(event);
    this.runDue(commit.position);
    if (this.pending.size > 0) this.schedulePass();
  }

  private apply(event: DomainEvent): void {
    switch (event.type) {
      case "ComputerRegistered":
      case "SoftwareSupplied":
      case "SoftwareUnsupplied":
      case "SoftwareReleaseStatusReported":
        this.pending.wakeForCapacity(this.model.syncComputer(event.aggregate.computerId));
        this.model.hostsChanged();
        return;
      case "PartitionAllocated": {
        const { computerId, partitionId } = event.aggregate;
        this.settle(event.id);
        this.pending.wakeForCapacity(this.model.syncPartition(computerId, partitionId));
        this.refresh(event.data.instanceId);
        this.janitor(computerId, partitionId, event);
        this.hostChanged(event.data.instanceId);
        return;
      }
      case "PartitionReleased": {
        const { computerId, partitionId } = event.aggregate;
        this.settle(event.id);
        this.pending.wakeForCapacity(this.model.syncPartition(computerId, partitionId));
        this.refresh(event.data.instanceId);
        const instance = this.view.instances.instances[event.data.instanceId];
        // An instance of the tree left its partition: a `unique_by_network` sibling may fit now.
        if (instance !== undefined) this.pending.wakeAny(this.view.instances.trees[instance.treeId]?.instanceIds ?? []);
        this.hostChanged(event.data.instanceId);
        return;
      }
      case "SharedInstanceAttached":
        this.settle(event.id);
        this.model.hostsChanged();
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
      case "ComputerBanged":
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
      this.pending.forget(instanceId);
      return;
    }
    if (this.busy.has(instanceId)) return;
    this.pending.unwait(instanceId);
    this.pending.enqueue(instanceId);
  }

  /**
   * Something that can make an instance a ready host, or not, happened to it: the host index
   * is stale, and if it is ready now, the shared instances waiting for its release try again.
   */
  private hostChanged(instanceId: string): void {
    const instance = this.view.instances.instances[instanceId];
    if (instance === undefined || instance.shared) return;
    this.model.hostsChanged();
    if (hostUnreadiness(instance, instance, this.view) === null) this.pending.wakeForHost(instance.releaseUrl);
  }

  private runDue(position: number): void {
    if (this.deferrals.size === 0) return;
    for (const run of this.deferrals.due(position, Date.now())) run();
  }

  private tick(): void {
    if (this.stopping) return;
    this.runDue(this.position);
    if (this.pending.size > 0) this.schedulePass();
  }

  // --- allocation passes ------------------------------------------------------------------

  private schedulePass(): void {
    if (this.stopping || !this.ready) return;
    this.passes.request();
  }

  /**
   * Considers every queued instance once, starting at this replica's point of the queue
   * (rotation 0: the oldest), until the queue is empty. A rejection for an instance without SLA
   * is reused for the other ones of the same release in the same capacity epoch.
   */
  private async runPass(): Promise<void> {
    const noFit: NoFit = new Map();
    let sinceYield = 0;
    while (this.pending.size > 0 && !this.stopping) {
      const ids = this.pending.queued();
      const start = ringOffset(this.rotation, ids.length);
      for (let k = 0; k < ids.length && !this.stopping; k++) {
        const id = ids[(start + k) % ids.length]!;
        if (!this.pending.take(id)) continue;
        try {
          this.consider(id, noFit);
        } catch (error) {
          // A bug, not a store failure: keep the instance, say so, try again later.
          this.logger.error({ err: error, instanceId: id }, `placement failed; trying again in ${REFUSED_RETRY_MS} ms`);
          this.pending.setAside(id, Date.now() + REFUSED_RETRY_MS);
        }
        if (this.claims.full) {
          await this.claims.freeSlot();
          sinceYield = 0;
        } else if (++sinceYield >= YIELD_EVERY) {
          await yieldToLoop();
          sinceYield = 0;
        }
      }
    }
  }

  private consider(instanceId: string, noFit: NoFit): void {
    const view = this.view;
    const instance = view.instances.instances[instanceId];
    if (instance === undefined || !isPending(instance, view)) return this.refresh(instanceId);
    if (this.busy.has(instanceId)) return;
    if (!this.pending.eligible(instanceId, Date.now())) return;
    if (instance.shared) {
      const attachment = attachHost(instance, view, { hosts: this.model.hosts() });
      if (attachment.ok) this.attach(instance, attachment);
      else this.pending.wait(instance, attachment);
      return;
    }
    const plain = Object.keys(instance.sla).length === 0;
    const known = plain ? noFit.get(instance.releaseUrl) : undefined;
    if (known !== undefined && known.epoch === this.model.epoch) return this.pending.wait(instance, known.rejection);
    const placement = place(instance, view, { capacity: this.model.capacity, rotation: this.rotation });
    if (placement.ok) return this.claim(instance, placement);
    if (plain) noFit.set(instance.releaseUrl, { epoch: this.model.epoch, rejection: placement });
    this.pending.wait(instance, placement);
  }

  private claim(instance: InstanceView, placement: Extract<Placement, { ok: true }>): void {
    const { computerId, partitionId } = placement;
    const event = partitionAllocatedEvent(instance, placement, this.meta());
    const streamKey = streamKeyOf(event.aggregate);
    this.model.reserve({ instanceId: instance.instanceId, treeId: instance.treeId, computerId, partitionId });
    this.busy.add(instance.instanceId);
    this.pending.claimed(instance.instanceId);
    this.claims.launch({
      kind: "place",
      instance,
      computerId,
      partitionId,
      event,
      streamKey,
      expectedVersion: this.claims.expected(streamKey, placement.version),
      fields: { instanceId: instance.instanceId, correlationId: instance.correlationId, computerId, partitionId, eventId: event.id },
    });
  }

  private attach(instance: InstanceView, attachment: Extract<Attachment, { ok: true }>): void {
    const host = { instanceId: attachment.hostInstanceId, treeId: attachment.hostTreeId };
    const event = sharedInstanceAttachedEvent(instance, host, this.meta());
    const streamKey = streamKeyOf(event.aggregate);
    this.model.noteAttached(host.instanceId);
    this.busy.add(instance.instanceId);
    this.pending.claimed(instance.instanceId);
    this.claims.launch({
      kind: "attach",
      instance,
      hostInstanceId: host.instanceId,
      event,
      streamKey,
      expectedVersion: this.claims.expected(streamKey, attachment.version),
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
    this.claims.launch({
      kind: "release",
      instanceId: claim.instanceId,
      computerId,
      partitionId,
      event,
      streamKey,
      expectedVersion: this.claims.expected(streamKey, partition.version),
      fields: { instanceId: claim.instanceId, correlationId: story.correlationId, computerId, partitionId, eventId: event.id },
    });
  }

  // --- the outcome of claims -------------------------------------------------------------

  /** A claim was dropped (lost a race, not stored): its subject is considered again. */
  private retry(attempt: Attempt): void {
    switch (attempt.kind) {
      case "place":
        this.pending.wakeForCapacity(this.model.unreserve(attempt.computerId, attempt.partitionId));
        this.busy.delete(attempt.instance.instanceId);
        this.refresh(attempt.instance.instanceId);
        break;
      case "attach":
        this.busy.delete(attempt.instance.instanceId);
        this.model.hostsChanged();
        this.refresh(attempt.instance.instanceId);
        break;
      case "release":
        this.releasing.delete(attempt.streamKey);
        this.janitor(attempt.computerId, attempt.partitionId);
        break;
    }
    if (this.pending.size > 0) this.schedulePass();
  }

  /** The read model shows an event of ours: the attempt is over. */
  private settle(eventId: string): void {
    const attempt = this.claims.take(eventId);
    if (attempt === undefined) return;
    const view = this.view;
    switch (attempt.kind) {
      case "place": {
        const { instanceId } = attempt.instance;
        this.pending.wakeForCapacity(this.model.unreserve(attempt.computerId, attempt.partitionId));
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

  /** The version of the attempt's stream as the read model shows it. */
  private streamVersion(attempt: Attempt): number {
    if (attempt.kind === "attach") return this.view.instances.instances[attempt.instance.instanceId]?.version ?? 0;
    return this.view.computers.computers[attempt.computerId]?.partitions[attempt.partitionId]?.version ?? 0;
  }

  private meta(): EventMeta {
    return { id: this.nextId(), time: new Date().toISOString() };
  }
}
