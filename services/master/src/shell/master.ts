import {
  ProjectionRunner,
  WrongExpectedVersionError,
  readAsOfBound,
  rebuild,
  rebuildUpTo,
  type Actor,
  type AsOf,
  type Commit,
  type EventStore,
  type InstanceView,
} from "@slap/events";
import { cloudProjection, desiredRevisionOf, desiredStateOf, masterProjection, type CloudView, type DesiredState, type MasterView } from "@slap/events";
import type { Logger } from "pino";
import { monotonicFactory } from "ulid";
import { answerFor, type Answer, type ExplainUnplaced } from "../core/answer.js";
import type { Decision, DecisionContext, Rejection } from "../core/decide.js";
import { livenessOf, type Liveness } from "../core/liveness.js";

/** A command failed for a reason the caller should see (mapped to 403/404/409 by the HTTP layer). */
export class CommandRejected extends Error {
  override name = "CommandRejected";
  constructor(readonly rejection: Rejection) {
    super(rejection.detail);
  }
}

export interface Executed {
  instanceId?: string;
  /** Position of the last event appended, 0 when the command changed nothing. */
  position: number;
}

const MAX_ATTEMPTS = 6;

export interface MasterOptions {
  /** The time of decisions (default: the system clock). Tests pass their own to control event times. */
  clock?: () => Date;
  /** How many as-of read models to keep (default 4; 0: none). Each is a full copy of the read models at its position. */
  asOfCacheSize?: number;
  /**
   * A computer whose node the master has not heard from for longer than this is `unresponsive`
   * (default 30 s: 3 × the nodes' default heartbeat of 10 s).
   */
  staleAfterMs?: number;
}

/** Default of `MasterOptions.staleAfterMs`. */
export const DEFAULT_STALE_AFTER_MS = 30_000;

/** The read models as of a past moment (see `Master.asOf`). */
export interface AsOfRead {
  views: CloudView;
  /** The time asked for; when asked by position, the time of the commit at that position (null at 0). */
  time: string | null;
  /** The last log position folded into `views` (0: none). */
  position: number;
}

/**
 * The master's state and command path: two read models kept up to date from the log, and
 * `execute`, which decides a command against them and appends the result with the versions it
 * was decided against. On a version conflict it waits until the read models have caught up
 * with the log and decides again (bounded), so a stale read model can never write a stale
 * decision.
 */
export class Master {
  /** The computers, instances and desired-state read models, folded by one runner so they are always at the same position. */
  readonly view: ProjectionRunner<MasterView>;
  private readonly newId = monotonicFactory();
  private readonly listeners = new Set<(commit: Commit) => void>();
  /**
   * Long polls by instance id: a commit wakes only the polls of the instances it names, so N
   * pending requests cost O(events) per commit instead of N answers (with their placement
   * explanations) per commit.
   */
  private readonly answerWaiters = new Map<string, Set<() => void>>();
  /**
   * Blocking queries on desired states, by computer id, each with the revision it waits to pass:
   * a commit wakes only the watchers of computers whose desired state it changed (an integer
   * compare per watched computer), and a woken watcher reads the state as it is then.
   */
  private readonly desiredWaiters = new Map<string, Set<{ after: number; wake: () => void }>>();
  private readonly clock: () => Date;
  private readonly asOfCacheSize: number;
  /**
   * Recent as-of read models by bound position, least recently used first. Promises: concurrent
   * reads of one moment share one fold.
   */
  private readonly asOfCache = new Map<number, Promise<{ views: CloudView; position: number; time: string | null }>>();
  /** Folds for as-of reads run one at a time: memory holds at most one fold in progress besides the cache. */
  private asOfQueue: Promise<unknown> = Promise.resolve();
  /** When the master last heard from each computer's node (ms, by the master's clock): in memory only, never an event. */
  private readonly lastSeen = new Map<string, number>();
  /** Since when this master can hear nodes: a node not heard from since is `unknown` for `staleAfterMs`, then `unresponsive`. */
  private startedAt: number;
  readonly staleAfterMs: number;

