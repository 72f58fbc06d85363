/**
 * What one caller may take of the master (README, "Guarantees and failures", "Limits"): how much
 * it writes to the log, and how many requests it holds open (event streams, watches).
 * Pure: the time is given. Callers are counted by who they are (a user, a node with its
 * partitions), not by token: a user's tokens share one budget.
 */
import type { Actor } from "@slap/events";

/** Who a request's limits count against: a user (admin included), or a node with its partitions. */
export function callerOf(actor: Actor): string {
  switch (actor.kind) {
    case "user":
      return `user:${actor.userId}`;
    case "node":
    case "partition":
      return `node:${actor.computerId}`;
    case "service":
      return `service:${actor.name}`;
  }
}

/** The limits, each with its default (`DEFAULT_LIMITS`) and its setting (services/master/src/config.ts). */
export interface LimitSettings {
  /** Bytes of request bodies a caller may write per second, on average… */
  writeBytesPerSecond: number;
  /** …and at once (the bucket's size). */
  writeBytesBurst: number;
  /** Writes (any request but a read) a caller may make per second, on average… */
  writesPerSecond: number;
  /** …and at once. */
  writesBurst: number;
  /** Requests a caller may hold open at once: event streams, instance watches, desired-state watches (a request's own long poll is not one). */
  heldPerCaller: number;
  /** Requests held open at once by everyone. */
  heldTotal: number;
}

export const DEFAULT_LIMITS: LimitSettings = {
  writeBytesPerSecond: 1024 * 1024,
  writeBytesBurst: 16 * 1024 * 1024,
  writesPerSecond: 1_000,
  writesBurst: 5_000,
  heldPerCaller: 64,
  heldTotal: 4_096,
};

/** A refusal: which limit, in words for the 429's message, and when trying again may help. */
export interface OverLimit {
  limit: keyof LimitSettings;
  message: string;
  retryAfterS: number;
}

interface Bucket {
  level: number;
  at: number;
}

/** Token buckets of writes (count and bytes) per caller, and the count of held requests. */
export class Limits {
  private readonly bytes = new Map<string, Bucket>();
  private readonly writes = new Map<string, Bucket>();
  private readonly held = new Map<string, number>();
  private heldAll = 0;

  constructor(readonly settings: LimitSettings = DEFAULT_LIMITS) {}

  /** Takes one write of `size` bytes for `caller` at `now` (ms), or says which limit it is over (nothing taken then). */
  write(caller: string, size: number, now: number): OverLimit | undefined {
    const s = this.settings;
    const writes = refill(this.writes, caller, s.writesBurst, s.writesPerSecond, now);
    const bytes = refill(this.bytes, caller, s.writeBytesBurst, s.writeBytesPerSecond, now);
    if (writes.level < 1) return { limit: "writesPerSecond", message: `too many writes: at most ${s.writesPerSecond} a second (bursts of ${s.writesBurst}) per caller`, retryAfterS: wait(1 - writes.level, s.writesPerSecond) };
    if (size > s.writeBytesBurst) return { limit: "writeBytesBurst", message: `a write of ${size} bytes is larger than the ${s.writeBytesBurst} bytes a caller may write at once`, retryAfterS: 0 };
    if (bytes.level < size) {
      return { limit: "writeBytesPerSecond", message: `too many bytes written: at most ${s.writeBytesPerSecond} a second (bursts of ${s.writeBytesBurst}) per caller`, retryAfterS: wait(size - bytes.level, s.writeBytesPerSecond) };
    }
    writes.level -= 1;
    bytes.level -= size;
    return undefined;
  }

  /** Holds one more request open for `caller`, or says which limit it is over; the release function must be called once it ends. */
  hold(caller: string): (() => void) | OverLimit {
    const s = this.settings;
    const mine = this.held.get(caller) ?? 0;
    if (mine >= s.heldPerCaller) return { limit: "heldPerCaller", message: `too many open streams and watches: at most ${s.heldPerCaller} per caller (close one first)`, retryAfterS: 1 };
    if (this.heldAll >= s.heldTotal) return { limit: "heldTotal", message: `the master holds its most open streams and watches (${s.heldTotal}): try again shortly`, retryAfterS: 1 };
    this.held.set(caller, mine + 1);
    this.heldAll++;
    let released = false;
    return () => {
      if (released) return;
      released = true;
      this.heldAll--;
      const left = (this.held.get(caller) ?? 1) - 1;
      if (left === 0) this.held.delete(caller);
      else this.held.set(caller, left);
    };
  }

  /** Requests held open now, by everyone (for metrics and tests). */
  get holding(): number {
    return this.heldAll;
  }
}

/** The caller's bucket, filled for the time since it was last seen (full for a new caller). */
function refill(buckets: Map<string, Bucket>, caller: string, size: number, perSecond: number, now: number): Bucket {
  let bucket = buckets.get(caller);
  if (bucket === undefined) {
    bucket = { level: size, at: now };
    buckets.set(caller, bucket);
    return bucket;
  }
  bucket.level = Math.min(size, bucket.level + ((now - bucket.at) / 1_000) * perSecond);
  bucket.at = now;
  return bucket;
}

/** Seconds until `missing` is refilled at `perSecond`, at least one. */
function wait(missing: number, perSecond: number): number {
  return Math.max(1, Math.ceil(missing / perSecond));
}
