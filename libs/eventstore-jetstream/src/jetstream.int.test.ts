import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import { JetStreamApiError, StorageType, jetstream, jetstreamManager } from "@nats-io/jetstream";
import { connect, type NatsConnection } from "@nats-io/transport-node";
import {
  EventStoreError,
  EventValidationError,
  WrongExpectedVersionError,
  type Commit,
  type DomainEvent,
} from "@slap/events";
import { captureLogger, eventStoreContract, fixtures, startNatsServer, type NatsServer } from "@slap/testkit";
import { JetStreamEventStore } from "./store.js";

let streams = 0;
const nextNames = (): { streamName: string; subjectPrefix: string } => {
  streams += 1;
  return { streamName: `T${streams}`, subjectPrefix: `t${streams}.ev` };
};

eventStoreContract("jetstream", async () => {
  const server = await startNatsServer();
  const raw = await connect({ servers: server.url });
  const js = jetstream(raw);
  return {
    async open() {
      const names = nextNames();
      const captured = captureLogger();
      const connectStore = () => JetStreamEventStore.connect({ servers: server.url, ...names, logger: captured.logger });
      let store = await connectStore();
      return {
        store,
        captured,
        reopen: async () => {
          await store.close();
          store = await connectStore();
          return store;
        },
        injectRaw: async (streamKey, body) => {
          await js.publish(`${names.subjectPrefix}.${streamKey}`, body);
        },
      };
    },
    async dispose() {
      await raw.close();
      await server.dispose();
    },
  };
});

async function collect(iterable: AsyncIterable<Commit>): Promise<Commit[]> {
  const out: Commit[] = [];
  for await (const commit of iterable) out.push(commit);
  return out;
}

const ids = (commits: Commit[]): string[] => fixtures.idsOf(commits);

/**
 * Resolves when `nc` has reconnected. Wait for it before using a connection across a server
 * restart: the client drops what is published while it reconnects, so a request made then
 * times out (the store reports it as a retryable error).
 */
async function reconnectOf(nc: NatsConnection): Promise<void> {
  for await (const status of nc.status()) if (status.type === "reconnect") return;
}