  constructor(
    readonly store: EventStore,
    private readonly logger: Logger,
    readonly explain: ExplainUnplaced,
    options: MasterOptions = {},
  ) {
    this.clock = options.clock ?? (() => new Date());
    this.asOfCacheSize = options.asOfCacheSize ?? 4;
    this.staleAfterMs = options.staleAfterMs ?? DEFAULT_STALE_AFTER_MS;
    this.startedAt = this.clock().getTime();
    this.view = new ProjectionRunner(store, masterProjection, { logger });
    this.view.onCommit((state, commit) => {
      for (const listener of this.listeners) listener(commit);
      for (const [computerId, waiters] of this.desiredWaiters) {
        const revision = desiredRevisionOf(state, computerId);
        for (const waiter of waiters) if (revision > waiter.after) waiter.wake();
      }
      if (this.answerWaiters.size > 0) {
        for (const instanceId of instancesTouchedBy(commit)) {
          for (const wake of this.answerWaiters.get(instanceId) ?? []) wake();
        }
      }
    });
  }

  async start(): Promise<void> {
    await this.view.start();
    // Catching up with a long log is not time the nodes could have been heard in.
    this.startedAt = this.clock().getTime();
  }

  async stop(): Promise<void> {
    for (const waiters of [...this.desiredWaiters.values()]) for (const waiter of [...waiters]) waiter.wake();
    await this.view.stop();
  }

  get computers(): CloudView["computers"] {
    return this.view.state.computers;
  }

  get instances(): CloudView["instances"] {
    return this.view.state.instances;
  }

  /** The last log position in the read models. */
  get position(): number {
    return this.view.position;
  }

