/**
 * Fuzzing the bus: random payloads on random `slap.ev.*` subjects, published straight to
 * JetStream as a foreign or buggy writer would, interleaved with valid commits appended through
 * the adapter, while a real master, a real allocator and a subscriber (with two projections)
 * consume the log. Invariants: no consumer stops, every valid commit is delivered in order,
 * every malformed one is dead-lettered exactly once, and every read model equals a rebuild.
 * Replay a failure with SLAP_FUZZ_SEED=<seed printed by the test>.
 */
import assert from "node:assert/strict";
import { Writable } from "node:stream";
import { after, before, describe, it } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import { jetstream, jetstreamManager, type JetStreamClient, type JetStreamManager } from "@nats-io/jetstream";
import { connect, type NatsConnection } from "@nats-io/transport-node";
import { runAllocator, type RunningAllocator } from "@slap/allocator";
import {
  ProjectionRunner,
  computersProjection,
  decodeCommit,
  instancesProjection,
  rebuild,
  streamKeyOf,
  type DomainEvent,
} from "@slap/events";
import { DEAD_LETTER_HEADERS, DEFAULT_STREAM_NAME, JetStreamEventStore, deadLetterStreamName } from "@slap/eventstore-jetstream";
import { fixtures, startNatsServer, tempDir, type NatsServer } from "@slap/testkit";
import fc from "fast-check";
import { pino, type Logger } from "pino";
import { runMaster, type RunningMaster } from "@slap/master";

const SEED = process.env.SLAP_FUZZ_SEED === undefined || process.env.SLAP_FUZZ_SEED === "" ? 20_261_124 : Number(process.env.SLAP_FUZZ_SEED);
const RUNS = 10;
const PER_RUN = { min: 150, max: 320 };
const PREFIX = "slap.ev";
const CONVERGE_MS = 20_000;

/** A pino logger that counts lines by message and keeps the errors, without keeping the rest. */
function countingLogger(): { logger: Logger; counts: Map<string, number>; errors: string[] } {
  const counts = new Map<string, number>();
  const errors: string[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _encoding, done) {
      for (const line of chunk.toString().split("\n")) {
        if (line === "") continue;
        const { level, msg } = JSON.parse(line) as { level: number; msg?: string };
        counts.set(msg ?? "", (counts.get(msg ?? "") ?? 0) + 1);
        if (level >= 50) errors.push(line.slice(0, 2_000));
      }
      done();
    },
  });
  return { logger: pino({ level: "warn" }, sink), counts, errors };
}

// --- inputs -----------------------------------------------------------------------------------

/** Valid events of every type (fixtures.story), the templates of valid commits and of mutations. */
const TEMPLATES: DomainEvent[] = fixtures.story(2).flat();

/** A NATS subject token: printable, no whitespace, no separator or wildcard. */
const token = fc.oneof(
  fc.constantFrom("C1", "COMP-0-a", "COMP-1-b", "WEB0", "KV1", "slappart0", "x"),
  fc.string({ unit: "grapheme", minLength: 1, maxLength: 12 }).filter((s) => /^[^\s.*>\p{Cc}]+$/u.test(s)),
);
const subject = fc.oneof(
  fc.tuple(token).map(([c]) => `${PREFIX}.computer.${c}.computer`),
  fc.tuple(token, token).map(([c, p]) => `${PREFIX}.computer.${c}.partition.${p}`),
  fc.tuple(token, token).map(([t, i]) => `${PREFIX}.tree.${t}.instance.${i}`),
  fc.array(token, { minLength: 1, maxLength: 5 }).map((tokens) => `${PREFIX}.${tokens.join(".")}`),
);
const boundary = fc.constantFrom(0, -1, -0, 1, 2 ** 31, -(2 ** 31), 2 ** 53, -(2 ** 53), Number.MAX_SAFE_INTEGER + 2, 1e308, -1e308, 0.5, Number.EPSILON, 65_535, 65_536);
const wrongType = fc.oneof(fc.boolean(), fc.constant(null), fc.integer(), fc.double(), fc.array(fc.string(), { maxLength: 3 }), fc.dictionary(fc.string(), fc.string(), { maxKeys: 3 }), fc.string());
const mutation = fc.record({
  at: fc.nat(),
  op: fc.oneof(
    fc.record({ kind: fc.constant("set" as const), value: fc.jsonValue({ maxDepth: 2 }) }),
    fc.record({ kind: fc.constant("delete" as const) }),
    fc.record({ kind: fc.constant("huge" as const), length: fc.integer({ min: 1_000, max: 200_000 }) }),
    fc.record({ kind: fc.constant("boundary" as const), value: boundary }),
    fc.record({ kind: fc.constant("wrongType" as const), value: wrongType }),
  ),
});

