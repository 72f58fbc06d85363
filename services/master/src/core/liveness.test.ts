import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { livenessOf } from "./liveness.js";

const startedAt = Date.parse("2026-01-01T10:00:00.000Z");
const clock = (secondsAfterStart: number) => ({ now: startedAt + secondsAfterStart * 1_000, startedAt, staleAfterMs: 30_000 });

describe("a node's liveness", () => {
  it("is responsive while the master heard from it within staleAfterMs, unresponsive after, since the last time heard", () => {
    const heard = startedAt + 5_000;
    assert.deepEqual(livenessOf(heard, clock(5)), { state: "responsive", lastSeen: "2026-01-01T10:00:05.000Z" });
    assert.deepEqual(livenessOf(heard, clock(35)), { state: "responsive", lastSeen: "2026-01-01T10:00:05.000Z" });
    assert.deepEqual(livenessOf(heard, clock(35.001)), { state: "unresponsive", lastSeen: "2026-01-01T10:00:05.000Z" });
  });

  it("is unknown when the master has not heard from it since it started, unresponsive once it has been up longer than staleAfterMs", () => {
    assert.deepEqual(livenessOf(undefined, clock(0)), { state: "unknown", lastSeen: null });
    assert.deepEqual(livenessOf(undefined, clock(30)), { state: "unknown", lastSeen: null });
    assert.deepEqual(livenessOf(undefined, clock(31)), { state: "unresponsive", lastSeen: null });
  });
});
