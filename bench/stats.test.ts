import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { max, median, min, percentile, perSecond, summarize } from "./stats.js";

describe("bench stats", () => {
  it("computes median, min, max and interpolated percentiles", () => {
    assert.equal(median([3, 1, 2]), 2);
    assert.equal(median([4, 1, 3, 2]), 2.5);
    assert.equal(min([5, -1, 3]), -1);
    assert.equal(max([5, -1, 3]), 5);
    assert.equal(percentile([10, 20, 30, 40, 50], 0), 10);
    assert.equal(percentile([10, 20, 30, 40, 50], 100), 50);
    assert.equal(percentile([10, 20, 30, 40, 50], 90), 46);
    assert.deepEqual(summarize([7]), { median: 7, min: 7, max: 7 });
    assert.equal(perSecond(500, 250), 2_000);
  });

  it("refuses empty samples and out-of-range percentiles", () => {
    assert.throws(() => median([]), /no samples/);
    assert.throws(() => percentile([1], 101), RangeError);
  });
});
