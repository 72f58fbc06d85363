import type { InstanceView } from "@slap/events";
import type { PendingReason } from "@slap/placement";
import type { Logger } from "pino";
import type { Deferrals } from "./deferrals.js";

/** Why an instance waits, as last found by this replica. */
export interface PendingInfo {
  reason: PendingReason;
  detail: string;
  /** When this reason was first found (ISO-8601). */
  since: string;
}

/**
 * The instances this replica has to decide about: the queue of the next allocation pass, those
 * that did not fit (by what would wake them: capacity for their release, or a ready host), why
 * each waits, and the fresh ones a standby replica leaves to the others for a while.
 */
export class PendingSet {
  /** Instances to consider in the next pass, in arrival order. */
  private readonly queue = new Set<string>();
  /** Instances that did not fit, by what would wake them (`p:` or `s:` + release URL). */
  private readonly waiting = new Map<string, Set<string>>();
  private readonly waitKeyOf = new Map<string, string>();
  private readonly reasons = new Map<string, PendingInfo>();
  /** Fresh instances this standby replica leaves to others until then (epoch ms). */
  private readonly eligibleAt = new Map<string, number>();
  /** Fresh instances set aside until their `eligibleAt`. */
  private readonly standby = new Set<string>();

  constructor(
    private readonly options: {
      logger: Logger;
      /** How long fresh work waits before this replica considers it (0: eager). */
      standbyDelayMs: number;
      deferrals: Deferrals;
      /** An instance set aside is queued again: run a pass. */
      onQueued: () => void;
    },
  ) {}

  /** Instances queued for the next pass. */
  get size(): number {
    return this.queue.size;
  }

  /** The queue as of now, in arrival order. */
  queued(): string[] {
    return [...this.queue];
  }

  /** Takes an instance off the queue; false if it was not queued (any more). */
  take(instanceId: string): boolean {
    return this.queue.delete(instanceId);
  }

  /** Queues an instance found waiting at start (no standby delay: the backlog has its own hold). */
  add(instanceId: string): void {
    this.queue.add(instanceId);
  }

  /** Queues an instance after a live event: a standby replica lets the others try first. */
  enqueue(instanceId: string): void {
    if (this.options.standbyDelayMs > 0 && !this.eligibleAt.has(instanceId)) this.eligibleAt.set(instanceId, Date.now() + this.options.standbyDelayMs);
    this.queue.add(instanceId);
  }

  /** Forgets an instance that no longer waits for anything. */
  forget(instanceId: string): void {
    this.queue.delete(instanceId);
    this.unwait(instanceId);
    this.reasons.delete(instanceId);
    this.eligibleAt.delete(instanceId);
    this.standby.delete(instanceId);
  }

  /** A claim for the instance is in flight: it waits for nothing meanwhile. */
  claimed(instanceId: string): void {
    this.unwait(instanceId);
    this.reasons.delete(instanceId);
  }

  /**
   * Whether a fresh instance may be considered now; if not, it is set aside until it may (then
   * queued again).
   */
  eligible(instanceId: string, now: number): boolean {
    const at = this.eligibleAt.get(instanceId);
    if (at === undefined) return true;
    if (at > now) {
      this.setAside(instanceId, at);
      return false;
    }
    this.eligibleAt.delete(instanceId);
    return true;
  }

  /** Leaves an instance aside until `eligibleAt`, then queues it (if it still waits). */
  setAside(instanceId: string, eligibleAt: number): void {
    if (this.standby.has(instanceId)) return;
    this.standby.add(instanceId);
    this.options.deferrals.add(Number.POSITIVE_INFINITY, eligibleAt, () => {
      if (!this.standby.delete(instanceId)) return;
      this.queue.add(instanceId);
      this.options.onQueued();
    });
  }

  /** The instance did not fit: it waits for capacity for its release (or a ready host), with this reason. */
  wait(instance: InstanceView, rejection: { reason: PendingReason; detail: string }): void {
    const key = `${instance.shared ? "s" : "p"}:${instance.releaseUrl}`;
    this.unwait(instance.instanceId);
    let ids = this.waiting.get(key);
    if (ids === undefined) this.waiting.set(key, (ids = new Set()));
    ids.add(instance.instanceId);
    this.waitKeyOf.set(instance.instanceId, key);
    const previous = this.reasons.get(instance.instanceId);
    if (previous?.reason === rejection.reason && previous.detail === rejection.detail) return;
    this.reasons.set(instance.instanceId, { reason: rejection.reason, detail: rejection.detail, since: new Date().toISOString() });
    this.options.logger.debug(
      { instanceId: instance.instanceId, correlationId: instance.correlationId, reason: rejection.reason, detail: rejection.detail },
      "instance pending",
    );
  }

  /** Takes the instance out of the waiting lists (it is queued or claimed meanwhile). */
  unwait(instanceId: string): void {
    const key = this.waitKeyOf.get(instanceId);
    if (key === undefined) return;
    this.waitKeyOf.delete(instanceId);
    const ids = this.waiting.get(key);
    ids?.delete(instanceId);
    if (ids?.size === 0) this.waiting.delete(key);
  }

  /** Capacity grew for these releases: the instances waiting for it are queued again. */
  wakeForCapacity(releases: readonly string[]): void {
    for (const url of releases) this.requeue(`p:${url}`);
  }

  /** A host of this release became ready: the shared instances waiting for one are queued again. */
  wakeForHost(releaseUrl: string): void {
    this.requeue(`s:${releaseUrl}`);
  }

  /** Queues again those of these instances that wait (e.g. a tree's, when one of it left its partition). */
  wakeAny(instanceIds: readonly string[]): void {
    for (const id of instanceIds) {
      if (this.waitKeyOf.has(id)) {
        this.unwait(id);
        this.enqueue(id);
      }
    }
  }

  reason(instanceId: string): PendingInfo | undefined {
    return this.reasons.get(instanceId);
  }

  allReasons(): ReadonlyMap<string, PendingInfo> {
    return this.reasons;
  }

  private requeue(key: string): void {
    const ids = this.waiting.get(key);
    if (ids === undefined) return;
    this.waiting.delete(key);
    for (const id of ids) {
      this.waitKeyOf.delete(id);
      this.enqueue(id);
    }
  }
}
