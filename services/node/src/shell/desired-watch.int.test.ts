import assert from "node:assert/strict";
import { createServer, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { after, before, describe, it } from "node:test";
import { captureLogger, eventually } from "@slap/testkit";
import { DesiredWatch } from "./desired-watch.js";
import { MasterClient, type DesiredState } from "./master-client.js";

const TOKEN = "token-of-the-node-0123456789";

/** A desired state of C1 at `revision`; `parameters` as given (a number is what a broken master would send). */
function document(revision: number, parameters: unknown = { title: "hello" }): unknown {
  const instance = { instanceId: "I1", treeId: "I1", reference: "site", releaseUrl: "file:///r", softwareType: "default", parameters, requestedState: "started", serial: revision, destroyed: false, sharedInstances: [], requested: [] };
  return { computerId: "C1", revision, position: revision, partitions: [{ partitionId: "slappart0", address: "10.0.0.1", ports: { from: 20_000, to: 20_099 }, revision, instance }], software: [] };
}

/**
 * A master's desired-state route over real HTTP, serving what the test sets: a blocking query
 * (`?index=`) is answered when the document's revision passes it, or at its `wait`.
 */
class DesiredServer {
  private current: unknown = document(1);
  private readonly waiting = new Set<{ index: number; respond: () => void }>();
  readonly queries: string[] = [];
  private readonly server = createServer((request, response) => {
    const url = new URL(request.url ?? "/", "http://x");
    this.queries.push(url.search);
    if (request.headers.authorization !== `Bearer ${TOKEN}` || url.pathname !== "/v1/computers/C1/desired") return this.send(response, 404, { error: { code: "NotFound", message: "no" } });
    const index = url.searchParams.get("index");
    if (index === null || this.revision() > Number(index)) return this.send(response, 200, this.current);
    const waiter = { index: Number(index), respond: () => (clearTimeout(timer), this.waiting.delete(waiter), this.send(response, 200, this.current)) };
    const timer = setTimeout(waiter.respond, Number(url.searchParams.get("wait") ?? 0));
    this.waiting.add(waiter);
  });

  private revision(): number {
    return (this.current as { revision: number }).revision;
  }

  private send(response: ServerResponse, status: number, body: unknown): void {
    response.writeHead(status, { "content-type": "application/json" }).end(JSON.stringify(body));
  }

  set(next: unknown): void {
    this.current = next;
    for (const waiter of [...this.waiting]) if (this.revision() > waiter.index) waiter.respond();
  }

  async listen(): Promise<string> {
    await new Promise<void>((resolve) => this.server.listen(0, "127.0.0.1", resolve));
    return `http://127.0.0.1:${(this.server.address() as AddressInfo).port}`;
  }

  async close(): Promise<void> {
    for (const waiter of [...this.waiting]) waiter.respond();
    this.server.closeAllConnections();
    await new Promise((resolve) => this.server.close(resolve));
  }
}

describe("the node's watch of its desired state", () => {
  const server = new DesiredServer();
  const { logger, lines } = captureLogger();
  const seen: DesiredState[] = [];
  let watch: DesiredWatch;

  before(async () => {
    const url = await server.listen();
    watch = new DesiredWatch(new MasterClient(url, "C1", TOKEN), logger, (state) => seen.push(state), 5_000);
    await watch.start();
  });
  after(async () => {
    await watch.stop();
    await server.close();
  });

  it("reads the state, then blocks on a newer revision and hands on each new one", async () => {
    assert.deepEqual(seen.map((s) => s.revision), [1]);
    await eventually("a blocking query on revision 1", () => Promise.resolve(server.queries.some((q) => q.includes("index=1")) ? true : undefined));
    server.set(document(2));
    await eventually("revision 2 handed on", () => Promise.resolve(seen.length === 2 ? true : undefined));
    assert.equal(watch.current?.revision, 2);
  });

  it("refuses a state that does not parse, with a log line naming the field, and keeps the last good one", async () => {
    server.set(document(3, 5));
    const refusal = await eventually("the refusal logged", () => Promise.resolve(lines.find((l) => String(l.msg).startsWith("desired state refused"))));
    assert.match(String(refusal.msg), /partitions\.0\.instance\.parameters/);
    assert.equal(refusal.level, 50);
    assert.equal(watch.current?.revision, 2, "the last good state is kept");
    assert.equal(seen.length, 2, "nothing was handed on");
    // Fixed on the master: the next good state is taken.
    server.set(document(4));
    await eventually("revision 4 handed on", () => Promise.resolve(watch.current?.revision === 4 ? true : undefined));
    assert.deepEqual(seen.map((s) => s.revision), [1, 2, 4]);
    assert.equal(lines.filter((l) => String(l.msg).startsWith("desired state refused")).length, 1, "logged once, not at every try");
  });
});
