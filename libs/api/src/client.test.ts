import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { MasterClient } from "./client.js";
import { MasterRejected, MasterTimedOut, MasterUnreachable, UnexpectedAnswer } from "./errors.js";

const json = (status: number, body: unknown) => new Response(JSON.stringify(body), { status, headers: { "content-type": "application/json" } });

/** A client whose `fetch` answers with `answer`, recording each call. */
function clientAnswering(answer: (url: URL, init: RequestInit) => Response | Promise<Response>) {
  const calls: Array<{ url: URL; init: RequestInit }> = [];
  const fetchImpl = (async (input: string | URL | Request, init: RequestInit = {}) => {
    const url = new URL(typeof input === "string" ? input : input instanceof URL ? input.href : input.url);
    calls.push({ url, init });
    return answer(url, init);
  }) as typeof fetch;
  return { client: new MasterClient({ master: "http://master:1/", token: "token-0123456789abcdef", fetch: fetchImpl }), calls };
}

describe("the master client", () => {
  it("calls a route of the table: its method, its path with the parameters encoded, the query, the body, the token and the call's headers", async () => {
    const { client, calls } = clientAnswering(() => json(200, { instanceId: "I 1", position: 7 }));
    const answer = await client.call("bang", { params: { instanceId: "I 1" }, body: { message: "why" } }, { headers: { "x-slap-partition": "C/p" } });
    assert.deepEqual(answer, { instanceId: "I 1", position: 7 });
    const [call] = calls;
    assert.equal(call?.init.method, "POST");
    assert.equal(call?.url.href, "http://master:1/v1/instances/I%201/bang");
    assert.equal(call?.init.body, JSON.stringify({ message: "why" }));
    assert.deepEqual(call?.init.headers, { accept: "application/json", "x-slap-partition": "C/p", authorization: "Bearer token-0123456789abcdef", "content-type": "application/json" });
  });

  it("parses a pending answer (202) and a ready one (200) with the table's schema", async () => {
    const pending = { status: "pending", instanceId: "I", reference: "r", reason: "no computer", retryAfterMs: 1000 };
    const { client, calls } = clientAnswering(() => json(202, pending));
    assert.deepEqual(await client.request({ releaseUrl: "file:///r", reference: "r" }, { waitMs: 500 }), pending);
    assert.equal(calls[0]?.url.searchParams.get("wait"), "500");
  });

  it("says a refusal with the master's code and issues; retryable only for a 5xx", async () => {
    const refused = clientAnswering(() => json(400, { error: { code: "BadRequest", message: "invalid body", issues: [{ path: "reference", message: "too long" }] } }));
    await assert.rejects(refused.client.instances(), (error: unknown) => {
      assert.ok(error instanceof MasterRejected);
      assert.deepEqual([error.status, error.code, error.retryable, error.message], [400, "BadRequest", false, "BadRequest: invalid body (reference: too long)"]);
      return true;
    });
    const failing = clientAnswering(() => json(500, { error: { code: "Internal", message: "logged" } }));
    await assert.rejects(failing.client.instances(), { name: "MasterRejected", status: 500, retryable: true });
  });

  it("says an answer the table does not promise is unexpected: a status it does not list, a shape that does not parse", async () => {
    const created = clientAnswering(() => json(201, { instances: [], trees: [] }));
    await assert.rejects(created.client.instances(), (error: unknown) => error instanceof UnexpectedAnswer && error.status === 201 && !error.retryable);
    const proxy = clientAnswering(() => new Response("<html>bad gateway</html>", { status: 502 }));
    await assert.rejects(proxy.client.computers(), { name: "UnexpectedAnswer", status: 502, retryable: true, message: "unexpected answer from the master to GET /v1/computers: HTTP 502 <html>bad gateway</html>" });
  });

  it("says a master that does not answer is unreachable, or timed out, and that retrying may help", async () => {
    const down = clientAnswering(() => Promise.reject(new TypeError("fetch failed")));
    await assert.rejects(down.client.instances(), (error: unknown) => error instanceof MasterUnreachable && error.status === 0 && error.retryable);
    // A master that never answers (the timer keeps the test's event loop alive: AbortSignal.timeout's does not).
    const slow = clientAnswering(
      (_url, init) =>
        new Promise((_, reject) => {
          const alive = setTimeout(() => undefined, 5_000);
          init.signal?.addEventListener("abort", () => {
            clearTimeout(alive);
            reject(init.signal?.reason as Error);
          });
        }),
    );
    await assert.rejects(slow.client.call("listInstances", {}, { timeoutMs: 20 }), (error: unknown) => {
      assert.ok(error instanceof MasterTimedOut);
      assert.deepEqual([error.code, error.retryable, error.message], ["Timeout", true, "the master at http://master:1 did not answer GET /v1/instances within 0 s"]);
      return true;
    });
  });

  it("says a master whose answer stops half-way past the timeout timed out, not that it is unreachable", async () => {
    // Headers come at once; the body never ends, and the response follows the request's signal as fetch's does.
    const stalled = clientAnswering((_url, init) => {
      const alive = setTimeout(() => undefined, 5_000);
      const body = new ReadableStream<Uint8Array>({
        start(controller) {
          controller.enqueue(new TextEncoder().encode('{"instances":'));
          init.signal?.addEventListener("abort", () => {
            clearTimeout(alive);
            controller.error(init.signal?.reason);
          });
        },
      });
      return Promise.resolve(new Response(body, { status: 200, headers: { "content-type": "application/json" } }));
    });
    await assert.rejects(stalled.client.call("listInstances", {}, { timeoutMs: 20 }), (error: unknown) => error instanceof MasterTimedOut && error.retryable);
  });

  it("reads a stream's events of its name, parsed, until the signal aborts", async () => {
    const stop = new AbortController();
    const encoder = new TextEncoder();
    const record = { position: 3, streamKey: "tree.T.instance.I", event: { id: "E", type: "InstanceBanged", time: "2026-01-01T00:00:00Z", correlationId: "C" } };
    const { client, calls } = clientAnswering(
      () =>
        new Response(
          new ReadableStream({
            start(controller) {
              controller.enqueue(encoder.encode(`: connected\n\nevent: other\ndata: {}\n\nevent: event\ndata: ${JSON.stringify(record)}\n\n`));
            },
          }),
          { status: 200, headers: { "content-type": "text/event-stream" } },
        ),
    );
    const got: unknown[] = [];
    for await (const event of client.eventStream({ after: 2 }, stop.signal)) {
      got.push(event);
      stop.abort();
      break;
    }
    assert.deepEqual(got, [record]);
    assert.equal(calls[0]?.url.searchParams.get("after"), "2");
  });
});
