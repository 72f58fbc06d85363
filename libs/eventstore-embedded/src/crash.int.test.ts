// Fault injection on the embedded log (issue 7, fault 2): a writer killed with SIGKILL at seeded
// random moments, and torn tails written by hand (kill -9 of a Node process rarely tears a
// write), one after the other on the same data folder, so recovery after recovery is tested.
// Replay a failure with the seed it prints: SLAP_FAULT_SEED=<seed> node --import tsx --test <this file>
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { appendFile, open, readFile, stat, truncate } from "node:fs/promises";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { describe, it } from "node:test";
import type { Commit } from "@slap/events";
import { captureLogger, faultSeed, seededRandom, tempDir, type CapturedLogger, type SeededRandom } from "@slap/testkit";
import { contentHash, generateCommit } from "./crash-commits.fixture.js";
import { EmbeddedEventStore } from "./store.js";

const ROUNDS = 25;
const CHILD = join(import.meta.dirname, "crash-appender.fixture.ts");
const seed = faultSeed();
const replay = `(replay: SLAP_FAULT_SEED=${seed})`;

interface Acknowledged {
  streamKey: string;
  id: string;
  hash: string;
  /** Who got the acknowledgement: `child <round>` or `parent <round>`. */
  by: string;
}

/** Every acknowledged commit, by position. Two acknowledgements of one position must agree. */
class Ledger {
  readonly byPosition = new Map<number, Acknowledged>();

  add(position: number, ack: Acknowledged): void {
    const earlier = this.byPosition.get(position);
    assert.ok(
      earlier === undefined || earlier.id === ack.id,
      `position ${position} acknowledged twice: to ${earlier?.by} for ${earlier?.id}, then to ${ack.by} for ${ack.id} — ` +
        `the earlier commit was lost ${replay}`,
    );
    this.byPosition.set(position, ack);
  }
}

interface ChildRun {
  acknowledgements: number;
  killedBeforeReady: boolean;
}

/**
 * Starts the appender, kills it with SIGKILL at a seeded moment — usually 0–300 ms after it
 * opened the store, sometimes 0–400 ms after it was spawned (maybe while opening) — and records
 * every acknowledgement it printed.
 */
async function runAndKill(dir: string, round: number, random: SeededRandom, ledger: Ledger): Promise<ChildRun> {
  const childSeed = (seed + round * 0x9e37_79b9) >>> 0;
  const early = random.chance(0.12);
  const delay = early ? random.int(0, 400) : random.int(0, 300);
  const child = spawn(process.execPath, ["--import", "tsx", CHILD, dir, String(childSeed)], { stdio: ["ignore", "pipe", "pipe"] });
  let stderr = "";
  let buffered = "";
  let ready = false;
  let acknowledgements = 0;
  child.stderr.on("data", (chunk: Buffer) => {
    stderr = (stderr + chunk.toString()).slice(-4_000);
  });
  child.stdout.on("data", (chunk: Buffer) => {
    buffered += chunk.toString();
    const lines = buffered.split("\n");
    buffered = lines.pop() ?? ""; // a line cut by the kill was never a whole acknowledgement
    for (const line of lines) {
      if (line === "ready") {
        ready = true;
        continue;
      }
      const [tag, position, streamKey, id, hash] = line.split(" ");
      assert.ok(tag === "ack" && position && streamKey && id && hash, `round ${round}: unexpected child output ${JSON.stringify(line)} ${replay}`);
      ledger.add(Number(position), { streamKey, id, hash, by: `child ${round}` });
      acknowledgements++;
    }
  });
  const closed = new Promise<void>((resolve) => child.once("close", () => resolve()));
  try {
    if (!early) {
      const deadline = Date.now() + 20_000;
      while (!ready) {
        assert.ok(child.exitCode === null, `round ${round}: appender exited (${child.exitCode}) before it was ready: ${stderr} ${replay}`);
        assert.ok(Date.now() < deadline, `round ${round}: appender not ready in 20 s: ${stderr} ${replay}`);
        await sleep(10);
      }
    }
    await sleep(delay);
    assert.ok(child.exitCode === null, `round ${round}: appender exited by itself (${child.exitCode}): ${stderr} ${replay}`);
  } finally {
    child.kill("SIGKILL");
    await closed;
  }
  return { acknowledgements, killedBeforeReady: !ready };
}

/**
 * Reads the whole log and checks it: positions 1, 2, … with no gap, every acknowledged commit
 * at its position with the same stream, first event id and content; the stream index agrees.
 */
