import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { FairQueue } from "./fair-queue.js";

/** A task that records its name when it runs and ends when `release` is called. */
function gate(): { task: (name: string, log: string[]) => () => Promise<string>; release: () => void } {
  let open: () => void = () => undefined;
  let opened = new Promise<void>((r) => (open = r));
  return {
    task: (name, log) => async () => {
      log.push(name);
      await opened;
      return name;
    },
    release: () => {
      open();
      opened = new Promise<void>((r) => (open = r));
    },
  };
}

describe("a fair queue of tasks, one at a time", () => {
  it("serves the callers in turn: alice's one task runs after at most one of bob's, not after his whole queue", async () => {
    const queue = new FairQueue(10);
    const log: string[] = [];
    const bob = Array.from({ length: 5 }, (_, n) => queue.run("bob", async () => {
      log.push(`bob${n}`);
      await new Promise((r) => setImmediate(r));
    }));
    const alice = queue.run("alice", () => {
      log.push("alice");
      return Promise.resolve();
    });
    await Promise.all([...bob, alice]);
    assert.deepEqual(log, ["bob0", "alice", "bob1", "bob2", "bob3", "bob4"]);
  });

  it("runs one task at a time, and a failed task does not stop the queue", async () => {
    const queue = new FairQueue(10);
    const { task, release } = gate();
    const log: string[] = [];
    const first = queue.run("bob", task("first", log));
    const failing = queue.run("bob", () => Promise.reject(new Error("fold failed")));
    const third = queue.run("carol", task("third", log));
    await new Promise((r) => setImmediate(r));
    assert.deepEqual(log, ["first"], "nothing else runs while the first does");
    release();
    assert.equal(await first, "first");
    await new Promise((r) => setImmediate(r));
    release();
    assert.equal(await third, "third");
    await assert.rejects(failing!, /fold failed/);
  });

  it("refuses a caller's task past its bound, and takes one again once one ended", async () => {
    const queue = new FairQueue(2);
    const { task, release } = gate();
    const log: string[] = [];
    const a = queue.run("bob", task("a", log));
    const b = queue.run("bob", () => Promise.resolve("b"));
    assert.equal(queue.run("bob", () => Promise.resolve("c")), undefined, "a third task of bob's is refused");
    const d = queue.run("alice", () => Promise.resolve("d"));
    assert.ok(d !== undefined, "another caller is not bound by bob's");
    await new Promise((r) => setImmediate(r));
    release();
    assert.equal(await a, "a");
    assert.equal(queue.pending("bob"), 1, "bob's first task is counted out once it ended");
    const e = queue.run("bob", () => Promise.resolve("e"));
    assert.ok(e !== undefined);
    assert.deepEqual(await Promise.all([b, d, e]), ["b", "d", "e"]);
    assert.equal(queue.pending("bob"), 0);
  });
});
