// What one caller may take of the master (README, "Limits"): a bang flood gets 429s naming the
// limit, idle event streams past the limit are refused, others' calls go on.
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { as, callJson, captureLogger, tempDir, tokenFile } from "@slap/testkit";
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
      for (let n = 0; n < 4; n++) assert.equal((await open()).status, 200, `stream ${n}`);
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
