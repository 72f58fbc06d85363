import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { nextRestart, restartsWithin } from "./backoff.js";
import { insidePartition, PathEscapeError } from "./paths.js";
import { decideProcessing, parametersHash, sameDeployment, type DeployedState } from "./state.js";

describe("partition paths", () => {
  it("resolves relative paths inside the partition", () => {
    assert.equal(insidePartition("/srv/slappart0", "etc/a.conf"), "/srv/slappart0/etc/a.conf");
    assert.equal(insidePartition("/srv/slappart0", "./var/../etc/b"), "/srv/slappart0/etc/b");
  });

  it("refuses absolute paths and paths escaping the partition, naming them", () => {
    for (const path of ["/etc/passwd", "../slappart1/x", "etc/../../x", "..", "", "."]) {
      assert.throws(() => insidePartition("/srv/slappart0", path), (error: unknown) => error instanceof PathEscapeError && error.message.includes(JSON.stringify(path)), path);
    }
  });
});

describe("when to process an instance", () => {
  const wanted = { instanceId: "I1", serial: 3, revision: 7, requestedState: "started" as const, parameters: { a: "1" } };
  const state: DeployedState = {
    instanceId: "I1",
    serial: 3,
    revision: 7,
    requestedState: "started",
    parametersHash: parametersHash({ a: "1" }),
    outcome: "started",
    processedAt: new Date(1_000).toISOString(),
  };
  const options = { now: 2_000, lastProcessedAt: 1_000, maxPeriodicityMs: 10_000, adopted: true };

  it("skips an instance whose deployment matches", () => {
    assert.deepEqual(decideProcessing(state, wanted, options), { process: false });
  });

  it("processes a new instance, a changed one, one not yet adopted, and one past its periodicity", () => {
    assert.deepEqual(decideProcessing(undefined, wanted, options), { process: true, reason: "new" });
    assert.deepEqual(decideProcessing({ ...state, instanceId: "I0" }, wanted, options), { process: true, reason: "new" });
    assert.deepEqual(decideProcessing(state, { ...wanted, serial: 4 }, options), { process: true, reason: "changed" });
    assert.deepEqual(decideProcessing(state, { ...wanted, revision: 8 }, options), { process: true, reason: "changed" });
    const { revision: _, ...older } = state;
    assert.deepEqual(decideProcessing(older, { ...wanted, revision: 8 }, options), { process: false }, "a state file without a revision (an older node's) compares serials only");
    assert.deepEqual(decideProcessing(state, { ...wanted, requestedState: "stopped" }, options), { process: true, reason: "changed" });
    assert.deepEqual(decideProcessing(state, { ...wanted, parameters: { a: "2" } }, options), { process: true, reason: "changed" });
    assert.deepEqual(decideProcessing(state, wanted, { ...options, adopted: false }), { process: true, reason: "adopt" });
    assert.deepEqual(decideProcessing(state, wanted, { ...options, now: 11_000 }), { process: true, reason: "periodicity" });
  });

  it("tries a processing that ended in error again after a minute", () => {
    const failed = { ...state, outcome: "error" as const };
    assert.deepEqual(decideProcessing(failed, wanted, { ...options, maxPeriodicityMs: 86_400_000, now: 30_000 }), { process: false });
    assert.deepEqual(decideProcessing(failed, wanted, { ...options, maxPeriodicityMs: 86_400_000, now: 61_000 }), { process: true, reason: "retry" });
  });

  it("never processes a destroyed deployment again for the same serial", () => {
    const destroyed = { ...state, requestedState: "destroyed" as const, outcome: "destroyed" as const };
    assert.deepEqual(decideProcessing(destroyed, { ...wanted, requestedState: "destroyed" }, { ...options, adopted: false }), { process: false });
  });

  it("parameter hashes ignore key order, and state comparison ignores the time", () => {
    assert.equal(parametersHash({ a: "1", b: "2" }), parametersHash({ b: "2", a: "1" }));
    assert.ok(sameDeployment(state, { ...state, processedAt: new Date().toISOString() }));
    assert.ok(!sameDeployment(state, { ...state, outcome: "error" }));
  });
});

describe("service restart back-off", () => {
  it("doubles from 1 s up to an hour and resets after 60 s up", () => {
    let failures = 0;
    const delays: number[] = [];
    for (let i = 0; i < 15; i++) {
      const next = nextRestart(failures, 100);
      failures = next.failures;
      delays.push(next.delayMs);
    }
    assert.deepEqual(delays.slice(0, 6), [1_000, 2_000, 4_000, 8_000, 16_000, 32_000]);
    assert.deepEqual(delays.slice(-3), [3_600_000, 3_600_000, 3_600_000]);
    assert.deepEqual(nextRestart(failures, 60_000), { delayMs: 1_000, failures: 1 });
  });

  it("restarts a service that keeps failing 11 times in its first hour (12 exits), then once an hour", () => {
    assert.equal(restartsWithin(3_600_000), 11);
    assert.equal(restartsWithin(2 * 3_600_000) - restartsWithin(3_600_000), 1);
    assert.equal(restartsWithin(24 * 3_600_000), 11 + 23);
  });
});
