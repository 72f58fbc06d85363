import { mkdir, open, readFile, rename } from "node:fs/promises";
import { join } from "node:path";
import type { Logger } from "pino";
import type { DomainEvent } from "./schemas.js";
import { EventStoreError } from "./errors.js";
import type { Commit, EventStore, Subscription } from "./store.js";

/**
 * A read model built by folding events. `evolve` is deterministic and free of I/O, clocks and
 * random ids. It may update `state` in place and return it: the runner owns the state and
 * never shares it mid-fold, and in-place updates keep a rebuild of millions of events linear.
 * State must be plain JSON (objects, arrays, strings, numbers, booleans, null) so it can be
 * checkpointed and compared.
 */
export interface Projection<S> {
  readonly name: string;
  /** Bump when `evolve` changes meaning: a checkpoint of another version is discarded and the model rebuilt. */
  readonly version: number;
  initial(): S;
  evolve(state: S, event: DomainEvent, position: number): S;
}

/** A projection's state as of a position. */
export interface Checkpoint<S> {
  projection: string;
  version: number;
  position: number;
  state: S;
}

export interface CheckpointStore {
  load<S>(projection: string): Promise<Checkpoint<S> | undefined>;
  save<S>(checkpoint: Checkpoint<S>): Promise<void>;
}

/** Checkpoints in memory: for tests and for read models that are cheap to rebuild. */
export class MemoryCheckpointStore implements CheckpointStore {
  private readonly saved = new Map<string, string>();
  load<S>(projection: string): Promise<Checkpoint<S> | undefined> {
    const json = this.saved.get(projection);
    return Promise.resolve(json === undefined ? undefined : (JSON.parse(json) as Checkpoint<S>));
  }
  save<S>(checkpoint: Checkpoint<S>): Promise<void> {
    this.saved.set(checkpoint.projection, JSON.stringify(checkpoint));
    return Promise.resolve();
  }
}

/**
 * Checkpoints as `<dir>/<projection>.checkpoint.json`, replaced atomically (write to a
 * temporary file, fsync, rename), so a crash leaves the old or the new one, never half of one.
 * A checkpoint that cannot be read is ignored: the projection is rebuilt from the log.
 */
export class FileCheckpointStore implements CheckpointStore {
  constructor(private readonly dir: string) {}

  async load<S>(projection: string): Promise<Checkpoint<S> | undefined> {
    try {
      const parsed = JSON.parse(await readFile(this.path(projection), "utf8")) as Checkpoint<S>;
      if (parsed.projection !== projection || typeof parsed.position !== "number") return undefined;
      return parsed;
    } catch {
      return undefined;
    }
  }

  async save<S>(checkpoint: Checkpoint<S>): Promise<void> {
    await mkdir(this.dir, { recursive: true });
    const target = this.path(checkpoint.projection);
    const temporary = `${target}.tmp`;
    const handle = await open(temporary, "w");
    try {
      await handle.writeFile(JSON.stringify(checkpoint));
      await handle.sync();
    } finally {
      await handle.close();
    }
    await rename(temporary, target);
  }

  private path(projection: string): string {
    return join(this.dir, `${projection}.checkpoint.json`);
  }
}

/** Folds the events of commits into `state`. An `evolve` that throws is reported and the event skipped. */
export function foldCommit<S>(
  projection: Projection<S>,
  state: S,
  commit: Commit,
  onError?: (error: unknown, event: DomainEvent, position: number) => void,
): S {
  let next = state;
  for (const event of commit.events) {
    try {
      next = projection.evolve(next, event, commit.position);
    } catch (error) {
      onError?.(error, event, commit.position);
    }
  }
  return next;
}

/**
 * Rebuilds a projection from position 0 (or from `after`, given the state there), reading the
 * log up to its current head. This is what an audit compares live read models with.
 */
export async function rebuild<S>(
  store: EventStore,
  projection: Projection<S>,
  options: { logger?: Logger; upTo?: number } = {},
): Promise<{ state: S; position: number }> {
  let state = projection.initial();
  let position = 0;
  const onError = evolveErrorLogger(projection, options.logger);
  for await (const commit of store.readAll()) {
    if (options.upTo !== undefined && commit.position > options.upTo) break;
    state = foldCommit(projection, state, commit, onError);
    position = commit.position;
  }
  return { state, position };
}

export interface RunnerOptions {
  logger: Logger;
  checkpoints?: CheckpointStore;
  /** Save a checkpoint after this many commits (default 1,000) and when stopped. */
  checkpointEvery?: number;
}

/**
 * Keeps one projection up to date: starts from its checkpoint (or from 0), catches up with the
 * log, then follows it live. Read-your-writes: `waitFor(position, maxWaitMs?)` resolves once the
 * model has seen that position (or at the deadline, when one is given).
 */
export class ProjectionRunner<S> {
  private current: S;
  private seen = 0;
  private subscription: Subscription | undefined;
  private loop: Promise<void> | undefined;
  private sinceCheckpoint = 0;
  private stopping = false;
  private readonly waiting = new Set<{ position: number; resolve: () => void }>();
  private readonly listeners = new Set<(state: S, commit: Commit) => void>();
  private readonly logger: Logger;
  private readonly onError: (error: unknown, event: DomainEvent, position: number) => void;

