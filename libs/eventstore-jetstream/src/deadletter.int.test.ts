import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import { jetstream, jetstreamManager, type JetStreamManager } from "@nats-io/jetstream";
import { connect, type NatsConnection } from "@nats-io/transport-node";
import { ProjectionRunner, encodeCommit, instancesProjection, computersProjection, rebuild, type Commit } from "@slap/events";
import { captureLogger, fixtures, startNatsServer, type NatsServer } from "@slap/testkit";
import { DEAD_LETTER_HEADERS, JetStreamEventStore, deadLetterStreamName, deadLetterSubjectPrefix } from "./store.js";

let streams = 0;
const nextNames = (): { streamName: string; subjectPrefix: string } => {
  streams += 1;
  return { streamName: `DL${streams}`, subjectPrefix: `dl${streams}.ev` };
};

async function collect(iterable: AsyncIterable<Commit>): Promise<Commit[]> {
  const out: Commit[] = [];
  for await (const commit of iterable) out.push(commit);
  return out;
}

interface DeadLetter {
  seq: number;
  subject: string;
  headers: Record<string, string>;
  size: number;
}

describe("dead letters: malformed commits found in the log are copied aside once", () => {
  let server: NatsServer;
  let raw: NatsConnection;
  let jsm: JetStreamManager;
  const toClose: Array<{ close(): Promise<unknown> }> = [];

  const open = async (names: ReturnType<typeof nextNames>, options: { deadLetters?: boolean } = {}) => {
    const captured = captureLogger();
    const store = await JetStreamEventStore.connect({ servers: server.url, ...names, logger: captured.logger, ...options });
    toClose.push(store);
    return { store, captured };
  };

  /** Every message of the dead-letter stream, once `count` are there (or the deadline passed). */
  const deadLetters = async (streamName: string, count: number): Promise<DeadLetter[]> => {
    const name = deadLetterStreamName(streamName);
    const deadline = Date.now() + 10_000;
    while ((await jsm.streams.info(name)).state.messages < count && Date.now() < deadline) await sleep(20);
    const { state } = await jsm.streams.info(name);
    const letters: DeadLetter[] = [];
    for (let seq = state.first_seq; seq <= state.last_seq && state.messages > 0; seq++) {
      const msg = await jsm.streams.getMessage(name, { seq });
      if (msg === null) continue;
      const headers: Record<string, string> = {};
      for (const key of msg.header.keys()) headers[key] = msg.header.get(key);
      letters.push({ seq, subject: msg.subject, headers, size: msg.data.length });
    }
    return letters;
  };

  before(async () => {
    server = await startNatsServer();
    raw = await connect({ servers: server.url });
    jsm = await jetstreamManager(raw);
  });
  after(async () => {
    for (const c of toClose.reverse()) await c.close().catch(() => undefined);
    await raw?.close();
    await server?.dispose();
  });

  it("skips non-JSON, wrong shapes, foreign aggregates, an oversized body and binary bytes; delivers the valid commits around them in order; stores each malformed one once with its reason", async (t) => {
    const names = nextNames();
    const { store: writer, captured: writerLog } = await open(names);
    const js = jetstream(raw);
    const maxPayload = raw.info!.max_payload;
    const garbage: Array<[string, Uint8Array | string, RegExp]> = [
      ["tree.A.instance.A", "{nope", /not JSON/],
      ["tree.A.instance.A", "", /not JSON/],
      ["computer.C1.computer", JSON.stringify({ a: 1 }), /expected array/i],
      ["computer.C1.computer", "[]", /too small|>=1/i],
      ["computer.C1.computer", JSON.stringify([{ ...fixtures.computerRegistered("C1"), type: "ComputerExploded" }]), /type|invalid/i],
      ["computer.C2.computer", encodeCommit([fixtures.computerRegistered("C1")]), /does not belong to computer\.C2\.computer/],
      ["computer.C1.partition.slappart0", encodeCommit([fixtures.computerRegistered("C1")]), /does not belong/],
      ["tree.A.instance.A", JSON.stringify([{ ...fixtures.instanceRequested("A"), data: { reference: "x".repeat(maxPayload - 4_096) } }]), /.+/],
      ["tree.A.instance.A", Uint8Array.from([0, 0xff, 0xfe, 0, 0x5b, 0x7b, 0x00, 0xc3, 0x28]), /not JSON/],
      ["weird.subject.\u00e9t\u00e9", "[1]", /.+/],
    ];
    const expectedIds: string[] = [];
    const malformed = new Map<number, { subject: string; pattern: RegExp; length: number }>();
    for (const [i, [key, body, pattern]] of garbage.entries()) {
      const event = i % 2 === 0 ? fixtures.instanceRequested(`V${i}`) : fixtures.computerRegistered(`VC${i}`);
      await writer.append([event], { expectedVersion: 0 });
      expectedIds.push(event.id);
      const subject = `${names.subjectPrefix}.${key}`;
      const ack = await js.publish(subject, body);
      malformed.set(ack.seq, { subject, pattern, length: typeof body === "string" ? Buffer.byteLength(body) : body.length });
    }
    const tail = fixtures.instanceRequested("TAIL");
    await writer.append([tail], { expectedVersion: 0 });
    expectedIds.push(tail.id);

    // Several readers, in two stores (two processes in real life), each meeting every malformed commit.
    const { store: other, captured: otherLog } = await open(names);
    const subscription = other.subscribe();
    const live: string[] = [];
    const following = (async () => {
      for await (const commit of subscription) {
        live.push(...fixtures.idsOf([commit]));
        if (live.length === expectedIds.length + 1) break;
      }
    })();
    assert.deepEqual(fixtures.idsOf(await collect(writer.readAll())), expectedIds);
    assert.deepEqual(fixtures.idsOf(await collect(other.readAll())), expectedIds);
    assert.deepEqual(fixtures.idsOf((await writer.readStream("tree.A.instance.A")).commits), []);
    const runner = new ProjectionRunner(other, instancesProjection, { logger: otherLog.logger });
    await runner.start();
    const late = fixtures.instanceRequested("LATE");
    const { position } = await writer.append([late], { expectedVersion: 0 });
    await following;
    await subscription.close();
    assert.deepEqual(live, [...expectedIds, late.id], "the subscription skipped them and went on");
    await runner.waitFor(position, 10_000);
    assert.equal(runner.position, position);
    assert.deepEqual(runner.state, (await rebuild(other, instancesProjection)).state);
    await runner.stop();

    const letters = await deadLetters(names.streamName, malformed.size);
    assert.equal(letters.length, malformed.size, "each malformed commit stored once");
    const byPosition = new Map(letters.map((l) => [Number(l.headers[DEAD_LETTER_HEADERS.sequence]), l]));
    for (const [seq, { subject, pattern, length }] of malformed) {
      const letter = byPosition.get(seq);
      assert.ok(letter, `dead letter of position ${seq}`);
      assert.equal(letter.subject, `${deadLetterSubjectPrefix(names.streamName)}.${seq}`);
      assert.equal(letter.headers[DEAD_LETTER_HEADERS.stream], names.streamName);
      assert.equal(letter.headers[DEAD_LETTER_HEADERS.subject], subject.replace(/[^\x20-\x7e]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, "0")}`));
      const reason = letter.headers[DEAD_LETTER_HEADERS.reason] ?? "";
      assert.match(reason, pattern, `reason of ${seq}`);
      assert.ok(reason.length <= 4_096);
      if (length > maxPayload - 16_384) {
        assert.equal(letter.headers[DEAD_LETTER_HEADERS.truncated], String(length), "the oversized body is cut and says so");
        assert.ok(letter.size < length);
      } else {
        assert.equal(letter.size, length, "the body is kept as it was");
        assert.equal(letter.headers[DEAD_LETTER_HEADERS.truncated], undefined);
      }
    }
    // Both stores tried each one once; the server kept the first and refused the second.
    await writer.close();
    await other.close();
    const lines = [...writerLog.lines, ...otherLog.lines];
    const count = (msg: string) => lines.filter((l) => l.msg === msg).length;
    assert.equal(count("malformed commit dead-lettered"), malformed.size);
    assert.equal(count("malformed commit already dead-lettered"), malformed.size);
    assert.ok(count("malformed commit skipped") >= 4 * malformed.size, "each read logged each one");
    t.diagnostic(`malformed commits dead-lettered: ${letters.length}`);
  });

  it("tries each malformed commit once per store: a failure to dead-letter is logged, not retried, and the reads go on", async () => {
    const names = nextNames();
    const { store, captured } = await open(names);
    await jsm.streams.delete(deadLetterStreamName(names.streamName));
    const bad = await jetstream(raw).publish(`${names.subjectPrefix}.tree.B.instance.B`, "oops");
    const good = fixtures.instanceRequested("B");
    await store.append([good], { expectedVersion: bad.seq });
    for (let read = 0; read < 3; read++) assert.deepEqual(fixtures.idsOf(await collect(store.readAll())), [good.id]);
    const deadline = Date.now() + 10_000;
    const failures = () => captured.lines.filter((l) => l.msg === "malformed commit not dead-lettered (not retried)");
    while (failures().length === 0 && Date.now() < deadline) await sleep(20);
    await sleep(200);
    assert.equal(failures().length, 1);
    assert.equal(failures()[0]?.position, bad.seq);
    assert.equal(captured.lines.filter((l) => l.msg === "malformed commit skipped").length, 3, "logged by each read");
  });

  it("writes none with deadLetters off, and creates no dead-letter stream", async () => {
    const names = nextNames();
    const { store, captured } = await open(names, { deadLetters: false });
    await jetstream(raw).publish(`${names.subjectPrefix}.tree.C.instance.C`, "oops");
    assert.deepEqual(await collect(store.readAll()), []);
    await store.close();
    assert.ok(captured.lines.some((l) => l.msg === "malformed commit skipped"));
    await assert.rejects(jsm.streams.info(deadLetterStreamName(names.streamName)), /stream not found/);
  });

  it("keeps computers and instances read models equal to a rebuild after malformed commits, live and from the start", async () => {
    const names = nextNames();
    const { store, captured } = await open(names);
    const runners = [new ProjectionRunner(store, computersProjection, { logger: captured.logger }), new ProjectionRunner(store, instancesProjection, { logger: captured.logger })] as const;
    for (const runner of runners) await runner.start();
    const js = jetstream(raw);
    let head = 0;
    for (const event of fixtures.story(1).flat()) {
      ({ position: head } = await store.append([event], { expectedVersion: "any" }));
      head = (await js.publish(`${names.subjectPrefix}.${event.aggregate.kind === "instance" ? "tree.X.instance.X" : "computer.X.computer"}`, "{")).seq;
    }
    const last = fixtures.computerRegistered("LAST");
    ({ position: head } = await store.append([last], { expectedVersion: 0 }));
    for (const runner of runners) await runner.waitFor(head, 10_000);
    assert.deepEqual(runners[0].state, (await rebuild(store, computersProjection)).state);
    assert.deepEqual(runners[1].state, (await rebuild(store, instancesProjection)).state);
    for (const runner of runners) await runner.stop();
  });
});