type Input =
  | { kind: "valid"; template: number }
  | { kind: "bytes"; subject: string; body: Uint8Array }
  | { kind: "json"; subject: string; body: string }
  | { kind: "mutated"; template: number; mutations: Array<{ at: number; op: Mutation }>; copies: number; subject: string | null };
type Mutation =
  | { kind: "set"; value: unknown }
  | { kind: "delete" }
  | { kind: "huge"; length: number }
  | { kind: "boundary"; value: number }
  | { kind: "wrongType"; value: unknown };

const input: fc.Arbitrary<Input> = fc.oneof(
  { weight: 4, arbitrary: fc.nat(TEMPLATES.length - 1).map((template): Input => ({ kind: "valid", template })) },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant("bytes" as const), subject, body: fc.uint8Array({ maxLength: 600 }) }) },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant("json" as const), subject, body: fc.json({ maxDepth: 4 }) }) },
  {
    weight: 6,
    arbitrary: fc.record({
      kind: fc.constant("mutated" as const),
      template: fc.nat(TEMPLATES.length - 1),
      mutations: fc.array(mutation, { minLength: 0, maxLength: 3 }),
      copies: fc.oneof({ weight: 20, arbitrary: fc.constant(1) }, { weight: 2, arbitrary: fc.integer({ min: 0, max: 3 }) }, { weight: 1, arbitrary: fc.constant(1_001) }),
      subject: fc.option(subject, { nil: null }),
    }),
  },
);

/** Every path to a value inside `value` (objects and arrays), parents before children. */
function paths(value: unknown, prefix: Array<string | number> = []): Array<Array<string | number>> {
  if (value === null || typeof value !== "object") return [];
  const entries: Array<[string | number, unknown]> = Array.isArray(value) ? value.map((v, i) => [i, v]) : Object.entries(value);
  return entries.flatMap(([key, child]) => [[...prefix, key], ...paths(child, [...prefix, key])]);
}

function mutate(event: DomainEvent, mutations: ReadonlyArray<{ at: number; op: Mutation }>): unknown {
  const copy = structuredClone(event) as unknown as Record<string, unknown>;
  for (const { at, op } of mutations) {
    const all = paths(copy);
    const path = all[at % all.length];
    if (path === undefined) continue;
    let parent = copy as Record<string | number, unknown>;
    for (const key of path.slice(0, -1)) parent = parent[key] as Record<string | number, unknown>;
    const key = path.at(-1)!;
    if (op.kind === "delete") {
      if (Array.isArray(parent)) parent.splice(key as number, 1);
      else delete parent[key];
    } else if (op.kind === "huge") parent[key] = "x".repeat(op.length);
    else parent[key] = op.value;
  }
  return copy;
}

/** The subject and body an input publishes (valid inputs are appended through the adapter instead). */
function rendered(item: Exclude<Input, { kind: "valid" }>, maxPayload: number): { subject: string; body: Uint8Array } {
  let subjectOf = "";
  let body: Uint8Array;
  switch (item.kind) {
    case "bytes":
      ({ subject: subjectOf, body } = item);
      break;
    case "json":
      subjectOf = item.subject;
      body = Buffer.from(item.body);
      break;
    case "mutated": {
      const template = TEMPLATES[item.template]!;
      const event = mutate(template, item.mutations);
      subjectOf = item.subject ?? `${PREFIX}.${streamKeyOf(template.aggregate)}`;
      body = Buffer.from(JSON.stringify(item.copies === 1 ? [event] : Array.from({ length: item.copies }, () => event)));
      break;
    }
    default: {
      const never: never = item;
      throw new Error(`unknown input ${JSON.stringify(never)}`);
    }
  }
  // A body the server would refuse is cut: still garbage, now storable.
  return { subject: subjectOf, body: body.length > maxPayload - 1_024 ? body.subarray(0, maxPayload - 1_024) : body };
}

