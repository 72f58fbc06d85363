import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { writeFile } from "node:fs/promises";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import { AckPolicy, jetstream, jetstreamManager, type JetStreamManager } from "@nats-io/jetstream";
import { PermissionViolationError, connect, type NatsConnection } from "@nats-io/transport-node";
import { EventStoreError, ProjectionRunner, computersProjection, encodeCommit, type Commit, type DomainEvent } from "@slap/events";
import { DEFAULT_STREAM_NAME, JetStreamEventStore, deadLetterStreamName, inboxPrefixOf } from "@slap/eventstore-jetstream";
import { captureLogger, fixtures, startNatsServer, tempDir, type NatsServer } from "@slap/testkit";
import { bcryptHash, renderNatsConfig } from "./nats-server-config.js";

const STREAM = DEFAULT_STREAM_NAME;
const password = (): string => randomBytes(24).toString("base64url");
/** Cost 4: the fastest bcrypt; the server checks it on every connection. */
const hash = (pw: string): string => bcryptHash(pw, randomBytes(16), 4);

const users = {
  master: { user: "master", pass: password() },
  allocator: { user: "allocator-1", pass: password() },
  // Read-only users of the log (nodes have no NATS user: they talk to the master over HTTP).
  readerA: { user: "reader-A", pass: password() },
  readerB: { user: "reader-B", pass: password() },
};

async function collect(iterable: AsyncIterable<Commit>): Promise<Commit[]> {
  const out: Commit[] = [];
  for await (const commit of iterable) out.push(commit);
  return out;
}