async function verify(store: EmbeddedEventStore, ledger: Ledger, random: SeededRandom, context: string): Promise<number> {
  let expected = 1;
  let verified = 0;
  const streams = new Map<string, number[]>();
  for await (const commit of store.readAll()) {
    assert.equal(commit.position, expected, `${context}: position ${expected} missing or malformed ${replay}`);
    expected++;
    const positions = streams.get(commit.streamKey) ?? [];
    positions.push(commit.position);
    streams.set(commit.streamKey, positions);
    const ack = ledger.byPosition.get(commit.position);
    if (ack === undefined) continue;
    assert.equal(commit.streamKey, ack.streamKey, `${context}: stream of position ${commit.position} (acknowledged to ${ack.by}) ${replay}`);
    assert.equal(commit.events[0]?.id, ack.id, `${context}: commit at position ${commit.position} (acknowledged to ${ack.by}) ${replay}`);
    assert.equal(contentHash(commit.events), ack.hash, `${context}: content of position ${commit.position} (acknowledged to ${ack.by}) ${replay}`);
    verified++;
  }
  const head = expected - 1;
  assert.equal(await store.head(), head, `${context}: head ${replay}`);
  const lost = [...ledger.byPosition.keys()].filter((p) => p > head);
  assert.deepEqual(lost, [], `${context}: acknowledged commits lost (log ends at ${head}) ${replay}`);
  assert.equal(verified, ledger.byPosition.size, `${context} ${replay}`);
  if (streams.size > 0) {
    const streamKey = random.pick([...streams.keys()].sort());
    const slice = await store.readStream(streamKey);
    assert.deepEqual(
      slice.commits.map((c: Commit) => c.position),
      streams.get(streamKey),
      `${context}: readStream(${streamKey}) disagrees with readAll ${replay}`,
    );
    assert.equal(slice.version, streams.get(streamKey)?.at(-1), `${context}: version of ${streamKey} ${replay}`);
  }
  return verified;
}

/** Appends one commit with the exact expected version of its stream; it must land at head + 1. */
async function appendAgain(store: EmbeddedEventStore, ledger: Ledger, random: SeededRandom, round: number): Promise<void> {
  const head = await store.head();
  const commit = generateCommit(random);
  const { version } = await store.readStream(commit.streamKey);
  const result = await store.append(commit.events, { expectedVersion: version });
  assert.deepEqual(result, { position: head + 1, duplicate: false }, `round ${round}: append after recovery ${replay}`);
  ledger.add(result.position, { streamKey: commit.streamKey, id: commit.events[0]!.id, hash: commit.hash, by: `parent ${round}` });
}

interface Tear {
  variant: "truncate" | "garbage" | "truncate+garbage";
  /** Where the log must end after recovery: the end of the last whole record. */
  wholeEnd: number;
  /** The bytes that must be cut (and kept aside). */
  tail: Buffer;
  /** How many of the unacknowledged tail commits stay whole. */
  survivors: number;
}

/**
 * Simulates a crash in the middle of the last write: appends 1–3 commits nobody is told about,
 * closes the store, then cuts the file at a seeded offset inside them and/or appends seeded
 * garbage.
 */
async function tearTail(dir: string, store: EmbeddedEventStore, random: SeededRandom): Promise<Tear> {
  const log = join(dir, "events.log");
  const boundaries = [(await stat(log)).size];
  for (let n = random.int(1, 3); n > 0; n--) {
    await store.append(generateCommit(random).events, { expectedVersion: "any" });
    boundaries.push((await stat(log)).size);
  }
  await store.close();
  const end = boundaries.at(-1)!;
  const variant = random.pick(["truncate", "garbage", "truncate+garbage"] as const);
  let cutOffset = end;
  if (variant !== "garbage") {
    cutOffset = random.int(boundaries[0]! + 1, end - 1);
    await truncate(log, cutOffset);
  }
  if (variant !== "truncate") await appendFile(log, random.bytes(random.int(1, 4_096)));
  const wholeEnd = boundaries.filter((b) => b <= cutOffset).at(-1)!;
  const size = (await stat(log)).size;
  const tail = Buffer.alloc(size - wholeEnd);
  const handle = await open(log, "r");
  try {
    await handle.read(tail, 0, tail.length, wholeEnd);
  } finally {
    await handle.close();
  }
  return { variant, wholeEnd, tail, survivors: boundaries.indexOf(wholeEnd) };
}

