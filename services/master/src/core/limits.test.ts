import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { Limits } from "./limits.js";

const settings = { writeBytesPerSecond: 1_000, writeBytesBurst: 4_000, writesPerSecond: 10, writesBurst: 20, heldPerCaller: 2, heldTotal: 3 };

describe("what one caller may take of the master", () => {
  it("writes: a burst, then as fast as the bucket refills; the refusal names the limit and when to try again; callers apart", () => {
    const limits = new Limits(settings);
    for (let n = 0; n < 20; n++) assert.equal(limits.write("user:bob", 10, 0), undefined, `write ${n}`);
    const refused = limits.write("user:bob", 10, 0);
    assert.equal(refused?.limit, "writesPerSecond");
    assert.match(refused?.message ?? "", /at most 10 a second \(bursts of 20\) per caller/);
    assert.equal(refused?.retryAfterS, 1);
    assert.equal(limits.write("user:alice", 10, 0), undefined, "alice has her own budget");
    assert.equal(limits.write("user:bob", 10, 100), undefined, "a tenth of a second refills one write");
    assert.equal(limits.write("user:bob", 10, 100)?.limit, "writesPerSecond");
  });

  it("bytes: large writes run out before many small ones; one larger than the burst is refused outright", () => {
    const limits = new Limits(settings);
    assert.equal(limits.write("node:C1", 3_000, 0), undefined);
    const refused = limits.write("node:C1", 3_000, 0);
    assert.equal(refused?.limit, "writeBytesPerSecond");
    assert.equal(refused?.retryAfterS, 2, "2,000 bytes are missing at 1,000 a second");
    assert.equal(limits.write("node:C1", 3_000, 2_000), undefined, "two seconds later it fits");
    assert.equal(limits.write("node:C1", 5_000, 60_000)?.limit, "writeBytesBurst");
  });

  it("held requests: per caller and in total, given back once released (twice is once)", () => {
    const limits = new Limits(settings);
    const a = limits.hold("user:bob");
    const b = limits.hold("user:bob");
    assert.ok(typeof a === "function" && typeof b === "function");
    const third = limits.hold("user:bob");
    assert.ok(typeof third !== "function" && third.limit === "heldPerCaller", JSON.stringify(third));
    const c = limits.hold("user:alice");
    assert.ok(typeof c === "function");
    const full = limits.hold("user:carol");
    assert.ok(typeof full !== "function" && full.limit === "heldTotal");
    a();
    a();
    assert.equal(limits.holding, 2);
    assert.equal(typeof limits.hold("user:bob"), "function");
  });
});