describe("NATS users of a deployment, on a nats-server started with the generated configuration", () => {
  let server: NatsServer;
  let dir: Awaited<ReturnType<typeof tempDir>>;
  const toClose: Array<{ close(): Promise<unknown> }> = [];
  let masterStore: JetStreamEventStore;
  let masterJsm: JetStreamManager;
  let denials = 0;

  const as = async (who: { user: string; pass: string }): Promise<NatsConnection> => {
    const nc = await connect({ servers: server.url, user: who.user, pass: who.pass, inboxPrefix: inboxPrefixOf(who.user), reconnect: false });
    toClose.push(nc);
    return nc;
  };
  const storeAs = async (who: { user: string; pass: string }, options: { deadLetters?: boolean } = {}) => {
    const captured = captureLogger();
    const store = await JetStreamEventStore.connect({ servers: server.url, user: who.user, pass: who.pass, logger: captured.logger, ...options });
    toClose.push(store);
    return { store, captured };
  };
  const lastSeq = async (): Promise<number> => (await masterJsm.streams.info(STREAM)).state.last_seq;

  /** The server answered a request with a permissions violation; nothing was appended. */
  const refused = async (what: string, attempt: () => Promise<unknown>): Promise<void> => {
    const before = await lastSeq();
    await assert.rejects(attempt(), (error: unknown) => isPermissionViolation(error), what);
    assert.equal(await lastSeq(), before, `${what}: nothing appended`);
    denials++;
  };

  /** A core publish is refused: the server reports a permissions violation for that subject; nothing was appended. */
  const corePublishRefused = async (nc: NatsConnection, subject: string, body: Uint8Array): Promise<void> => {
    const before = await lastSeq();
    // The server answers a refused publication with -ERR, which the client reports as a status.
    const reported = (async () => {
      for await (const s of nc.status()) {
        if (s.type === "error" && s.error instanceof PermissionViolationError && s.error.subject === subject) return true;
      }
      return false;
    })();
    nc.publish(subject, body);
    await nc.flush();
    const violation = await Promise.race([reported, sleep(5_000).then(() => false)]);
    assert.ok(violation, `core publish on ${subject} reported as a permissions violation`);
    assert.equal(await lastSeq(), before, `core publish on ${subject}: nothing appended`);
    denials++;
  };

  before(async () => {
    dir = await tempDir("slap-perm-");
    const config = renderNatsConfig({
      master: { password: hash(users.master.pass) },
      allocators: [{ user: users.allocator.user, password: hash(users.allocator.pass) }],
      readers: [
        { user: users.readerA.user, password: hash(users.readerA.pass) },
        { user: users.readerB.user, password: hash(users.readerB.pass) },
      ],
    });
    assert.ok(!config.includes(users.master.pass), "the configuration holds hashes, not passwords");
    const path = join(dir.path, "nats.conf");
    await writeFile(path, config, { mode: 0o600 });
    server = await startNatsServer({ args: ["-c", path] });
  });

  after(async () => {
    for (const c of toClose.reverse()) await c.close().catch(() => undefined);
    await server.dispose();
    await dir.dispose();
  });

  it("refuses a wrong password, an unknown user and no credentials, without naming the password", async (t) => {
    for (const attempt of [
      { user: users.readerA.user, pass: users.readerB.pass },
      { user: "reader-C", pass: users.readerA.pass },
      { user: users.master.user, pass: `${users.master.pass}x` },
    ]) {
      await assert.rejects(connect({ servers: server.url, ...attempt, reconnect: false }), { name: "AuthorizationError" });
      denials++;
    }
    await assert.rejects(connect({ servers: server.url, reconnect: false }), { name: "AuthorizationError" });
    denials++;
    await assert.rejects(
      JetStreamEventStore.connect({ servers: server.url, user: users.readerA.user, pass: "not-the-password", logger: captureLogger().logger }),
      (error: unknown) =>
        error instanceof EventStoreError &&
        !error.retryable &&
        error.message.includes("refused the credentials of user reader-A") &&
        !error.message.includes("not-the-password"),
    );
    denials++;
    t.diagnostic(`denials so far: ${denials}`);
  });

  it("lets a reader open the log only once the master has created it, with an error saying so before", async () => {
    await assert.rejects(
      JetStreamEventStore.connect({ servers: server.url, user: users.readerA.user, pass: users.readerA.pass, logger: captureLogger().logger }),
      (error: unknown) => error instanceof EventStoreError && /stream SLAP_EVENTS does not exist and this NATS user may not create it: start the master first/.test(error.message),
    );
    denials++;
    const opened = await storeAs(users.master);
    masterStore = opened.store;
    assert.ok(opened.captured.lines.some((l) => l.msg === "event stream created"));
    assert.ok(opened.captured.lines.some((l) => l.msg === "dead-letter stream created"));
    masterJsm = await jetstreamManager(await as(users.master));
    await masterStore.append([fixtures.computerRegistered("COMP-A")], { expectedVersion: 0 });
    await masterStore.append([fixtures.computerRegistered("COMP-B")], { expectedVersion: 0 });
    await masterStore.append([fixtures.instanceRequested("I1", { treeId: "T1" })], { expectedVersion: 0 });
    assert.equal(await lastSeq(), 3);
  });

  it("refuses every publication of a reader on the log, for another computer, its own, or any tree, core or JetStream", async (t) => {
    const nc = await as(users.readerA);
    const js = jetstream(nc);
    const before = denials;
    const attempts: Array<[string, DomainEvent]> = [
      ["slap.ev.computer.COMP-B.computer", fixtures.softwareStatus("COMP-B", "file:///sr/x", "available")],
      ["slap.ev.computer.COMP-B.partition.slappart0", fixtures.partitionAllocated("COMP-B", "slappart0", "I1", "T1")],
      ["slap.ev.computer.COMP-A.computer", fixtures.softwareStatus("COMP-A", "file:///sr/x", "available")],
      ["slap.ev.computer.COMP-A.partition.slappart0", fixtures.partitionAllocated("COMP-A", "slappart0", "I1", "T1")],
      ["slap.ev.tree.T1.instance.I1", fixtures.connectionPublished("I1", { url: "http://evil" }, { treeId: "T1", computerId: "COMP-A" })],
      ["slap.ev.tree.T9.instance.I9", fixtures.instanceRequested("I9", { treeId: "T9" })],
      ["slap.ev.tree.COMP-A.instance.X", fixtures.instanceBanged("X", "COMP-A")],
      [`slap.dead.${STREAM}.1`, fixtures.instanceBanged("I1", "T1")],
    ];
    for (const [subject, event] of attempts) {
      const body = encodeCommit([event]);
      await corePublishRefused(nc, subject, body);
      await refused(`JetStream publish on ${subject}`, () => js.publish(subject, body));
      await refused(`JetStream publish on ${subject} with an expected version`, () => js.publish(subject, body, { expect: { lastSubjectSequence: 0 } }));
    }
    const { store } = await storeAs(users.readerA, { deadLetters: false });
    await refused("an append through the adapter", () => store.append([fixtures.softwareStatus("COMP-A", "file:///sr/x", "available")], { expectedVersion: "any" }));
    await assert.rejects(store.append([fixtures.softwareStatus("COMP-A", "file:///sr/x", "available")], { expectedVersion: 1 }), {
      name: "EventStoreError",
      message: "append to computer.COMP-A.computer refused: this NATS user may not publish on slap.ev.computer.COMP-A.computer",
      retryable: false,
    });
    assert.ok(!nc.isClosed(), "a refused publication does not cost the reader its connection");
    t.diagnostic(`reader publications refused: ${denials - before}`);
  });

  it("refuses a reader any administration of the streams: create, update, purge, delete, delete a message, list, legacy durable", async (t) => {
    const nc = await as(users.readerA);
    const jsm = await jetstreamManager(nc);
    const before = denials;
    await refused("create a stream", () => jsm.streams.add({ name: "EVIL", subjects: ["evil.>"] }));
    await refused("create a stream over the log's subjects", () => jsm.streams.add({ name: "SHADOW", subjects: ["slap.ev.computer.COMP-B.>"] }));
    await refused("update the log's stream", () => jsm.streams.update(STREAM, { max_msgs: 1 }));
    await refused("purge the log", () => jsm.streams.purge(STREAM));
    await refused("purge one subject of the log", () => jsm.streams.purge(STREAM, { filter: "slap.ev.computer.COMP-B.computer" }));
    await refused("delete the log's stream", () => jsm.streams.delete(STREAM));
    await refused("delete a message of the log", () => jsm.streams.deleteMessage(STREAM, 1));
    await refused("erase a message of the log", () => jsm.streams.deleteMessage(STREAM, 2, true));
    await refused("delete the dead-letter stream", () => jsm.streams.delete(deadLetterStreamName(STREAM)));
    await refused("read the dead-letter stream's info", () => jsm.streams.info(deadLetterStreamName(STREAM)));
    await refused("list the streams", () => jsm.streams.names().next());
    await refused("list the consumers (to find others' names)", () => jsm.consumers.list(STREAM).next());
    await refused("create a durable consumer through the legacy API", () =>
      nc.request(`$JS.API.CONSUMER.DURABLE.CREATE.${STREAM}.steal`, JSON.stringify({ stream_name: STREAM, config: { durable_name: "steal", ack_policy: "explicit" } })),
    );
    await refused("create a consumer without a name (legacy ephemeral API)", () =>
      nc.request(`$JS.API.CONSUMER.CREATE.${STREAM}`, JSON.stringify({ stream_name: STREAM, config: { ack_policy: "none" } })),
    );
    const info = await masterJsm.streams.info(STREAM);
    assert.equal(info.state.messages, 3);
    assert.equal(info.config.max_msgs, -1);
    t.diagnostic(`reader administration refused: ${denials - before}`);
  });

  it("keeps each user's replies its own: a reader cannot subscribe to the shared inbox nor to another user's", async (t) => {
    const nc = await as(users.readerA);
    for (const subject of ["_INBOX.>", `${inboxPrefixOf(users.master.user)}.>`, `${inboxPrefixOf(users.readerB.user)}.>`, ">"]) {
      const reported = (async () => {
        for await (const s of nc.status()) {
          if (s.type === "error" && s.error instanceof PermissionViolationError && s.error.operation === "subscription" && s.error.subject === subject) return true;
        }
        return false;
      })();
      nc.subscribe(subject);
      await nc.flush();
      assert.ok(await Promise.race([reported, sleep(5_000).then(() => false)]), `subscribing to ${subject} is a permissions violation`);
      denials++;
    }
    // Its own inbox works: the request-reply of the JetStream API above went through it.
    const store = await storeAs(users.readerA, { deadLetters: false });
    assert.ok((await store.store.head()) >= 0);
    t.diagnostic("inbox subscriptions refused: 4");
  });

  it("lets a reader create a named durable consumer (the server cannot tell it from an ephemeral one by subject), which steals nothing: the log keeps every message for everyone", async () => {
    const nc = await as(users.readerA);
    const jsm = await jetstreamManager(nc);
    await jsm.consumers.add(STREAM, { durable_name: "greedy", ack_policy: AckPolicy.Explicit });
    const consumer = await jetstream(nc).consumers.get(STREAM, "greedy");
    const batch = await consumer.fetch({ max_messages: 10, expires: 1_000 });
    let acked = 0;
    for await (const msg of batch) {
      msg.ack();
      acked++;
      if (acked === 3) break;
    }
    await nc.flush();
    assert.equal(acked, 3);
    assert.equal((await masterJsm.streams.info(STREAM)).state.messages, 3, "limits retention: an ack removes nothing");
    assert.equal((await collect(masterStore.readAll())).length, 3);
    await masterJsm.consumers.delete(STREAM, "greedy");
  });

  it("lets a reader read the log through the adapter: head, readAll, readStream, subscribe and a projection, with dead letters off", async () => {
    const { store, captured } = await storeAs(users.readerA);
    assert.ok(captured.lines.some((l) => l.msg?.startsWith("dead letters off: this NATS user may not use the dead-letter stream")));
    assert.equal(await store.head(), 3);
    assert.deepEqual((await collect(store.readAll())).map((c) => c.position), [1, 2, 3]);
    assert.deepEqual((await collect(store.readAll({ filter: "computer.COMP-B.>" }))).map((c) => c.position), [2]);
    const slice = await store.readStream("computer.COMP-A.computer");
    assert.equal(slice.version, 1);
    assert.equal(slice.commits.length, 1);
    assert.deepEqual(await store.readStream("computer.NOPE.computer"), { version: 0, commits: [] });

    const runner = new ProjectionRunner(store, computersProjection, { logger: captured.logger });
    await runner.start();
    const subscription = store.subscribe({ after: 3 });
    const live = (async () => {
      for await (const commit of subscription) return commit;
      return undefined;
    })();
    const { position } = await masterStore.append([fixtures.softwareSupplied("COMP-A", "file:///sr/kvdb")], { expectedVersion: 1 });
    const commit = await live;
    await subscription.close();
    assert.equal(commit?.position, position);
    await runner.waitFor(position, 10_000);
    assert.deepEqual(Object.keys(runner.state.computers["COMP-A"]?.software ?? {}), ["file:///sr/kvdb"]);
    await runner.stop();

    // A malformed commit is skipped by the reader's reads; it cannot dead-letter it and does not try.
    await jetstream(await as(users.master)).publish("slap.ev.computer.COMP-A.computer", "not json");
    assert.equal((await collect(store.readAll({ after: position }))).length, 0);
    assert.ok(captured.lines.some((l) => l.msg === "malformed commit skipped" && l.position === position + 1));
  });

  it("lets an allocator append partition events and a shared-instance attachment, and dead-letter; refuses it computer events and administration", async (t) => {
    const { store } = await storeAs(users.allocator);
    const version = await store.head();
    const allocated = await store.append([fixtures.partitionAllocated("COMP-A", "slappart0", "I1", "T1")], { expectedVersion: 0 });
    assert.equal(allocated.position, version + 1);
    const released = await store.append([fixtures.partitionReleased("COMP-A", "slappart0", "I1")], { expectedVersion: allocated.position });
    assert.equal(released.position, allocated.position + 1);
    // SharedInstanceAttached belongs to the shared instance's own stream: allocators need instance subjects.
    const attached = await store.append(
      [{ ...fixtures.instanceBanged("I1", "T1"), type: "SharedInstanceAttached", data: { hostInstanceId: "H1", hostTreeId: "HT" } }],
      { expectedVersion: 3 },
    );
    assert.ok(attached.position > released.position);
    // The allocator reads the malformed commit the reader met above and may copy it aside.
    assert.equal((await collect(store.readAll())).length, (await lastSeq()) - 1);
    const dead = await waitForDeadLetters(masterJsm, 1);
    assert.equal(dead, 1);

    const nc = await as(users.allocator);
    const js = jetstream(nc);
    const jsm = await jetstreamManager(nc);
    const before = denials;
    for (const subject of ["slap.ev.computer.COMP-A.computer", "slap.ev.computer.COMP-B.computer"]) {
      const body = encodeCommit([fixtures.softwareSupplied(subject.split(".")[3]!, "file:///sr/evil")]);
      await corePublishRefused(nc, subject, body);
      await refused(`allocator JetStream publish on ${subject}`, () => js.publish(subject, body));
    }
    await refused("allocator appends a computer event through the adapter", () =>
      store.append([fixtures.softwareSupplied("COMP-A", "file:///sr/evil")], { expectedVersion: "any" }),
    );
    await refused("allocator publishes outside the log", () => js.publish("slap.other.x", "x"));
    await refused("allocator purges the log", () => jsm.streams.purge(STREAM));
    await refused("allocator deletes the log's stream", () => jsm.streams.delete(STREAM));
    await refused("allocator deletes a message", () => jsm.streams.deleteMessage(STREAM, 1));
    await refused("allocator creates a stream", () => jsm.streams.add({ name: "EVIL2", subjects: ["evil2.>"] }));
    await refused("allocator purges the dead letters", () => jsm.streams.purge(deadLetterStreamName(STREAM)));
    t.diagnostic(`allocator actions refused: ${denials - before}`);
  });

  it("lets the master append any event and administer the streams", async (t) => {
    const head = await lastSeq();
    for (const event of [
      fixtures.softwareSupplied("COMP-B", "file:///sr/kvdb"),
      fixtures.partitionAllocated("COMP-B", "slappart1", "I2", "T2"),
      fixtures.instanceRequested("I3", { treeId: "T3" }),
    ]) {
      await masterStore.append([event], { expectedVersion: "any" });
    }
    assert.equal(await lastSeq(), head + 3);
    const info = await masterJsm.streams.info(deadLetterStreamName(STREAM));
    assert.equal(info.state.messages, 1);
    t.diagnostic(`denials tested in total: ${denials}`);
    assert.ok(denials >= 50, `${denials} denials`);
  });
});

function isPermissionViolation(error: unknown): boolean {
  for (let e = error, depth = 0; e instanceof Error && depth < 5; e = e.cause, depth++) {
    if (e instanceof PermissionViolationError || e.name === "PermissionViolationError") return true;
    if (e instanceof EventStoreError && /permissions violation/i.test(e.message)) return true;
  }
  return false;
}

async function waitForDeadLetters(jsm: JetStreamManager, count: number): Promise<number> {
  const deadline = Date.now() + 10_000;
  let messages = 0;
  while (Date.now() < deadline) {
    messages = (await jsm.streams.info(deadLetterStreamName(DEFAULT_STREAM_NAME))).state.messages;
    if (messages >= count) return messages;
    await sleep(25);
  }
  return messages;
}

