import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { fixtures } from "@slap/testkit";
import { asOfBound, foldAsOf, foldUpTo, isAtOrBefore } from "./asof.js";
import { instancesProjection } from "./projections/instances.js";
import type { DomainEvent } from "./schemas.js";
import type { Commit } from "./store.js";

/** One commit per event, at positions 1, 2, …, each event at the given time. */
function log(...events: Array<[DomainEvent, string]>): Commit[] {
  return events.map(([event, time], i) => ({ position: i + 1, streamKey: "s", events: [{ ...event, time }] }));
}

const T = (s: number): string => new Date(Date.UTC(2026, 10, 23, 10, 0, s)).toISOString();

describe("the as-of bound", () => {
  const commits = log(
    [fixtures.instanceRequested("A"), T(10)],
    [fixtures.instanceRequested("B"), T(20)],
    [fixtures.connectionPublished("A", { url: "u" }), T(30)],
  );

  it("is the last commit whose first event's time is at or before the time", () => {
    assert.equal(asOfBound(commits, { time: T(10) }), 1);
    assert.equal(asOfBound(commits, { time: T(25) }), 2);
    assert.equal(asOfBound(commits, { time: T(30) }), 3);
    assert.equal(asOfBound(commits, { time: T(99) }), 3);
  });

  it("is position 0 (the empty prefix) for a time before every commit", () => {
    assert.equal(asOfBound(commits, { time: T(9) }), 0);
    assert.equal(asOfBound([], { time: T(9) }), 0);
  });

  it("compares instants, not strings: an offset names the same moment as Z", () => {
    assert.equal(asOfBound(commits, { time: "2026-11-23T11:00:20+01:00" }), 2);
    assert.equal(isAtOrBefore(commits[1]!, { time: "2026-11-23T11:00:19.999+01:00" }), false);
  });

  it("stays a prefix when producers' clocks disagree: a later commit with an earlier time takes the commits before it along", () => {
    const skewed = log(
      [fixtures.instanceRequested("A"), T(10)],
      [fixtures.instanceRequested("B"), T(40)], // a fast clock
      [fixtures.instanceRequested("C"), T(20)],
      [fixtures.instanceRequested("D"), T(50)],
    );
    assert.equal(asOfBound(skewed, { time: T(30) }), 3);
    const { state, position } = foldAsOf(instancesProjection, skewed, { time: T(30) });
    assert.equal(position, 3);
    assert.deepEqual(Object.keys(state.instances).sort(), ["A", "B", "C"]);
  });

  it("by position is the prefix up to that position", () => {
    assert.equal(asOfBound(commits, { position: 2 }), 2);
    assert.equal(asOfBound(commits, { position: 0 }), 0);
    assert.equal(asOfBound(commits, { position: 99 }), 3);
  });
});

describe("folding up to the bound", () => {
  const commits = log(
    [fixtures.instanceRequested("A"), T(10)],
    [fixtures.connectionPublished("A", { url: "u" }), T(30)],
  );

  it("gives the state of that moment, with the last position folded and its time", () => {
    const before = foldAsOf(instancesProjection, commits, { time: T(20) });
    assert.deepEqual({ position: before.position, time: before.time }, { position: 1, time: T(10) });
    assert.equal(before.state.instances.A?.connection, null);
    const after = foldAsOf(instancesProjection, commits, { time: T(30) });
    assert.deepEqual(after.state.instances.A?.connection, { url: "u" });
  });

  it("gives the initial state at position 0 with no time", () => {
    assert.deepEqual(foldUpTo(instancesProjection, commits, 0), { state: instancesProjection.initial(), position: 0, time: null });
  });
});
