import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { MasterClient } from "./client.js";
import { outcomeOf, settle } from "./instances.js";
import { fakeIo, json, scriptedFetch, sse } from "./io.fixture.js";
import { main } from "./main.js";

const pending = (reason: string) => ({ status: "pending" as const, instanceId: "I1", reference: "db", reason, retryAfterMs: 1000 });
const ready = { status: "ready", instanceId: "I1", reference: "db", connection: { url: "http://10.0.0.1:80", "pass=word": "a=b" } };
const body = { releaseUrl: "rel", reference: "db", softwareType: "default", parameters: {}, sla: {}, shared: false, state: "started" as const };
const TOKEN = "token-of-the-caller-0123";
const connection = { master: "http://m:1", token: TOKEN };
/** An environment with no token at all: SLAP_DATA names a folder without an admin.token. */
const tokenless = { SLAP_DATA: "/nonexistent/slap-request-test" };

describe("the outcome of a request", () => {
  it("exits 0 with key = value lines when ready, 2 with the reason while pending, 0 when destroyed", () => {
    assert.deepEqual(outcomeOf({ status: "ready", instanceId: "I1", reference: "db", connection: { b: "2", a: "x=y" } }, false), {
      code: 0,
      stdout: ["a = x=y", "b = 2"],
      stderr: ["ready: db [I1]"],
    });
    assert.deepEqual(outcomeOf(pending("no computer has rel installed"), false), { code: 2, stdout: ["pending: no computer has rel installed"], stderr: [] });
    assert.equal(outcomeOf({ status: "destroyed", instanceId: "I1", reference: "db" }, false).code, 0);
  });

  it("prints exactly one JSON object with --json, and nothing on stderr", () => {
    const ask = outcomeOf(pending("waiting"), true);
    assert.equal(ask.code, 2);
    assert.equal(ask.stdout.length, 1);
    assert.deepEqual(JSON.parse(ask.stdout[0]!), { status: "pending", instance: "I1", connection: null, reason: "waiting", blocked: null });
    const done = outcomeOf({ status: "ready", instanceId: "I1", reference: "db", connection: { a: "1" } }, true);
    assert.equal(done.code, 0);
    assert.deepEqual(JSON.parse(done.stdout[0]!), { status: "ready", instance: "I1", connection: { a: "1" }, reason: null, blocked: null });
    assert.deepEqual(JSON.parse(outcomeOf({ status: "destroyed", instanceId: "I1", reference: "db" }, true).stdout[0]!), {
      status: "destroyed",
      instance: "I1",
      connection: null,
      reason: null,
      blocked: null,
    });
    assert.deepEqual([ask.stderr, done.stderr], [[], []]);
  });

  it("exits 1 with the cause when the request is blocked, still pending", () => {
    const blocked = { ...pending("unknown SLA key colour"), blocked: "unknown SLA key colour (known: computer_guid)" };
    const text = outcomeOf(blocked, false);
    assert.equal(text.code, 1);
    assert.match(text.stderr.join("\n"), /blocked: unknown SLA key colour/);
    const line = JSON.parse(outcomeOf(blocked, true).stdout[0]!) as { status: string; blocked: string };
    assert.deepEqual([line.status, line.blocked], ["pending", blocked.blocked]);
  });
});

