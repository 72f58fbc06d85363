// What one caller may take of the master (README, "Limits"): a bang flood gets 429s naming the
// limit, idle event streams past the limit are refused, others' calls go on.
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { EmbeddedEventStore } from "@slap/eventstore-embedded";
import { as, callJson, captureLogger, fixtures, tempDir, tokenFile } from "@slap/testkit";
import { runMaster, type RunningMaster } from "@slap/master";

let master: RunningMaster;
let dir: Awaited<ReturnType<typeof tempDir>>;

before(async () => {
  dir = await tempDir("slap-limits-");
  const tokens = tokenFile(dir.path, { users: ["alice", "bob"], computers: [] });
  master = await runMaster(
    { port: 0, host: "127.0.0.1", tokens, data: `${dir.path}/data`, writeBytesBurst: 256 * 1024, writeBytesPerSecond: 64 * 1024, heldPerCaller: 4, logLevel: "silent" },
    { logger: captureLogger().logger },
  );
});

after(async () => {
  await master.stop();
  await dir.dispose();
});

describe("limits per caller", () => {
  it("a flood of 16 KiB bangs on one's own instance gets 429s naming the limit, with Retry-After; another user is not held back", async () => {
    const requested = await callJson(`${master.url}/v1/requests`, "POST", as.user("bob"), { releaseUrl: "file:///r", reference: "mine" });
    assert.equal(requested.status, 202, JSON.stringify(requested.body));
    const instanceId = requested.body.instanceId as string;
    const message = "x".repeat(16 * 1024);
    let accepted = 0;
    let refused: { status: number; body: Record<string, unknown>; retryAfter: string | null } | undefined;
    for (let n = 0; n < 100 && refused === undefined; n++) {
      const response = await fetch(`${master.url}/v1/instances/${instanceId}/bang`, { method: "POST", headers: { ...as.user("bob"), "content-type": "application/json" }, body: JSON.stringify({ message }) });
      const body = (await response.json()) as Record<string, unknown>;
      if (response.status === 429) refused = { status: response.status, body, retryAfter: response.headers.get("retry-after") };
      else {
        assert.equal(response.status, 200, JSON.stringify(body));
        accepted++;
      }
    }
    assert.ok(refused !== undefined, `no 429 after ${accepted} bangs`);
    assert.ok(accepted >= 10 && accepted < 30, `about 256 KiB of bangs accepted at once (${accepted})`);
    assert.deepEqual(refused.body.error, { code: "TooManyRequests", message: "too many bytes written: at most 65536 a second (bursts of 262144) per caller" });
    assert.ok(Number(refused.retryAfter) >= 1);
    const alice = await callJson(`${master.url}/v1/requests`, "POST", as.user("alice"), { releaseUrl: "file:///r", reference: "hers" });
    assert.equal(alice.status, 202, "alice's own budget is untouched");
  });

  it("idle event streams: past 4 for one caller, 429; one closed makes room again", async () => {
    const streams: AbortController[] = [];
    const open = async (): Promise<Response> => {
      const stop = new AbortController();
      streams.push(stop);
      return fetch(`${master.url}/v1/events/stream`, { headers: as.user("bob"), signal: stop.signal });
    };
    try {
      const opened: Response[] = [];
      for (let n = 0; n < 4; n++) opened.push(await open());
      assert.deepEqual(opened.map((r) => r.status), [200, 200, 200, 200]);
      const fifth = await open();
      assert.equal(fifth.status, 429);
      assert.match(((await fifth.json()) as { error: { message: string } }).error.message, /at most 4 per caller/);
      assert.equal((await fetch(`${master.url}/v1/events/stream`, { headers: as.user("alice"), signal: AbortSignal.timeout(5_000) }).then((r) => { void r.body?.cancel(); return r.status; })), 200, "alice opens hers");
      streams[0]!.abort();
      let again: Response | undefined;
      for (let tries = 0; tries < 100; tries++) {
        again = await open();
        if (again.status === 200) break;
        await new Promise((r) => setTimeout(r, 20));
      }
      assert.equal(again?.status, 200, "a stream closed gives its place back");
    } finally {
      for (const stop of streams) stop.abort();
    }
  });
});

describe("\"as of\" reads between callers", () => {
  let folding: RunningMaster;
  let folder: Awaited<ReturnType<typeof tempDir>>;
  before(async () => {
    folder = await tempDir("slap-limits-asof-");
    const { logger } = captureLogger();
    const store = await EmbeddedEventStore.open({ dir: `${folder.path}/data`, logger });
    // A log long enough that each fold takes a while: the reads below wait in the queue.
    const commits = fixtures.story(400);
    for (let n = 0; n < commits.length; n += 200) await Promise.all(commits.slice(n, n + 200).map((events) => store.append(events, { expectedVersion: "any" })));
    folding = await runMaster({ port: 0, host: "127.0.0.1", tokens: tokenFile(folder.path, { users: ["alice", "bob"], computers: [] }), logLevel: "silent" }, { store, logger });
  });
  after(async () => {
    await folding.stop();
    await folder.dispose();
  });

  it("are served in turn (alice's is not queued behind bob's), at most 4 waiting or folding per caller", async () => {
    const done: string[] = [];
    const read = (who: "alice" | "bob", at: number) =>
      callJson(`${folding.url}/v1/instances?at=${at}`, "GET", as.user(who)).then((answer) => {
        if (answer.status === 200) done.push(`${who}@${at}`);
        return answer;
      });
    const bobs = Array.from({ length: 12 }, (_, n) => read("bob", 3_000 + n * 10));
    // Let bob's reads reach the master first.
    await new Promise((r) => setTimeout(r, 30));
    const alice = await read("alice", 3_125);
    const answers = await Promise.all(bobs);
    assert.equal(alice.status, 200, JSON.stringify(alice.body));
    const refused = answers.filter((a) => a.status === 429);
    // Twelve sent at once, each fold taking a while: at most four wait or run, so most are refused (a fold may end before the last arrive).
    assert.ok(refused.length >= 1 && refused.length <= 8, `bob's reads past four waiting are refused (${answers.map((a) => a.status).join(" ")})`);
    assert.ok(answers.every((a) => a.status === 200 || a.status === 429));
    assert.match(JSON.stringify(refused[0]!.body), /at most 4 per caller/);
    // Once alice's read is in, at most the one of bob's that is folding goes before it.
    // The turn between callers itself is core/fair-queue.test.ts's (an HTTP round trip here takes as long as a fold).
    assert.ok(done.includes("alice@3125"), "bob's queue does not refuse alice");
  });
});
