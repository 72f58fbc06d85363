import assert from "node:assert/strict";
import type { DomainEvent, Projection } from "@slap/events";

/** A decision as data: accepted, or rejected with a reason (and a detail for the user). */
export type Outcome = { readonly ok: true } | { readonly ok: false; readonly reason: string; readonly detail?: unknown };
type Accepted<D> = Extract<D, { ok: true }>;
type Rejected<D> = Extract<D, { ok: false }>;

/**
 * Folds events into a projection's state, each event its own commit at positions `from`, `from + 1`, …
 * (default 1, 2, …): the read model a log of just these events builds.
 */
export function foldEvents<S>(projection: Projection<S>, events: readonly DomainEvent[], state: S = projection.initial(), from = 1): S {
  return events.reduce((current, event, i) => projection.evolve(current, event, from + i), state);
}

export interface DeciderSpecificationOptions<S, C, D extends Outcome, P> {
  /** The state the decider reads, built from the given events (usually `foldEvents` over its read models). */
  fold(events: readonly DomainEvent[]): S;
  decide(command: C, state: S): D;
  /** What `then` compares for an accepted decision: the events it appends, the place it chose… */
  produced(accepted: Accepted<D>): P;
}

export interface Given<S, C, D extends Outcome, P> {
  /** The state folded from the given events, for assertions a decision does not cover. */
  readonly state: S;
  when(command: C): When<D, P>;
}

export interface When<D extends Outcome, P> {
  /** The decision, as `decide` returned it. */
  readonly decision: D;
  /**
   * Asserts the decision was accepted and what it produced: deep-equal to `expected`, or checked by
   * a callback that also gets the decision. Returns what was produced (e.g. to extend a history).
   */
  then(expected: P | ((produced: P, decision: Accepted<D>) => void)): P;
  /** Asserts the decision was a rejection: with this reason (and detail, a string or a pattern), or checked by a callback. */
  thenRejects(reason: string | ((rejection: Rejected<D>) => void), detail?: string | RegExp): Rejected<D>;
}

/**
 * given(events) / when(command) / then(produced) for any decider that answers as data (`{ ok }`):
 * the master's deciders, placement, host attachment. No server, no clock: time and ids are the
 * fold's business (put them in the state).
 */
export function deciderSpecification<S, C, D extends Outcome, P>(options: DeciderSpecificationOptions<S, C, D, P>) {
  return {
    given(events: readonly DomainEvent[]): Given<S, C, D, P> {
      const state = options.fold(events);
      return {
        state,
        when(command: C): When<D, P> {
          const decision = options.decide(command, state);
          return {
            decision,
            then(expected) {
              assert.ok(decision.ok, `expected an accepted decision, got ${JSON.stringify(decision)}`);
              const accepted = decision as Accepted<D>;
              const produced = options.produced(accepted);
              if (typeof expected === "function") (expected as (produced: P, decision: Accepted<D>) => void)(produced, accepted);
              else assert.deepEqual(produced, expected);
              return produced;
            },
            thenRejects(reason, detail) {
              assert.ok(!decision.ok, `expected a rejection, got ${JSON.stringify(decision)}`);
              const rejection = decision as Rejected<D>;
              if (typeof reason === "function") {
                reason(rejection);
                return rejection;
              }
              if (detail === undefined) assert.equal(rejection.reason, reason, JSON.stringify(rejection));
              else if (typeof detail === "string") assert.deepEqual({ reason: rejection.reason, detail: rejection.detail }, { reason, detail });
              else {
                assert.equal(rejection.reason, reason, JSON.stringify(rejection));
                assert.match(String(rejection.detail), detail);
              }
              return rejection;
            },
          };
        },
      };
    },
  };
}

export interface GivenProjection<S> {
  /** The state folded from the given events. */
  readonly state: S;
  /** Folds more events, at the positions after the given ones. */
  when(events: readonly DomainEvent[]): GivenProjection<S>;
  /** Asserts the state: deep-equal to `expected`, or checked by a callback. Returns the state. */
  then(expected: S | ((state: S) => void)): S;
}

/** given(events) / then(state) for a projection: the state a log of just these events builds. */
export function projectionSpecification<S>(projection: Projection<S>) {
  const at = (state: S, seen: number): GivenProjection<S> => ({
    state,
    when: (events) => at(foldEvents(projection, events, state, seen + 1), seen + events.length),
    then(expected) {
      if (typeof expected === "function") (expected as (state: S) => void)(state);
      else assert.deepEqual(state, expected);
      return state;
    },
  });
  return { given: (events: readonly DomainEvent[]): GivenProjection<S> => at(foldEvents(projection, events), events.length) };
}