describe("waiting for a request", () => {
  it("stops waiting at a blocked answer", async () => {
    const blocked = { ...pending("x"), blocked: "release r failed to install on C1" };
    const { fetchImpl } = scriptedFetch(
      () => json(202, pending("not placed")),
      (_url, init) => sse([{ event: "answer", data: pending("not placed") }, { event: "answer", data: blocked }], init),
    );
    const result = await settle(new MasterClient(connection, fetchImpl), body, { timeoutMs: 5_000, stop: new AbortController().signal, onAnswer: () => undefined });
    assert.deepEqual(result, { answer: blocked, timedOut: false, interrupted: false });
  });

  it("watches the instance after a pending answer until it is ready", async () => {
    const seen: string[] = [];
    const { fetchImpl, calls } = scriptedFetch(
      () => json(202, pending("not placed")),
      (_url, init) => sse([{ event: "answer", data: pending("not placed") }, { event: "answer", data: pending("allocated to C/p") }, { event: "answer", data: ready }], init),
    );
    const result = await settle(new MasterClient(connection, fetchImpl), body, {
      timeoutMs: 5_000,
      stop: new AbortController().signal,
      onAnswer: (a) => seen.push(a.status === "pending" ? a.reason : a.status),
    });
    assert.deepEqual(result, { answer: ready, timedOut: false, interrupted: false });
    assert.deepEqual(seen, ["not placed", "not placed", "allocated to C/p", "ready"]);
    assert.equal(calls[1]?.url.pathname, "/v1/instances/I1/watch");
    assert.equal(calls[1]?.url.searchParams.get("secrets"), "1");
    assert.equal(calls[0]?.headers.authorization, `Bearer ${TOKEN}`);
    assert.equal(calls[1]?.headers.authorization, `Bearer ${TOKEN}`, "the watch carries the token too");
  });

  it("falls back on long polls when the watch is refused", async () => {
    const { fetchImpl, calls } = scriptedFetch(
      () => json(202, pending("a")),
      () => json(404, { error: { code: "NotFound", message: "no route GET /v1/instances/I1/watch" } }),
      () => json(202, pending("b")),
      () => json(200, ready),
    );
    const result = await settle(new MasterClient(connection, fetchImpl), body, { timeoutMs: 5_000, stop: new AbortController().signal, onAnswer: () => undefined });
    assert.equal(result.answer.status, "ready");
    assert.deepEqual(
      calls.map((call) => `${call.method} ${call.url.pathname}`),
      ["POST /v1/requests", "GET /v1/instances/I1/watch", "POST /v1/requests", "POST /v1/requests"],
    );
    for (const call of calls.slice(2)) {
      const wait = Number(call.url.searchParams.get("wait"));
      assert.ok(wait > 4_000 && wait <= 5_000, `a long poll waits what remains of the timeout, not ${wait} ms`);
    }
  });

  it("falls back on a long poll when the master ends the watch", async () => {
    const { fetchImpl, calls } = scriptedFetch(
      () => json(202, pending("a")),
      (_url, init) => sse([{ event: "answer", data: pending("b") }], init, { end: true }),
      () => json(200, ready),
    );
    const result = await settle(new MasterClient(connection, fetchImpl), body, { timeoutMs: 5_000, stop: new AbortController().signal, onAnswer: () => undefined });
    assert.equal(result.answer.status, "ready");
    assert.equal(calls.length, 3);
  });

  it("gives up with the last pending answer when the time is up", async () => {
    const { fetchImpl } = scriptedFetch(
      () => json(202, pending("a")),
      (_url, init) => sse([{ event: "answer", data: pending("still not placed") }], init),
    );
    const result = await settle(new MasterClient(connection, fetchImpl), body, { timeoutMs: 100, stop: new AbortController().signal, onAnswer: () => undefined });
    assert.deepEqual(result, { answer: pending("still not placed"), timedOut: true, interrupted: false });
  });

  it("stops at once when interrupted", async () => {
    const stop = new AbortController();
    const { fetchImpl } = scriptedFetch(
      () => json(202, pending("a")),
      (_url, init) => {
        setTimeout(() => stop.abort(), 20);
        return sse([], init);
      },
    );
    const result = await settle(new MasterClient(connection, fetchImpl), body, { timeoutMs: 60_000, stop: stop.signal, onAnswer: () => undefined });
    assert.deepEqual(result, { answer: pending("a"), timedOut: false, interrupted: true });
  });
});

