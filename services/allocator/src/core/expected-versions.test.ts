import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { ExpectedVersions } from "./expected-versions.js";

describe("expected versions", () => {
  it("uses the version the read model shows until the store says otherwise", () => {
    assert.equal(new ExpectedVersions().expected("p/C1/slappart0", 3, 10), 3);
  });

  it("uses a learnt version only once the read model has folded every commit up to it, and forgets it once the model shows it", () => {
    const versions = new ExpectedVersions();
    versions.learn("s", 7);
    assert.equal(versions.expected("s", 5, 6), 5, "a valid commit may still be on its way");
    assert.equal(versions.expected("s", 5, 7), 7, "the commits between were all skipped");
    assert.equal(versions.expected("s", 8, 9), 8);
    assert.equal(versions.expected("s", 5, 9), 5, "forgotten once shown");
  });

  it("counts conflicts in a row per stream until an append goes through", () => {
    const versions = new ExpectedVersions();
    assert.deepEqual([versions.conflicted("a"), versions.conflicted("a"), versions.conflicted("b")], [1, 2, 1]);
    versions.appended("a");
    assert.equal(versions.conflicted("a"), 1);
  });
});
