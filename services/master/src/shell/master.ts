import { ProjectionRunner, WrongExpectedVersionError, rebuild, type Actor, type Commit, type EventStore, type InstanceView } from "@slap/events";
import { allocatorViewProjection, type AllocatorView } from "@slap/allocator";
import type { Logger } from "pino";
import { monotonicFactory } from "ulid";
import { answerFor, type Answer, type ExplainUnplaced } from "../core/answer.js";
import type { Decision, DecisionContext, Rejection } from "../core/decide.js";

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

/**
 * The master's state and command path: two read models kept up to date from the log, and
 * `execute`, which decides a command against them and appends the result with the versions it
 * was decided against. On a version conflict it waits until the read models have caught up
 * with the log and decides again (bounded), so a stale read model can never write a stale
 * decision.
 */
export class Master {
  /** The computers and instances read models, folded by one runner so they are always at the same position. */
  readonly view: ProjectionRunner<AllocatorView>;
  private readonly newId = monotonicFactory();
  private readonly listeners = new Set<(commit: Commit) => void>();

  constructor(
    readonly store: EventStore,
    private readonly logger: Logger,
    readonly explain: ExplainUnplaced,
  ) {
    this.view = new ProjectionRunner(store, allocatorViewProjection, { logger });
    this.view.onCommit((_state, commit) => {
      for (const listener of this.listeners) listener(commit);
    });
  }

  async start(): Promise<void> {
    await this.view.start();
  }

  async stop(): Promise<void> {
    await this.view.stop();
  }

  get computers(): AllocatorView["computers"] {
    return this.view.state.computers;
  }

  get instances(): AllocatorView["instances"] {
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
      now: new Date().toISOString(),
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
   * Resolves once the read models have seen the log's current head, or after `maxWaitMs`: a
   * malformed commit at the head is skipped by the read models and never "seen", and deciding
   * again is safe anyway (the appends carry the versions they were decided against).
   */
  async caughtUp(maxWaitMs = 1_000): Promise<void> {
    const head = await this.store.head();
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([this.settled(head), new Promise((resolve) => (timer = setTimeout(resolve, maxWaitMs)))]);
    clearTimeout(timer);
  }

  /**
   * Rebuilds the read models from position 0 up to the position the live ones are at, and
   * compares the two (audit): a difference means a projection is not a pure fold of the log.
   */
  async audit(): Promise<Audit> {
    const position = this.view.position;
    const live = structuredClone(this.view.state);
    const started = performance.now();
    const rebuilt = await rebuild(this.store, allocatorViewProjection, { upTo: position, logger: this.logger });
    const rebuildMs = Math.round(performance.now() - started);
    const models = [
      { name: "computers", differences: differences(live.computers, rebuilt.state.computers) },
      { name: "instances", differences: differences(live.instances, rebuilt.state.instances) },
    ];
    return { position, rebuiltUpTo: rebuilt.position, rebuildMs, equal: models.every((m) => m.differences.length === 0), models };
  }

  instance(instanceId: string): InstanceView | undefined {
    return this.instances.instances[instanceId];
  }

  answer(instance: InstanceView): Answer {
    return answerFor(instance, this.view.state, this.explain);
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
      const done = (answer: Answer | undefined): void => {
        clearTimeout(timer);
        unsubscribe();
        resolve(answer);
      };
      const unsubscribe = this.onChange(() => {
        const instance = this.instance(instanceId);
        const answer = instance === undefined ? undefined : this.answer(instance);
        if (answer !== undefined && answer.status !== "pending") done(answer);
      });
      const timer = setTimeout(() => {
        const instance = this.instance(instanceId);
        done(instance === undefined ? undefined : this.answer(instance));
      }, timeoutMs);
    });
  }
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