describe("slap request", () => {
  it("with --no-wait --json asks once: exit 2 and the pending object, then exit 0 and the ready one", async () => {
    const first = fakeIo(tokenless, { fetch: scriptedFetch(() => json(202, pending("no computer has rel installed"))).fetchImpl });
    assert.equal(await main(["request", "rel", "db", "--no-wait", "--json"], first.io), 2);
    assert.deepEqual(JSON.parse(first.stdout()), { status: "pending", instance: "I1", connection: null, reason: "no computer has rel installed", blocked: null });
    assert.equal(first.stderr(), "");
    const second = fakeIo(tokenless, { fetch: scriptedFetch(() => json(200, ready)).fetchImpl });
    assert.equal(await main(["request", "rel", "db", "--no-wait", "--json"], second.io), 0);
    assert.deepEqual(JSON.parse(second.stdout()), { status: "ready", instance: "I1", connection: ready.connection, reason: null, blocked: null });
  });

  it("sends the parsed body and the token of SLAP_TOKEN", async () => {
    const { fetchImpl, calls } = scriptedFetch(() => json(200, ready));
    const t = fakeIo({ ...tokenless, SLAP_TOKEN: "token-of-alice-0123456789" }, { fetch: fetchImpl });
    assert.equal(await main(["request", "rel", "db", "--param", "a=b=c", "--sla", "computer_guid=C1", "--type", "t", "--no-wait"], t.io), 0);
    assert.deepEqual(calls[0]?.body, { releaseUrl: "rel", reference: "db", softwareType: "t", parameters: { a: "b=c" }, sla: { computer_guid: "C1" }, shared: false, state: "started" });
    assert.equal(calls[0]?.headers.authorization, "Bearer token-of-alice-0123456789");
    assert.equal(t.stdout(), "pass=word = a=b\nurl = http://10.0.0.1:80\n");
  });

  it("sends no authorization header without a token, and the master's 401 comes with the hint", async () => {
    const { fetchImpl, calls } = scriptedFetch(() =>
      json(401, { error: { code: "Unauthorized", message: "missing credentials: send the header Authorization: Bearer <token>" } }),
    );
    const t = fakeIo(tokenless, { fetch: fetchImpl });
    assert.equal(await main(["request", "rel", "db", "--no-wait"], t.io), 1);
    assert.equal(calls[0]?.headers.authorization, undefined);
    assert.equal(
      t.stderr(),
      "slap request: Unauthorized: missing credentials: send the header Authorization: Bearer <token> (the master at http://127.0.0.1:8080 refused it; give your token with SLAP_TOKEN, --token-file or SLAP_TOKEN_FILE, and --master or SLAP_MASTER for another master)\n",
    );
  });

  it("waits printing each new pending reason once when stderr is not a terminal", async () => {
    const t = fakeIo(tokenless, {
      fetch: scriptedFetch(
        () => json(202, pending("not placed")),
        (_url, init) => sse([{ event: "answer", data: pending("not placed") }, { event: "answer", data: pending("allocated") }, { event: "answer", data: ready }], init),
      ).fetchImpl,
    });
    assert.equal(await main(["request", "rel", "db"], t.io), 0);
    assert.equal(t.stderr(), "pending: not placed\npending: allocated\nready: db [I1]\n");
    assert.equal(t.stdout(), "pass=word = a=b\nurl = http://10.0.0.1:80\n");
  });

  it("exits 2 when still pending after --timeout", async () => {
    const t = fakeIo(tokenless, {
      fetch: scriptedFetch(
        () => json(202, pending("not placed")),
        (_url, init) => sse([], init),
      ).fetchImpl,
    });
    assert.equal(await main(["request", "rel", "db", "--timeout", "0.1", "--json"], t.io), 2);
    assert.deepEqual(JSON.parse(t.stdout()), { status: "pending", instance: "I1", connection: null, reason: "not placed", blocked: null });
  });

  it("reports the master's rejection as one line, exit 1", async () => {
    const t = fakeIo(tokenless, {
      fetch: scriptedFetch(() => json(409, { error: { code: "Conflict", message: "db is an instance of another release" } })).fetchImpl,
    });
    assert.equal(await main(["request", "rel", "db", "--no-wait"], t.io), 1);
    assert.equal(t.stderr(), "slap request: Conflict: db is an instance of another release\n");
  });
});
