/**
 * The operator's surface of a real master (embedded log): unknown routes, request ids, readiness,
 * metrics (scraped and parsed as Prometheus text), and the token file read again without a
 * restart (a token added is accepted, a revoked one refused, listed without secrets).
 */
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { readFileSync, renameSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import parsePrometheusTextFormat from "parse-prometheus-text-format";
import type { EventStore } from "@slap/events";
import { EmbeddedEventStore } from "@slap/eventstore-embedded";
import { runMaster, sha256Of, type RunningMaster } from "@slap/master";
import { fakeIo, main } from "@slap/cli";
import { as, callJson, captureLogger, eventually, tempDir, testToken, tokenFile, type CapturedLogger } from "@slap/testkit";

let dir: Awaited<ReturnType<typeof tempDir>>;
let master: RunningMaster;
let store: EmbeddedEventStore;
let captured: CapturedLogger;
let tokens = "";
/** What the store's head answers: the real one, a position the read models never reach, or a failure. */
let headMode: "real" | "ahead" | "down" = "real";

before(async () => {
  dir = await tempDir("slap-operations-");
  captured = captureLogger();
  store = await EmbeddedEventStore.open({ dir: join(dir.path, "data"), logger: captured.logger });
  const flaky = new Proxy(store, {
    get(target, name, receiver) {
      if (name === "head") {
        return async () => {
          if (headMode === "down") throw new Error("store down");
          return (await target.head()) + (headMode === "ahead" ? 5 : 0);
        };
      }
      const value: unknown = Reflect.get(target, name, receiver);
      return typeof value === "function" ? (value as (...args: unknown[]) => unknown).bind(target) : value;
    },
  }) as EventStore;
  tokens = tokenFile(join(dir.path, "tokens"), { users: ["alice"], computers: ["COMP-1"] });
  master = await runMaster({ port: 0, host: "127.0.0.1", tokens }, { store: flaky, logger: captured.logger });
});

after(async () => {
  await master?.stop();
  await store?.close();
  await dir?.dispose();
});

describe("routes, request ids", () => {
  it("an unknown route answers 404 with or without a token, never 401", async () => {
    for (const headers of [{}, as.user("alice"), { authorization: "Bearer nonsense-token-000000" }]) {
      const response = await fetch(`${master.url}/v1/nothing-here`, { headers });
      assert.equal(response.status, 404);
      assert.equal(((await response.json()) as { error: { code: string } }).error.code, "NotFound");
    }
    assert.equal((await fetch(`${master.url}/v1/instances`)).status, 401, "a real route still needs a token");
  });

  it("every answer carries x-request-id: the caller's when valid, else a new one; it is in the master's log lines for that request", async () => {
    const given = "trace-0123456789abcdef";
    const echoed = await fetch(`${master.url}/v1/instances`, { headers: { ...as.user("alice"), "x-request-id": given } });
    assert.equal(echoed.headers.get("x-request-id"), given);
    await eventually("the request's log lines", () => Promise.resolve(captured.lines.some((l) => l.requestId === given && l.msg === "request completed") ? true : undefined));
    assert.ok(captured.lines.filter((l) => l.requestId === given).length >= 2, "incoming and completed");
    for (const bad of ["has spaces in it", "x".repeat(129), "semi;colon", ""]) {
      const response = await fetch(`${master.url}/healthz`, { headers: { "x-request-id": bad } });
      const id = response.headers.get("x-request-id");
      assert.ok(id !== null && id !== bad && /^[0-9a-f-]{36}$/.test(id), `${bad} → ${id}`);
    }
    const refused = await fetch(`${master.url}/v1/instances`);
    assert.match(refused.headers.get("x-request-id") ?? "", /^[0-9a-f-]{36}$/, "refusals carry one too");
    const missing = await fetch(`${master.url}/nowhere`);
    assert.ok(missing.headers.get("x-request-id"), "and 404s");
  });
});

describe("readiness, distinct from liveness", () => {
  it("/readyz answers 200 when the store answers and the read models are at its head; 503 otherwise, while /healthz stays 200", async () => {
    const ready = await callJson(`${master.url}/readyz`, "GET", {});
    assert.equal(ready.status, 200);
    assert.equal(ready.body.ready, true);
    try {
      headMode = "ahead";
      const behind = await callJson(`${master.url}/readyz`, "GET", {});
      assert.equal(behind.status, 503);
      assert.match(String(behind.body.reason), /catching up/);
      headMode = "down";
      const down = await callJson(`${master.url}/readyz`, "GET", {});
      assert.equal(down.status, 503);
      assert.equal(down.body.reason, "the event store does not answer");
      assert.equal((await fetch(`${master.url}/healthz`)).status, 200, "liveness is not readiness");
    } finally {
      headMode = "real";
    }
    assert.equal((await fetch(`${master.url}/readyz`)).status, 200);
  });
});

describe("metrics", () => {
  it("/metrics parses as Prometheus text with requests by route and status, latency, log position and lag, instances, allocations, nodes", async () => {
    await callJson(`${master.url}/v1/requests`, "POST", as.user("alice"), { releaseUrl: "file:///software/x", reference: "db" });
    const response = await fetch(`${master.url}/metrics`, { headers: as.metrics() });
    assert.equal(response.status, 200);
    assert.match(response.headers.get("content-type") ?? "", /^text\/plain; version=0\.0\.4/);
    const text = await response.text();
    const families = new Map(parsePrometheusTextFormat(text).map((f) => [f.name, f]));
    const requests = families.get("slap_http_requests_total");
    assert.equal(requests?.type, "COUNTER");
    assert.ok(requests.metrics.some((m) => m.labels?.route === "/v1/requests" && m.labels.status === "202" && Number(m.value) >= 1), JSON.stringify(requests.metrics));
    assert.ok(requests.metrics.some((m) => m.labels?.route === "(none)" && m.labels.status === "404"), `unknown routes counted under (none): ${JSON.stringify(requests.metrics)}`);
    const latency = families.get("slap_http_request_duration_seconds");
    assert.equal(latency?.type, "HISTOGRAM");
    assert.ok(latency.metrics.some((m) => m.buckets?.["+Inf"] !== undefined));
    // The parser keeps a histogram's buckets only: its labelled count, read from the text.
    assert.match(text, /^slap_http_request_duration_seconds_count\{method="POST",route="\/v1\/requests"\} [1-9]/m);
    assert.equal(Number(families.get("slap_read_model_position")?.metrics[0]?.value), master.master.position);
    assert.equal(Number(families.get("slap_read_model_lag")?.metrics[0]?.value), 0);
    assert.equal(Number(families.get("slap_log_head")?.metrics[0]?.value), await store.head());
    assert.equal(Number(families.get("slap_instances")?.metrics.find((m) => m.labels?.status === "pending")?.value), 1);
    assert.equal(Number(families.get("slap_allocations")?.metrics[0]?.value), 0);
    assert.deepEqual(families.get("slap_nodes")?.metrics.map((m) => m.labels?.liveness).sort(), ["responsive", "unknown", "unresponsive"]);
  });

  it("admin may read it too; a user may not; a metrics token may read nothing else", async () => {
    assert.equal((await fetch(`${master.url}/metrics`, { headers: as.admin() })).status, 200);
    assert.equal((await fetch(`${master.url}/metrics`, { headers: as.user("alice") })).status, 403);
    assert.equal((await fetch(`${master.url}/metrics`)).status, 401);
    assert.equal((await fetch(`${master.url}/v1/instances`, { headers: as.metrics() })).status, 403);
  });
});

describe("tokens without a restart", () => {
  const BOB = "token-of-bob-added-later-0123";
  const bob = { authorization: `Bearer ${BOB}` };

  it("a token added to the file is accepted, without a restart", async () => {
    assert.equal((await fetch(`${master.url}/v1/whoami`, { headers: bob })).status, 401);
    const file = JSON.parse(readFileSync(tokens, "utf8")) as { tokens: unknown[] };
    writeFileSync(`${tokens}.tmp`, JSON.stringify({ tokens: [...file.tokens, { role: "user", user: "bob", sha256: sha256Of(BOB), name: "bob's laptop" }] }));
    renameSync(`${tokens}.tmp`, tokens);
    await eventually("bob's token to be accepted", async () => ((await fetch(`${master.url}/v1/whoami`, { headers: bob })).status === 200 ? true : undefined));
  });

  it("a broken token file keeps the tokens the master had, and says so in its log", async () => {
    const good = readFileSync(tokens, "utf8");
    try {
      writeFileSync(tokens, "{ not json");
      await eventually("the refusal to be logged", () => Promise.resolve(captured.lines.some((l) => l.msg === "token file not reloaded: keeping the tokens it had") ? true : undefined));
      assert.equal((await fetch(`${master.url}/v1/whoami`, { headers: bob })).status, 200);
    } finally {
      writeFileSync(tokens, good);
    }
  });

  it("slap token list shows ids, roles and names, never a secret; slap token revoke refuses the token at once", async () => {
    const cli = async (...argv: string[]) => {
      const t = fakeIo({ SLAP_MASTER: master.url, SLAP_TOKEN: testToken.admin });
      const code = await main(argv, t.io);
      return { code, stdout: t.stdout(), stderr: t.stderr() };
    };
    const listed = await cli("token", "list", "--json");
    assert.equal(listed.code, 0, listed.stderr);
    const list = JSON.parse(listed.stdout) as { tokens: Array<{ id: string; role: string; user?: string; name?: string }> };
    const entry = list.tokens.find((t) => t.user === "bob")!;
    assert.deepEqual(entry, { id: sha256Of(BOB).slice(0, 16), role: "user", user: "bob", name: "bob's laptop" });
    assert.ok(!listed.stdout.includes(BOB) && !listed.stdout.includes(sha256Of(BOB)) && !listed.stdout.includes(testToken.admin), "no secret, no whole hash");
    const table = await cli("token", "list");
    assert.match(table.stdout, new RegExp(`${entry.id} +user +bob +bob's laptop`));

    const revoked = await cli("token", "revoke", entry.id);
    assert.equal(revoked.code, 0, revoked.stderr);
    assert.equal((await fetch(`${master.url}/v1/whoami`, { headers: bob })).status, 401, "refused from the answer on");
    assert.ok(!readFileSync(tokens, "utf8").includes(sha256Of(BOB)), "gone from the file");
    const again = await cli("token", "revoke", entry.id);
    assert.equal(again.code, 1);
    assert.match(again.stderr, /no token/);
    const admin = list.tokens.find((t) => t.role === "admin")!;
    const last = await cli("token", "revoke", admin.id);
    assert.equal(last.code, 1);
    assert.match(last.stderr, /last admin token/);
  });
});
