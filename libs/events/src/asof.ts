import type { Logger } from "pino";
import { foldCommit, type Projection } from "./projection.js";
import type { Commit, EventStore } from "./store.js";

/**
 * A past moment of the log: a time (ISO-8601 with offset), or a log position.
 *
 * Event times are decided by their producers, so they need not grow with positions (two
 * services' clocks, a slow append). The moment a time names is therefore defined on positions:
 * **the log prefix up to the last commit whose first event's time is ≤ the time.** A commit
 * written later with an earlier time moves the bound forward (and takes every commit before it
 * along); a commit with a later time that precedes it is included. The result is always a
 * prefix of the log, a state the read models really went through, never a subset of events.
 * A time before every commit's time is position 0: the empty state.
 *
 * A position names the prefix up to it (a position past the head is the head).
 */
export type AsOf = { time: string } | { position: number };

/** The state of a projection as of a moment: the position of the last commit folded (0: none) and its first event's time. */
export interface AsOfState<S> {
  state: S;
  position: number;
  time: string | null;
}

/** Whether a commit is at or before the moment, on its own (the bound is the last such commit). */
export function isAtOrBefore(commit: Commit, asOf: AsOf): boolean {
  if ("position" in asOf) return commit.position <= asOf.position;
  const first = commit.events[0];
  return first !== undefined && Date.parse(first.time) <= Date.parse(asOf.time);
}

/** The bound after one more commit of the log (commits in log order, starting from 0). */
export function nextBound(bound: number, commit: Commit, asOf: AsOf): number {
  return isAtOrBefore(commit, asOf) ? commit.position : bound;
}

/** The last position of the log prefix that `asOf` names (0: the empty prefix). Commits in log order. */
export function asOfBound(commits: Iterable<Commit>, asOf: AsOf): number {
  let bound = 0;
  for (const commit of commits) bound = nextBound(bound, commit, asOf);
  return bound;
}

/** Folds the commits up to position `upTo` (inclusive) into a fresh state. Commits in log order. */
export function foldUpTo<S>(projection: Projection<S>, commits: Iterable<Commit>, upTo: number): AsOfState<S> {
  let result: AsOfState<S> = { state: projection.initial(), position: 0, time: null };
  for (const commit of commits) {
    if (commit.position > upTo) break;
    result = step(projection, result, commit);
  }
  return result;
}

/** The state of `projection` as of a moment, from commits in log order (pure: `asOfBound`, then `foldUpTo`). */
export function foldAsOf<S>(projection: Projection<S>, commits: readonly Commit[], asOf: AsOf): AsOfState<S> {
  return foldUpTo(projection, commits, asOfBound(commits, asOf));
}

/**
 * The last position of the prefix `asOf` names, in a store. A position costs nothing (the
 * smaller of it and the head); a time reads the whole log once (the bound is the *last* commit
 * at or before the time, and any later commit may be one), decoding but folding nothing.
 */
export async function readAsOfBound(store: EventStore, asOf: AsOf): Promise<number> {
  if ("position" in asOf) return Math.min(asOf.position, await store.head());
  let bound = 0;
  for await (const commit of store.readAll()) bound = nextBound(bound, commit, asOf);
  return bound;
}

/** Folds the store's log from position 0 up to `upTo` (inclusive) into a fresh state of `projection`. */
export async function rebuildUpTo<S>(store: EventStore, projection: Projection<S>, upTo: number, options: { logger?: Logger } = {}): Promise<AsOfState<S>> {
  let result: AsOfState<S> = { state: projection.initial(), position: 0, time: null };
  if (upTo <= 0) return result;
  for await (const commit of store.readAll()) {
    if (commit.position > upTo) break;
    result = step(projection, result, commit, options.logger);
  }
  return result;
}

function step<S>(projection: Projection<S>, result: AsOfState<S>, commit: Commit, logger?: Logger): AsOfState<S> {
  const state = foldCommit(projection, result.state, commit, (error, event, position) =>
    logger?.error({ err: error, projection: projection.name, position, eventId: event.id, type: event.type }, "projection could not apply an event; skipped"),
  );
  return { state, position: commit.position, time: commit.events[0]?.time ?? null };
}
