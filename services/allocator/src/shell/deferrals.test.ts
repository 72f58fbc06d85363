import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { Deferrals } from "./deferrals.js";

describe("deferrals", () => {
  it("runs work once the read model reaches its position, lowest position first", () => {
    const deferrals = new Deferrals();
    const ran: string[] = [];
    for (const [position, name] of [[30, "c"], [10, "a"], [20, "b"], [40, "d"]] as const) {
      deferrals.add(position, Number.POSITIVE_INFINITY, () => ran.push(name));
    }
    for (const run of deferrals.due(25, 0)) run();
    assert.deepEqual(ran, ["a", "b"]);
    assert.equal(deferrals.size, 2);
    for (const run of deferrals.due(40, 0)) run();
    assert.deepEqual(ran, ["a", "b", "c", "d"]);
  });

  it("runs work whose deadline passed even if the position is never reached", () => {
    const deferrals = new Deferrals();
    const ran: string[] = [];
    deferrals.add(Number.POSITIVE_INFINITY, 1_000, () => ran.push("late"));
    deferrals.add(100, 5_000, () => ran.push("soon"));
    deferrals.add(50, 9_000, () => ran.push("early"));
    for (const run of deferrals.due(10, 999)) run();
    assert.deepEqual(ran, []);
    for (const run of deferrals.due(10, 1_000)) run();
    assert.deepEqual(ran, ["late"]);
    for (const run of deferrals.due(60, 1_000)) run();
    assert.deepEqual(ran, ["late", "early"]);
    assert.equal(deferrals.size, 1);
  });
});