  /** Called after each commit is in the read models. Returns an unsubscribe function. */
  onChange(listener: (commit: Commit) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  context(actor: Actor, correlationId?: string): DecisionContext {
    return {
      actor,
      computers: this.computers,
      instances: this.instances,
      now: this.clock().toISOString(),
      newId: this.newId,
      ...(correlationId === undefined ? {} : { correlationId }),
    };
  }

  /** Decides with `decide` against the current read models and appends; retries on conflicts. */
  async execute(actor: Actor, decide: (ctx: DecisionContext) => Decision): Promise<Executed> {
    for (let attempt = 1; ; attempt++) {
      const decision = decide(this.context(actor));
      if (!decision.ok) throw new CommandRejected(decision);
      let position = 0;
      try {
        for (const append of decision.appends) {
          const result = await this.store.append(append.events, { expectedVersion: append.expectedVersion });
          position = result.position;
          const first = append.events[0]!;
          this.logger.info(
            { type: first.type, eventId: first.id, correlationId: first.correlationId, position, duplicate: result.duplicate, instanceId: decision.instanceId },
            "appended",
          );
        }
      } catch (error) {
        if (!(error instanceof WrongExpectedVersionError) || attempt >= MAX_ATTEMPTS) throw error;
        this.logger.debug({ stream: error.streamKey, attempt }, "version conflict: catching up and deciding again");
        await this.caughtUp();
        continue;
      }
      if (position > 0) await this.settled(position);
      return { ...(decision.instanceId === undefined ? {} : { instanceId: decision.instanceId }), position };
    }
  }

  /** Resolves once the read models include `position` (read-your-writes). */
  async settled(position: number): Promise<void> {
    await this.view.waitFor(position);
  }

  /**
   * Resolves once the read models include `position`, or after `maxWaitMs` (a position beyond the
   * log's head, or a malformed commit there, is never "seen": deciding is safe either way).
   */
  async settledWithin(position: number, maxWaitMs: number): Promise<void> {
    await this.view.waitFor(position, maxWaitMs);
  }

  /**
   * Resolves once the read models have seen the log's current head, or after `maxWaitMs`: a
   * malformed commit at the head is skipped by the read models and never "seen", and deciding
   * again is safe anyway (the appends carry the versions they were decided against).
   */
  async caughtUp(maxWaitMs = 1_000): Promise<void> {
    await this.settledWithin(await this.store.head(), maxWaitMs);
  }

  /**
   * Rebuilds the read models from position 0 up to the position the live ones are at, and
   * compares the two (audit): a difference means a projection is not a pure fold of the log.
   */
  async audit(): Promise<Audit> {
    const position = this.view.position;
    const live = structuredClone(this.view.state);
    const started = performance.now();
    const rebuilt = await rebuild(this.store, masterProjection, { upTo: position, logger: this.logger });
    const rebuildMs = Math.round(performance.now() - started);
    const models = [
      { name: "computers", differences: differences(live.computers, rebuilt.state.computers) },
      { name: "instances", differences: differences(live.instances, rebuilt.state.instances) },
      { name: "desired", differences: differences(live.desired, rebuilt.state.desired) },
    ];
    return { position, rebuiltUpTo: rebuilt.position, rebuildMs, equal: models.every((m) => m.differences.length === 0), models };
  }

  /** A sign of life from a computer's node (its heartbeat, or any call it made with its token). */
  heardFrom(computerId: string): void {
    this.lastSeen.set(computerId, this.clock().getTime());
  }

  /** Whether the node of `computerId` answers, now (see core/liveness.ts). */
  liveness(computerId: string): Liveness {
    return livenessOf(this.lastSeen.get(computerId), { now: this.clock().getTime(), startedAt: this.startedAt, staleAfterMs: this.staleAfterMs });
  }

  instance(instanceId: string): InstanceView | undefined {
    return this.instances.instances[instanceId];
  }

  /** The answer a request for `instance` gets from `views` (default: the live read models). */
  answer(instance: InstanceView, views: CloudView = this.view.state): Answer {
    return answerFor(instance, views, this.explain);
  }

  /**
   * The read models as of a past moment: fresh ones, folded by the same projection from
   * position 0 up to the bound `asOf` names (see `AsOf` in @slap/events: the prefix up to the
   * last commit whose first event's time is at or before the time). Costs a read of the whole
   * log to find a time's bound, then a fold up to the bound, unless the model at that bound is
   * one of the last few kept. Treat the views as read-only: they may be shared between requests.
   */
  async asOf(asOf: AsOf): Promise<AsOfRead> {
    const bound = await readAsOfBound(this.store, asOf);
    let pending = this.asOfCache.get(bound);
    if (pending === undefined) {
      const fold = async () => {
        const started = performance.now();
        const folded = await rebuildUpTo(this.store, cloudProjection, bound, { logger: this.logger });
        this.logger.debug({ asOf, bound, position: folded.position, foldMs: Math.round(performance.now() - started) }, "as-of read models folded");
        return { views: folded.state, position: folded.position, time: folded.time };
      };
      pending = this.asOfQueue.then(fold, fold);
      this.asOfQueue = pending.catch(() => undefined);
      this.asOfCache.set(bound, pending);
      // A failed fold is not kept: the next read tries again.
      void pending.catch(() => this.asOfCache.delete(bound));
      for (const oldest of this.asOfCache.keys()) {
        if (this.asOfCache.size <= Math.max(1, this.asOfCacheSize)) break;
        this.asOfCache.delete(oldest);
      }
    } else {
      this.asOfCache.delete(bound);
      this.asOfCache.set(bound, pending);
    }
    const model = await pending;
    if (this.asOfCacheSize === 0) this.asOfCache.delete(bound);
    return { views: model.views, position: model.position, time: "time" in asOf ? asOf.time : model.time };
  }

  /** A computer's desired state now (undefined: no such computer). */
  desired(computerId: string): DesiredState | undefined {
    return desiredStateOf(this.view.state, computerId, this.position);
  }

  /**
   * A computer's desired state once its revision is past `after`, or as it is after `timeoutMs`
   * (a blocking query, as Nomad's `?index=`): a watcher that fell behind gets the latest state,
   * never the ones between.
   */
  waitForDesired(computerId: string, after: number, timeoutMs: number, signal?: AbortSignal): Promise<DesiredState | undefined> {
    if (timeoutMs <= 0 || signal?.aborted === true || desiredRevisionOf(this.view.state, computerId) > after) return Promise.resolve(this.desired(computerId));
    return new Promise((resolve) => {
      const waiters = this.desiredWaiters.get(computerId) ?? new Set();
      this.desiredWaiters.set(computerId, waiters);
      const waiter = {
        after,
        wake: (): void => {
          clearTimeout(timer);
          signal?.removeEventListener("abort", waiter.wake);
          waiters.delete(waiter);
          if (waiters.size === 0) this.desiredWaiters.delete(computerId);
          resolve(this.desired(computerId));
        },
      };
      waiters.add(waiter);
      // A watcher that went away costs nothing more: its waiter leaves with it.
      signal?.addEventListener("abort", waiter.wake, { once: true });
      const timer = setTimeout(waiter.wake, timeoutMs);
    });
  }

  /**
   * Resolves with the instance's answer once it is no longer pending or after `timeoutMs`
   * (long poll), pushed by the read models: no polling.
   */
  waitForAnswer(instanceId: string, timeoutMs: number): Promise<Answer | undefined> {
    const now = this.instance(instanceId);
    const first = now === undefined ? undefined : this.answer(now);
    if (timeoutMs <= 0 || (first !== undefined && first.status !== "pending")) return Promise.resolve(first);
    return new Promise((resolve) => {
      const waiters = this.answerWaiters.get(instanceId) ?? new Set<() => void>();
      this.answerWaiters.set(instanceId, waiters);
      const unsubscribe = (): void => {
        waiters.delete(wake);
        if (waiters.size === 0) this.answerWaiters.delete(instanceId);
      };
      const done = (answer: Answer | undefined): void => {
        clearTimeout(timer);
        unsubscribe();
        resolve(answer);
      };
      // An answer leaves "pending" only through an event naming the instance (its stream, or its partition's).
      const wake = (): void => {
        const instance = this.instance(instanceId);
        const answer = instance === undefined ? undefined : this.answer(instance);
        if (answer !== undefined && answer.status !== "pending") done(answer);
      };
      waiters.add(wake);
      const timer = setTimeout(() => {
        const instance = this.instance(instanceId);
        done(instance === undefined ? undefined : this.answer(instance));
      }, timeoutMs);
    });
  }
}

/** The instances a commit's events name: the instance streams' own, and those placed or released on a partition. */
function instancesTouchedBy(commit: Commit): Set<string> {
  const ids = new Set<string>();
  for (const event of commit.events) {
    if (event.aggregate.kind === "instance") ids.add(event.aggregate.instanceId);
    if ("instanceId" in event.data && typeof event.data.instanceId === "string") ids.add(event.data.instanceId);
  }
  return ids;
}

export interface Audit {
  /** The live read models' position, and the last position the rebuild folded. */
  position: number;
  rebuiltUpTo: number;
  rebuildMs: number;
  equal: boolean;
  models: Array<{ name: string; differences: Difference[] }>;
}

export interface Difference {
  path: string;
  live: unknown;
  rebuilt: unknown;
}

/** Where two JSON values differ (at most `limit` paths), deepest first reached. */
export function differences(live: unknown, rebuilt: unknown, path = "", out: Difference[] = [], limit = 20): Difference[] {
  if (out.length >= limit) return out;
  if (typeof live === "object" && live !== null && typeof rebuilt === "object" && rebuilt !== null && Array.isArray(live) === Array.isArray(rebuilt)) {
    const keys = new Set([...Object.keys(live), ...Object.keys(rebuilt)]);
    for (const key of keys) {
      differences((live as Record<string, unknown>)[key], (rebuilt as Record<string, unknown>)[key], path === "" ? key : `${path}.${key}`, out, limit);
    }
    return out;
  }
  if (!Object.is(live, rebuilt)) out.push({ path, live: live ?? null, rebuilt: rebuilt ?? null });
  return out;
}
