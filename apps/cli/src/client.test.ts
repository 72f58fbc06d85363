import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { createServer } from "node:net";
import { MasterClient } from "./client.js";
import { fakeIo, json, scriptedFetch, sse } from "./io.fixture.js";
import { main } from "./main.js";
import { instanceView } from "./views.fixture.js";

const connection = { master: "http://m:1", token: "token-of-the-caller-0123" };
/** An environment with no token at all: SLAP_DATA names a folder without an admin.token. */
const tokenless = { SLAP_DATA: "/nonexistent/slap-client-test" };

async function collect<T>(items: AsyncIterable<T>): Promise<T[]> {
  const out: T[] = [];
  for await (const item of items) out.push(item);
  return out;
}

describe("the master client", () => {
  it("reports the master's error with its code and issue paths", async () => {
    const { fetchImpl } = scriptedFetch(() =>
      json(400, { error: { code: "BadRequest", message: "invalid request body", issues: [{ path: "parameters.x", message: "too long" }] } }),
    );
    await assert.rejects(new MasterClient(connection, fetchImpl).instances(), {
      name: "MasterRejected",
      message: "BadRequest: invalid request body (parameters.x: too long)",
    });
  });

  it("reports an answer that is not what API.md promises, naming the path", async () => {
    const { fetchImpl } = scriptedFetch(
      () => json(200, { instances: [{ instanceId: 1 }], trees: [] }),
      () => new Response("<html>proxy error</html>", { status: 502 }),
      () => new Response("not json", { status: 200 }),
    );
    const client = new MasterClient(connection, fetchImpl);
    await assert.rejects(client.instances(), { name: "UnexpectedAnswer", message: /^unexpected answer from the master to GET \/v1\/instances: instances\.0\.instanceId: / });
    await assert.rejects(client.computers(), { name: "UnexpectedAnswer", message: "unexpected answer from the master to GET /v1/computers: HTTP 502 <html>proxy error</html>" });
    await assert.rejects(client.computers(), { name: "UnexpectedAnswer", message: /HTTP 200, not JSON: not json$/ });
  });

  it("sends the token as a bearer on every call, and adds a hint to a 401", async () => {
    const unauthorized = () => json(401, { error: { code: "Unauthorized", message: "header authorization: unknown token" } });
    const { fetchImpl, calls } = scriptedFetch(() => json(200, { instances: [], trees: [] }), unauthorized, unauthorized);
    const client = new MasterClient(connection, fetchImpl);
    await client.instances();
    await assert.rejects(client.computers(), {
      name: "MasterRejected",
      message: `Unauthorized: header authorization: unknown token (the master at ${connection.master} refused it; give your token with SLAP_TOKEN, --token-file or SLAP_TOKEN_FILE, and --master or SLAP_MASTER for another master)`,
    });
    await assert.rejects(collect(client.eventStream({}, new AbortController().signal)), { name: "MasterRejected", status: 401 });
    assert.deepEqual(
      calls.map((c) => c.headers.authorization),
      Array.from({ length: 3 }, () => "Bearer token-of-the-caller-0123"),
    );
  });

  it("says the master cannot be reached when the connection is refused", async () => {
    const server = createServer();
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    const { port } = server.address() as { port: number };
    await new Promise<void>((resolve) => server.close(() => resolve()));
    const client = new MasterClient({ master: `http://127.0.0.1:${port}` });
    await assert.rejects(client.instances(), {
      name: "MasterUnreachable",
      message: `cannot reach the master at http://127.0.0.1:${port} (is it running? slap master)`,
    });
  });
});

describe("slap events", () => {
  const record = (position: number, type = "InstanceRequested") => ({
    position,
    streamKey: "tree.T.instance.I",
    event: { id: `E${position}`, type, time: "2025-01-01T00:00:00Z", correlationId: "C", data: {} },
  });

  it("pages through the log with next until it stops moving", async () => {
    const { fetchImpl, calls } = scriptedFetch(
      () => json(200, { events: [record(1), record(2)], next: 2 }),
      () => json(200, { events: [record(3)], next: 3 }),
      () => json(200, { events: [], next: 3 }),
    );
    const t = fakeIo(tokenless, { fetch: fetchImpl });
    assert.equal(await main(["events", "--tree", "T", "--type", "InstanceRequested", "--json"], t.io), 0);
    assert.deepEqual(
      t.stdout().trim().split("\n").map((line) => (JSON.parse(line) as { position: number }).position),
      [1, 2, 3],
    );
    assert.deepEqual(
      calls.map((c) => Object.fromEntries(c.url.searchParams)),
      [0, 2, 3].map((after) => ({ filter: "tree.T.>", type: "InstanceRequested", after: String(after), limit: "1000" })),
    );
  });

  it("--follow goes on with the live stream after the last page, until stopped", async () => {
    const t = fakeIo(tokenless, {
      fetch: scriptedFetch(
        () => json(200, { events: [record(1)], next: 1 }),
        () => json(200, { events: [], next: 1 }),
        (url, init) => {
          assert.equal(url.pathname, "/v1/events/stream");
          assert.equal(url.searchParams.get("after"), "1");
          setTimeout(() => t.stop(), 30);
          return sse([{ event: "event", data: record(2, "PartitionAllocated") }], init);
        },
      ).fetchImpl,
    });
    assert.equal(await main(["events", "--follow"], t.io), 0);
    assert.match(t.stdout(), /^#1 .*InstanceRequested.*\n#2 .*PartitionAllocated .*\n$/);
  });
});

describe("slap show and slap bang", () => {
  it("say in the user's terms that no instance has that reference", async () => {
    const t = fakeIo({ ...tokenless, SLAP_TOKEN: "token-of-bob-0123456789" }, {
      fetch: scriptedFetch(
        () => json(404, { error: { code: "NotFound", message: "no instance 39MWCV" } }),
        () => json(200, { instances: [], trees: [] }),
      ).fetchImpl,
    });
    assert.equal(await main(["show", "my db"], t.io), 1);
    assert.equal(t.stderr(), 'slap show: you have requested no instance under the reference "my db" (see slap instances)\n');
  });

  it("bang finds the instance by its reference, then bangs it with the message", async () => {
    const instance = instanceView({ instanceId: "I1", reference: "my db" });
    const { fetchImpl, calls } = scriptedFetch(
      () => json(200, { instance, answer: { status: "pending", instanceId: "I1", reference: "my db", reason: "r", retryAfterMs: 1000 }, sharedInstances: [] }),
      () => json(200, { instanceId: "I1", position: 42 }),
    );
    const t = fakeIo(tokenless, { fetch: fetchImpl });
    assert.equal(await main(["bang", "my db", "--message", "config changed"], t.io), 0);
    assert.deepEqual(
      calls.map((c) => [c.method, c.url.pathname, c.body]),
      [
        ["GET", "/v1/references/my%20db", undefined],
        ["POST", "/v1/instances/I1/bang", { message: "config changed" }],
      ],
    );
    assert.equal(t.stdout(), "banged my db [I1] (log position 42)\n");
  });
});