  constructor(
    private readonly store: EventStore,
    private readonly projection: Projection<S>,
    private readonly options: RunnerOptions,
  ) {
    this.current = projection.initial();
    this.logger = options.logger.child({ projection: projection.name });
    this.onError = evolveErrorLogger(projection, this.logger);
  }

  /** The read model. Treat it as read-only. */
  get state(): S {
    return this.current;
  }

  /** The last position folded into the state. */
  get position(): number {
    return this.seen;
  }

  /** Called after every commit folded live (for dashboards and watchers). Returns an unsubscribe function. */
  onCommit(listener: (state: S, commit: Commit) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /** Loads the checkpoint, catches up to the head as of now, then keeps following in the background. */
  async start(): Promise<void> {
    const checkpoint = await this.options.checkpoints?.load<S>(this.projection.name);
    const head = await this.store.head();
    if (checkpoint !== undefined && checkpoint.version === this.projection.version && checkpoint.position <= head) {
      this.current = checkpoint.state;
      this.seen = checkpoint.position;
      this.logger.info({ position: checkpoint.position }, "projection resumed from its checkpoint");
    } else if (checkpoint !== undefined) {
      this.logger.warn(
        { checkpointVersion: checkpoint.version, checkpointPosition: checkpoint.position, head },
        "checkpoint discarded (other projection version, or ahead of the log): rebuilding from 0",
      );
    }
    for await (const commit of this.store.readAll({ after: this.seen })) {
      this.current = foldCommit(this.projection, this.current, commit, this.onError);
      this.seen = commit.position;
    }
    this.seen = Math.max(this.seen, head);
    this.logger.info({ position: this.seen }, "projection caught up");
    this.loop = this.followWithRetries();
  }

  /**
   * Follows the log; when the subscription fails with a retryable error (a reconnect, a
   * timeout), subscribes again from the last folded position with a capped back-off. A
   * failure that retrying cannot help stops the runner, logged as an error.
   */
  private async followWithRetries(): Promise<void> {
    for (let failures = 0; !this.stopping; ) {
      const subscription = this.store.subscribe({ after: this.seen });
      this.subscription = subscription;
      const before = this.seen;
      try {
        // Returns when the subscription is closed: by `stop()`, or by the store closing.
        await this.follow(subscription);
        return;
      } catch (error) {
        if (this.stopping) return;
        if (!(error instanceof EventStoreError) || !error.retryable) {
          this.logger.error({ err: error, position: this.seen }, "projection stopped: the event store failed");
          return;
        }
        failures = this.seen > before ? 1 : failures + 1;
        const delay = Math.min(5_000, 50 * 2 ** Math.min(failures, 7));
        this.logger.warn({ err: error, position: this.seen, retryInMs: delay }, "projection subscription failed; subscribing again");
        await subscription.close().catch(() => undefined);
        await new Promise((resolve) => setTimeout(resolve, delay));
      }
    }
  }

  private async follow(subscription: Subscription): Promise<void> {
    for await (const commit of subscription) {
      this.current = foldCommit(this.projection, this.current, commit, this.onError);
      this.seen = commit.position;
      for (const listener of this.listeners) {
        try {
          listener(this.current, commit);
        } catch (error) {
          this.logger.error({ err: error, position: commit.position }, "a read-model listener failed; the read model goes on");
        }
      }
      for (const w of this.waiting) {
        if (w.position <= this.seen) {
          this.waiting.delete(w);
          w.resolve();
        }
      }
      if (++this.sinceCheckpoint >= (this.options.checkpointEvery ?? 1_000)) {
        await this.checkpoint().catch((error: unknown) => {
          this.logger.error({ err: error, position: this.seen }, "checkpoint not saved; the read model goes on and tries again later");
        });
      }
    }
  }

  /** Resolves once the state includes `position` (the position an append answered). */
  waitFor(position: number, maxWaitMs?: number): Promise<void> {
    if (position <= this.seen) return Promise.resolve();
    return new Promise((resolve) => {
      const waiter = { position, resolve };
      this.waiting.add(waiter);
      if (maxWaitMs === undefined) return;
      // Bounded: the waiter goes away at the deadline, so a position that never comes (beyond the
      // head, or a malformed commit) costs nothing once it has timed out.
      const timer = setTimeout(() => {
        this.waiting.delete(waiter);
        resolve();
      }, maxWaitMs);
      waiter.resolve = () => {
        clearTimeout(timer);
        resolve();
      };
    });
  }

  /** Saves the current state as a checkpoint (no-op without a checkpoint store). */
  async checkpoint(): Promise<void> {
    this.sinceCheckpoint = 0;
    await this.options.checkpoints?.save({
      projection: this.projection.name,
      version: this.projection.version,
      position: this.seen,
      state: this.current,
    });
  }

  /** Stops following and saves a final checkpoint. Pending `waitFor` calls resolve (with the state as it is). */
  async stop(): Promise<void> {
    this.stopping = true;
    await this.subscription?.close();
    await this.loop;
    for (const w of this.waiting) w.resolve();
    this.waiting.clear();
    await this.checkpoint();
  }
}

function evolveErrorLogger<S>(projection: Projection<S>, logger: Logger | undefined) {
  return (error: unknown, event: DomainEvent, position: number): void => {
    logger?.error(
      { err: error, projection: projection.name, position, eventId: event.id, type: event.type },
      "projection could not apply an event; skipped",
    );
  };
}