// --- the system under test -----------------------------------------------------------------

describe("fuzzing the bus: hostile messages on the log's subjects", () => {
  let server: NatsServer;
  let dataDir: Awaited<ReturnType<typeof tempDir>>;
  let raw: NatsConnection;
  let js: JetStreamClient;
  let jsm: JetStreamManager;
  let writer: JetStreamEventStore;
  let reader: JetStreamEventStore;
  let master: RunningMaster;
  let allocator: RunningAllocator;
  const masterLog = countingLogger();
  const allocatorLog = countingLogger();
  const readerLog = countingLogger();
  let runners: [ProjectionRunner<unknown>, ProjectionRunner<unknown>];
  const delivered: number[] = [];
  let following: Promise<void> | undefined;
  let followFailure: unknown;
  let subscription: ReturnType<JetStreamEventStore["subscribe"]>;

  before(async () => {
    server = await startNatsServer();
    dataDir = await tempDir("slap-fuzz-");
    raw = await connect({ servers: server.url });
    js = jetstream(raw);
    jsm = await jetstreamManager(raw);
    master = await runMaster({ nats: server.url, port: 0, data: dataDir.path, logLevel: "warn" }, { logger: masterLog.logger });
    allocator = await runAllocator({ nats: server.url, replica: "allocator-1" }, { logger: allocatorLog.logger, handleSignals: false });
    writer = await JetStreamEventStore.connect({ servers: server.url, logger: readerLog.logger });
    reader = await JetStreamEventStore.connect({ servers: server.url, logger: readerLog.logger });
    runners = [
      new ProjectionRunner(reader, computersProjection, { logger: readerLog.logger }) as ProjectionRunner<unknown>,
      new ProjectionRunner(reader, instancesProjection, { logger: readerLog.logger }) as ProjectionRunner<unknown>,
    ];
    for (const runner of runners) await runner.start();
    subscription = reader.subscribe();
    following = (async () => {
      for await (const commit of subscription) delivered.push(commit.position);
    })().catch((error: unknown) => {
      followFailure = error;
    });
  }, { timeout: 60_000 });

  after(async () => {
    // Every step runs even if one fails: a teardown that stops halfway leaves a connection or a
    // nats-server behind, and the test process never exits.
    const failures: unknown[] = [];
    const steps: Array<() => unknown> = [
      () => subscription?.close(),
      () => following,
      ...(runners ?? []).map((runner) => () => runner.stop()),
      () => allocator?.stop(),
      () => master?.stop(),
      () => reader?.close(),
      () => writer?.close(),
      () => raw?.close(),
      () => server?.dispose(),
      () => dataDir?.dispose(),
    ];
    for (const step of steps) {
      try {
        await step();
      } catch (error) {
        failures.push(error);
      }
    }
    if (failures.length > 0) throw failures[0];
  });

  it("keeps every consumer going, delivers every valid commit, dead-letters every malformed one once, and keeps the read models equal to a rebuild", { timeout: 150_000 }, async (t) => {
    const maxPayload = raw.info!.max_payload;
    const malformed = new Set<number>();
    const appended: number[] = [];
    let tried = 0;
    let published = 0;
    t.diagnostic(`seed ${SEED} (SLAP_FUZZ_SEED replays it)`);

    const converge = async (position: number, what: string): Promise<void> => {
      const deadline = Date.now() + CONVERGE_MS;
      const behind = () =>
        [
          ["master", master.master.position],
          ["allocator", allocator.allocator.position],
          ["subscriber", delivered.at(-1) ?? 0],
          ...runners.map((r, i) => [`projection ${i}`, r.position] as const),
        ].filter(([, at]) => (at as number) < position);
      while (behind().length > 0 && Date.now() < deadline) await sleep(20);
      assert.deepEqual(behind(), [], `${what}: every consumer reaches position ${position}`);
      const dead = deadLetterStreamName(DEFAULT_STREAM_NAME);
      while ((await jsm.streams.info(dead)).state.messages < malformed.size && Date.now() < deadline) await sleep(20);
      assert.equal((await jsm.streams.info(dead)).state.messages, malformed.size, `${what}: one dead letter per malformed commit`);
    };

    const details = await fc.check(
      fc.asyncProperty(fc.array(input, { minLength: PER_RUN.min, maxLength: PER_RUN.max }), async (inputs) => {
        for (const item of inputs) {
          tried++;
          if (item.kind === "valid") {
            const event = { ...TEMPLATES[item.template]!, id: fixtures.newId() } as DomainEvent;
            appended.push((await writer.append([event], { expectedVersion: "any" })).position);
            continue;
          }
          const { subject: at, body } = rendered(item, maxPayload);
          const { seq } = await js.publish(at, body);
          published++;
          if (!decodeCommit(body, at.slice(PREFIX.length + 1)).ok) malformed.add(seq);
        }
        const marker = await writer.append([fixtures.instanceBanged(`MARK${tried}`)], { expectedVersion: "any" });
        appended.push(marker.position);
        await converge(marker.position, `after ${tried} inputs`);
        return true;
      }),
      { seed: SEED, numRuns: RUNS, endOnFailure: true },
    );
    // Short on failure: the counterexample runs to megabytes; the seed and path replay it.
    assert.ok(!details.failed, `seed ${details.seed}, path ${details.counterexamplePath ?? ""}, after ${tried} inputs: ${String(details.errorInstance)}`);
    assert.equal(followFailure, undefined, "the subscription never failed");

    // Every position of the log that is not malformed was delivered, in order, once.
    const head = await reader.head();
    await converge(head, "at the end");
    const valid = Array.from({ length: head }, (_, i) => i + 1).filter((p) => !malformed.has(p));
    assert.deepEqual(delivered, valid);
    for (const position of appended) assert.ok(!malformed.has(position));

    // Each malformed commit is in the dead-letter stream exactly once, with its reason.
    const letters = new Map<number, number>();
    const consumer = await js.consumers.get(deadLetterStreamName(DEFAULT_STREAM_NAME));
    const { num_pending: pending } = await consumer.info(true);
    if (pending > 0) {
      for await (const msg of await consumer.consume()) {
        const seq = Number(msg.headers?.get(DEAD_LETTER_HEADERS.sequence));
        assert.ok((msg.headers?.get(DEAD_LETTER_HEADERS.reason) ?? "").length > 0, `reason of ${seq}`);
        letters.set(seq, (letters.get(seq) ?? 0) + 1);
        if (msg.info.pending === 0) break;
      }
    }
    assert.deepEqual([...letters.keys()].sort((a, b) => a - b), [...malformed].sort((a, b) => a - b));
    assert.ok([...letters.values()].every((n) => n === 1));

    // Read models: the master's audit, and the subscriber's projections against a rebuild.
    const audit = await master.master.audit();
    assert.equal(audit.equal, true, JSON.stringify(audit.models));
    assert.deepEqual(runners[0].state, (await rebuild(reader, computersProjection)).state);
    assert.deepEqual(runners[1].state, (await rebuild(reader, instancesProjection)).state);
    for (const log of [masterLog, allocatorLog, readerLog]) assert.deepEqual(log.errors, []);

    t.diagnostic(
      `inputs tried: ${tried} (valid commits appended: ${appended.length - RUNS}, raw payloads published: ${published}, of which malformed and dead-lettered: ${malformed.size}); ` +
        `log head ${head}; allocator placed ${allocator.allocator.stats?.placed ?? "?"}`,
    );
    assert.ok(tried >= 1_500, `${tried} inputs`);
  });
});