const tornWarnings = (captured: CapturedLogger) => captured.lines.filter((l) => l.level === 40 && /torn tail/.test(l.msg ?? ""));

describe("embedded event store under kill -9 and torn tails", () => {
  it(`keeps every acknowledged commit, contiguous, through ${ROUNDS} rounds of SIGKILL and torn tails on one data folder`, async (t) => {
    const dir = await tempDir("slap-crash-");
    const log = join(dir.path, "events.log");
    const random = seededRandom(seed);
    const ledger = new Ledger();
    const counts = { kills: 0, killsBeforeReady: 0, tornInjected: 0, tornByKill: 0, childAcknowledged: 0, checks: 0 };
    let store: EmbeddedEventStore | undefined;
    t.diagnostic(`seed ${seed}`);
    try {
      for (let round = 1; round <= ROUNDS; round++) {
        const run = await runAndKill(dir.path, round, random, ledger);
        counts.kills++;
        if (run.killedBeforeReady) counts.killsBeforeReady++;
        counts.childAcknowledged += run.acknowledgements;

        let captured = captureLogger();
        store = await EmbeddedEventStore.open({ dir: dir.path, logger: captured.logger });
        if (store.recovered !== undefined) {
          counts.tornByKill++;
          const [warning] = tornWarnings(captured);
          assert.equal(warning?.file, log, `round ${round}: a tail cut after the kill is logged with its file ${replay}`);
        }
        counts.checks += await verify(store, ledger, random, `round ${round}, after the kill`);
        await appendAgain(store, ledger, random, round);

        if (random.chance(0.6)) {
          const headBefore = await store.head();
          const tear = await tearTail(dir.path, store, random);
          const context = `round ${round}, torn tail (${tear.variant}, ${tear.tail.length} bytes at ${tear.wholeEnd})`;
          captured = captureLogger();
          store = await EmbeddedEventStore.open({ dir: dir.path, logger: captured.logger });
          assert.equal((await stat(log)).size, tear.wholeEnd, `${context}: the log ends at the last whole record ${replay}`);
          if (tear.tail.length === 0) {
            assert.equal(store.recovered, undefined, `${context} ${replay}`);
            assert.equal(tornWarnings(captured).length, 0, `${context} ${replay}`);
          } else {
            counts.tornInjected++;
            const keptIn = `${log}.torn-${tear.wholeEnd}`;
            const recovered = store.recovered;
            assert.ok(recovered !== undefined, `${context}: recovered is set ${replay}`);
            assert.deepEqual(
              { cutAt: recovered.cutAt, bytesCut: recovered.bytesCut, keptIn: recovered.keptIn },
              { cutAt: tear.wholeEnd, bytesCut: tear.tail.length, keptIn },
              `${context} ${replay}`,
            );
            const warnings = tornWarnings(captured);
            assert.equal(warnings.length, 1, `${context}: ${JSON.stringify(captured.lines)} ${replay}`);
            assert.deepEqual(
              { file: warnings[0]!.file, offset: warnings[0]!.offset, bytesCut: warnings[0]!.bytesCut },
              { file: log, offset: tear.wholeEnd, bytesCut: tear.tail.length },
              `${context}: the warning names the file, the offset and the bytes cut ${replay}`,
            );
            assert.deepEqual(await readFile(keptIn), tear.tail, `${context}: the cut bytes are kept aside ${replay}`);
          }
          assert.equal(await store.head(), headBefore + tear.survivors, `${context}: whole records before the cut stay ${replay}`);
          counts.checks += await verify(store, ledger, random, context);
          await appendAgain(store, ledger, random, round);
        }
        await store.close();
        store = undefined;
      }
      assert.ok(counts.childAcknowledged > 0, `no append was acknowledged in ${ROUNDS} rounds ${replay}`);
      t.diagnostic(
        `faults injected: ${counts.kills + counts.tornInjected} (${counts.kills} SIGKILLs, ${counts.killsBeforeReady} of them ` +
          `before the store was open; ${counts.tornInjected} torn tails written by hand); torn tails left by a kill: ${counts.tornByKill}`,
      );
      t.diagnostic(
        `acknowledged commits: ${ledger.byPosition.size} (${counts.childAcknowledged} to killed writers), ` +
          `all present with identical content; ${counts.checks} commit checks in all`,
      );
    } finally {
      await store?.close();
      await dir.dispose();
    }
  });
});