describe("jetstream event store on a real nats-server", () => {
  let server: NatsServer;
  let admin: NatsConnection;
  const toClose: Array<{ close(): Promise<unknown> }> = [];
  const open = async (options: { nc?: NatsConnection; duplicateWindowMs?: number; names?: ReturnType<typeof nextNames> } = {}) => {
    const captured = captureLogger();
    const store = await JetStreamEventStore.connect({
      ...(options.nc === undefined ? { servers: server.url } : { nc: options.nc }),
      ...(options.names ?? nextNames()),
      ...(options.duplicateWindowMs === undefined ? {} : { duplicateWindowMs: options.duplicateWindowMs }),
      logger: captured.logger,
    });
    toClose.push(store);
    return { store, captured };
  };

  before(async () => {
    server = await startNatsServer();
    admin = await connect({ servers: server.url, maxReconnectAttempts: -1, reconnectTimeWait: 100 });
  });
  after(async () => {
    for (const c of toClose.reverse()) await c.close();
    await admin.close();
    await server.dispose();
  });

  it("keeps every acknowledged append across a kill -9 of the server, and a retry of the unacknowledged ones writes each exactly once", async () => {
    const names = nextNames();
    const writerNc = await connect({ servers: server.url, reconnect: false });
    const { store: writer } = await open({ nc: writerNc, names });
    const events = Array.from({ length: 3_000 }, (_, i) => fixtures.instanceRequested(`K${i}`));
    const acked = new Map<string, number>();
    const failed: DomainEvent[] = [];
    let next = 0;
    const adminBack = reconnectOf(admin);
    let killed: Promise<void> | undefined;
    const worker = async (): Promise<void> => {
      while (next < events.length) {
        const event = events[next++]!;
        try {
          const { position } = await writer.append([event], { expectedVersion: 0 });
          acked.set(event.id, position);
          if (acked.size === 500) killed ??= server.stop("SIGKILL");
        } catch (error) {
          assert.ok(error instanceof EventStoreError && !(error instanceof WrongExpectedVersionError), String(error));
          assert.equal(error.retryable, true);
          failed.push(event);
        }
      }
    };
    await Promise.all(Array.from({ length: 32 }, worker));
    await killed;
    assert.ok(acked.size >= 500 && failed.length > 0, `acked ${acked.size}, failed ${failed.length}`);
    await writer.close();
    assert.ok(writerNc.isClosed());

    await server.restart();
    await adminBack;
    const { store: reader } = await open({ names });
    const stored = await collect(reader.readAll());
    const positions = new Map(stored.map((c) => [c.events[0]!.id, c.position]));
    for (const [id, position] of acked) assert.equal(positions.get(id), position, `acknowledged ${id} at ${position}`);
    assert.equal(new Set(ids(stored)).size, stored.length);

    const retried = await Promise.all(failed.map((event) => reader.append([event], { expectedVersion: 0 })));
    const duplicates = retried.filter((r) => r.duplicate).length;
    const after = ids(await collect(reader.readAll()));
    assert.equal(after.length, events.length);
    assert.deepEqual(new Set(after), new Set(events.map((e) => e.id)));
    assert.equal(duplicates, stored.length - acked.size, "written-but-unacknowledged commits are recognised as duplicates");
    const lastAcked = events.filter((e) => acked.has(e.id)).slice(-50);
    for (const event of lastAcked) {
      assert.deepEqual(await reader.append([event], { expectedVersion: 0 }), { position: acked.get(event.id), duplicate: true });
    }
  });

  it("keeps a live store and its subscription working across a server restart, with no gap or duplicate", async () => {
    const nc = await connect({ servers: server.url, maxReconnectAttempts: -1, reconnectTimeWait: 100 });
    toClose.push(nc);
    const { store } = await open({ nc });
    const first = Array.from({ length: 20 }, (_, i) => fixtures.instanceRequested(`R${i}`));
    for (const e of first) await store.append([e], { expectedVersion: 0 });
    const reconnected = Promise.all([reconnectOf(nc), reconnectOf(admin)]);
    const subscription = store.subscribe();
    const received: string[] = [];
    const done = (async () => {
      for await (const commit of subscription) {
        received.push(...ids([commit]));
        if (received.length === 40) break;
      }
    })();
    while (received.length < 20) await sleep(10);
    await server.stop("SIGKILL");
    await server.restart();
    await reconnected;
    const second = Array.from({ length: 20 }, (_, i) => fixtures.instanceRequested(`S${i}`));
    for (const e of second) {
      for (let attempt = 0; ; attempt++) {
        try {
          await store.append([e], { expectedVersion: 0 });
          break;
        } catch (error) {
          assert.ok(error instanceof EventStoreError && error.retryable && attempt < 100, String(error));
          await sleep(100);
        }
      }
    }
    await done;
    await subscription.close();
    assert.deepEqual(received, [...first, ...second].map((e) => e.id));
  });

  it("maps a publish conflict to WrongExpectedVersionError carrying the actual version and the JetStream cause", async () => {
    const { store } = await open();
    const first = fixtures.computerRegistered("COMP-1");
    const { position } = await store.append([first], { expectedVersion: 0 });
    for (const stale of [0, position + 5]) {
      await assert.rejects(store.append([fixtures.softwareSupplied("COMP-1", "file:///sr/a")], { expectedVersion: stale }), (error: unknown) => {
        assert.ok(error instanceof WrongExpectedVersionError);
        assert.equal(error.streamKey, "computer.COMP-1.computer");
        assert.equal(error.expected, stale);
        assert.equal(error.actual, position);
        assert.equal(error.retryable, true);
        assert.ok(error.cause instanceof JetStreamApiError && error.cause.code === 10071);
        return true;
      });
    }
    await assert.rejects(store.append([fixtures.instanceBanged("X")], { expectedVersion: -1 }), EventValidationError);
    await assert.rejects(store.append([fixtures.instanceBanged("X")], { expectedVersion: 1.5 }), EventValidationError);
    assert.equal(await store.head(), position);
  });

  it("counts a malformed message in its stream's version, so expected versions stay aligned with the subject", async () => {
    const names = nextNames();
    const { store, captured } = await open({ names });
    const { position } = await store.append([fixtures.instanceRequested("A")], { expectedVersion: 0 });
    const bad = await jetstream(admin).publish(`${names.subjectPrefix}.tree.A.instance.A`, "garbage");
    const slice = await store.readStream("tree.A.instance.A");
    assert.equal(slice.version, bad.seq);
    assert.deepEqual(slice.commits.map((c) => c.position), [position]);
    await assert.rejects(store.append([fixtures.instanceBanged("A")], { expectedVersion: position }), WrongExpectedVersionError);
    await store.append([fixtures.instanceBanged("A")], { expectedVersion: bad.seq });
    assert.ok(captured.lines.some((l) => l.level === 40 && l.position === bad.seq && l.streamKey === "tree.A.instance.A"));
  });

  it("creates the stream once with the configured settings and reuses it on connect, keeping its commits", async () => {
    const names = nextNames();
    const { store, captured } = await open({ names, duplicateWindowMs: 30_000 });
    await store.append([fixtures.instanceRequested("A")], { expectedVersion: 0 });
    const jsm = await jetstreamManager(admin);
    const info = await jsm.streams.info(names.streamName);
    assert.deepEqual(info.config.subjects, [`${names.subjectPrefix}.>`]);
    assert.equal(info.config.storage, StorageType.File);
    assert.equal(info.config.duplicate_window, 30_000 * 1_000_000);
    assert.equal(info.config.num_replicas, 1);
    assert.ok(captured.lines.some((l) => l.msg === "event stream created"));

    const { store: again, captured: againLog } = await open({ names, duplicateWindowMs: 60_000 });
    assert.equal(await again.head(), 1);
    assert.equal((await jsm.streams.info(names.streamName)).state.first_seq, 1);
    assert.equal((await jsm.streams.info(names.streamName)).config.duplicate_window, 30_000 * 1_000_000);
    assert.ok(!againLog.lines.some((l) => l.msg === "event stream created"));
  });

  it("refuses to reuse a stream of that name that does not capture the prefix", async () => {
    const names = nextNames();
    const jsm = await jetstreamManager(admin);
    await jsm.streams.add({ name: names.streamName, subjects: ["elsewhere.>"] });
    await assert.rejects(
      JetStreamEventStore.connect({ servers: server.url, ...names, logger: captureLogger().logger }),
      (error: unknown) => error instanceof EventStoreError && !error.retryable && /does not capture/.test(error.message),
    );
  });

  it("closes the connection it opened and leaves a given one open", async () => {
    const nc = await connect({ servers: server.url });
    const given = await JetStreamEventStore.connect({ nc, ...nextNames(), logger: captureLogger().logger });
    await given.close();
    assert.equal(nc.isClosed(), false);
    await nc.close();
    const owned = await JetStreamEventStore.connect({ servers: server.url, ...nextNames(), logger: captureLogger().logger });
    await owned.close();
    await assert.rejects(owned.append([fixtures.instanceRequested("A")], { expectedVersion: 0 }), EventStoreError);
    await assert.rejects(owned.head(), EventStoreError);
  });

  it("writes a retried commit again once the duplicate window has passed", async () => {
    const { store } = await open({ duplicateWindowMs: 500 });
    const event = fixtures.instanceRequested("A");
    const first = await store.append([event], { expectedVersion: "any" });
    assert.deepEqual(await store.append([event], { expectedVersion: "any" }), { position: first.position, duplicate: true });
    await sleep(1_200);
    const late = await store.append([event], { expectedVersion: "any" });
    assert.equal(late.duplicate, false);
    assert.ok(late.position > first.position);
  });

  it("reads up to the head of the call while appends go on, and ends at once when nothing matches", async () => {
    const { store } = await open();
    for (let i = 0; i < 200; i++) await store.append([fixtures.instanceRequested(`I${i}`)], { expectedVersion: 0 });
    const head = await store.head();
    const iterator = store.readAll()[Symbol.asyncIterator]();
    const firstCommit = await iterator.next();
    assert.equal(firstCommit.done, false);
    const writer = Promise.all(Array.from({ length: 100 }, (_, i) => store.append([fixtures.instanceBanged(`I${i}`)], { expectedVersion: "any" })));
    const rest: Commit[] = [];
    for (let r = await iterator.next(); r.done !== true; r = await iterator.next()) rest.push(r.value);
    await writer;
    assert.equal(rest.length + 1, 200);
    assert.equal(rest.at(-1)?.position, head);
    assert.deepEqual(await collect(store.readAll({ filter: "computer.>" })), []);
    assert.deepEqual(await collect(store.readAll({ after: head + 100 })), []);
    const late = await store.append([fixtures.computerRegistered("LATE")], { expectedVersion: 0 });
    assert.deepEqual((await collect(store.readAll({ filter: "computer.>" }))).map((c) => c.position), [late.position]);
    assert.deepEqual(await store.readStream("tree.NOPE.instance.NOPE"), { version: 0, commits: [] });
    await assert.rejects(store.readStream("tree.*.instance.I1"), EventValidationError);
  });

  it("deletes its ephemeral consumers when reads end, break early or subscriptions close", async () => {
    const names = nextNames();
    const { store } = await open({ names });
    for (let i = 0; i < 30; i++) await store.append([fixtures.instanceRequested(`I${i}`)], { expectedVersion: 0 });
    await collect(store.readAll());
    await store.readStream("tree.I3.instance.I3");
    for await (const _ of store.readAll()) break;
    const subscription = store.subscribe({ after: 10 });
    for await (const _ of subscription) break;
    await subscription.close();
    const unstarted = store.subscribe();
    await unstarted.close();
    const jsm = await jetstreamManager(admin);
    const deadline = Date.now() + 5_000;
    let consumers = -1;
    while (Date.now() < deadline) {
      consumers = (await jsm.streams.info(names.streamName)).state.consumer_count;
      if (consumers === 0) break;
      await sleep(20);
    }
    assert.equal(consumers, 0);
  });

  it("ends subscriptions and reads when the store closes", async () => {
    const { store } = await open();
    await store.append([fixtures.instanceRequested("A")], { expectedVersion: 0 });
    const subscription = store.subscribe();
    const seen: Commit[] = [];
    const done = (async () => {
      for await (const commit of subscription) seen.push(commit);
    })();
    while (seen.length < 1) await sleep(10);
    await store.close();
    await done;
    assert.equal(seen.length, 1);
    await subscription.close();
  });
});
