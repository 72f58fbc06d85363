// Fault injection on a JetStream cluster (issue 7, fault 3): three nats-servers, the event
// stream with 3 replicas, writers appending all along; kill -9 of the stream's leader, then of
// a follower, each restarted. Replay a failure with the seed it prints:
// SLAP_FAULT_SEED=<seed> node --import tsx --test <this file>
// SLAP_CLUSTER_LOGS=1 prints the end of each server's log when the test fails.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import { jetstreamManager, type JetStreamManager, type StreamInfo } from "@nats-io/jetstream";
import { connect, type NatsConnection } from "@nats-io/transport-node";
import { EventStoreError, WrongExpectedVersionError, streamKeyOf, type Commit, type DomainEvent } from "@slap/events";
import { captureLogger, faultSeed, fixtures, seededRandom, startNatsCluster, type NatsCluster, type SeededRandom } from "@slap/testkit";
import { JetStreamEventStore } from "./store.js";

const STREAM = "SLAP_CLUSTER";
const WRITERS = 4;
const seed = faultSeed();
const replay = `(replay: SLAP_FAULT_SEED=${seed})`;

interface Ack {
  position: number;
  id: string;
  streamKey: string;
  writer: number;
  /** The commit as appended, to append it again. */
  events: DomainEvent[];
  expectedVersion: number;
  /** When the attempt that got this acknowledgement was sent, and when the acknowledgement came. */
  sentAt: number;
  at: number;
  duplicate: boolean;
  /** True when a retry was refused as a version conflict and the commit was then found written (see `Writers`). */
  foundAfterConflict: boolean;
}

/**
 * Writers appending one commit at a time (writer w through `stores[w % stores.length]`), each on
 * streams of its own with the exact expected version. An append that fails with a retryable
 * error is retried with the same commit (its first event id is the msgID). If the lost attempt
 * was written, the retry answers its position as a duplicate — or, on a replicated stream of
 * nats-server 2.9, a version conflict when the expected version is not 0 (its leader checks the
 * expected subject sequence before the msgID). A conflict on a retry is then resolved as a
 * consumer would, by reading the stream: the commit must be there. Any other conflict fails the
 * test (nobody else writes these streams).
 */
class Writers {
  readonly acks: Ack[] = [];
  retries = 0;
  private stopping = false;
  private failure: Error | undefined;
  private readonly running: Array<Promise<void>>;

  constructor(
    private readonly stores: readonly JetStreamEventStore[],
    random: SeededRandom,
  ) {
    this.running = Array.from({ length: WRITERS }, (_, w) => this.write(w, seededRandom((random.int(0, 0xffff_ffff) + w) >>> 0)));
  }

  private async write(writer: number, random: SeededRandom): Promise<void> {
    const store = this.stores[writer % this.stores.length]!;
    const versions = new Map<string, number>();
    try {
      while (!this.stopping) {
        const event = fixtures.instanceRequested(`w${writer}i${random.int(0, 3)}`);
        const streamKey = streamKeyOf(event.aggregate);
        const expectedVersion = versions.get(event.aggregate.instanceId) ?? 0;
        const giveUpAt = Date.now() + 30_000;
        const ack = { id: event.id, streamKey, writer, events: [event], expectedVersion };
        for (let attempt = 1; ; attempt++) {
          const sentAt = Date.now();
          try {
            const result = await store.append([event], { expectedVersion });
            versions.set(event.aggregate.instanceId, result.position);
            this.acks.push({ ...ack, ...result, sentAt, at: Date.now(), foundAfterConflict: false });
            break;
          } catch (error) {
            if (error instanceof WrongExpectedVersionError) {
              const found = attempt > 1 ? await positionOf(store, streamKey, event.id) : undefined;
              if (found === undefined) {
                throw new Error(`writer ${writer}, attempt ${attempt}: ${error.message}, and the commit is not in the stream ${replay}`, {
                  cause: error,
                });
              }
              versions.set(event.aggregate.instanceId, found);
              this.acks.push({ ...ack, position: found, duplicate: true, sentAt, at: Date.now(), foundAfterConflict: true });
              break;
            }
            if (!(error instanceof EventStoreError && error.retryable) || Date.now() > giveUpAt) throw error;
            this.retries++;
            await sleep(random.int(50, 200));
          }
        }
      }
    } catch (error) {
      this.failure ??= error instanceof Error ? error : new Error(String(error));
      this.stopping = true;
    }
  }

  /** Acknowledgements of appends sent after `time`. */
  sentAfter(time: number): Ack[] {
    return this.acks.filter((a) => a.sentAt > time);
  }

  /** Waits until `condition` holds, failing early if a writer failed. */
  async until(condition: () => boolean, what: string, timeoutMs: number): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (!condition()) {
      if (this.failure !== undefined) throw this.failure;
      assert.ok(Date.now() < deadline, `${what}: not within ${timeoutMs} ms (${this.acks.length} acknowledged) ${replay}`);
      await sleep(20);
    }
  }

  async stop(): Promise<void> {
    this.stopping = true;
    await Promise.all(this.running);
    if (this.failure !== undefined) throw this.failure;
  }
}

/** The position of the commit whose first event is `id` in `streamKey`, read with retries. */
async function positionOf(store: JetStreamEventStore, streamKey: string, id: string): Promise<number | undefined> {
  for (let attempt = 1; ; attempt++) {
    try {
      return (await store.readStream(streamKey)).commits.find((c) => c.events[0]?.id === id)?.position;
    } catch (error) {
      if (!(error instanceof EventStoreError && error.retryable) || attempt >= 5) throw error;
      await sleep(200);
    }
  }
}

async function streamInfo(jsm: JetStreamManager): Promise<StreamInfo | undefined> {
  try {
    return await jsm.streams.info(STREAM);
  } catch {
    return undefined; // no leader just now, or the admin connection is reconnecting
  }
}

/** The stream's leader once one is known that is not `not`. */
async function waitForLeader(jsm: JetStreamManager, not: string | undefined, timeoutMs: number): Promise<string> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const leader = (await streamInfo(jsm))?.cluster?.leader;
    if (leader !== undefined && leader !== not) return leader;
    assert.ok(Date.now() < deadline, `no stream leader other than ${not ?? "none"} within ${timeoutMs} ms ${replay}`);
    await sleep(50);
  }
}

/** Waits until the stream has a leader and two replicas, `name` among the three, every replica current, online, lag 0. */
async function waitCaughtUp(jsm: JetStreamManager, name: string, timeoutMs: number): Promise<StreamInfo> {
  const deadline = Date.now() + timeoutMs;
  let last: StreamInfo | undefined;
  for (;;) {
    last = (await streamInfo(jsm)) ?? last;
    const cluster = last?.cluster;
    const replicas = cluster?.replicas ?? [];
    if (
      last !== undefined &&
      cluster?.leader !== undefined &&
      replicas.length === 2 &&
      replicas.every((r) => r.current && !r.offline && (r.lag ?? 0) === 0) &&
      [cluster.leader, ...replicas.map((r) => r.name)].includes(name)
    ) {
      return last;
    }
    assert.ok(Date.now() < deadline, `${name} not caught up within ${timeoutMs} ms: ${JSON.stringify(last?.cluster)} ${replay}`);
    await sleep(100);
  }
}

/** Asks the stream's leader to step down until `name` leads. Answers how many step-downs it took. */
async function leadBy(nc: NatsConnection, jsm: JetStreamManager, name: string, timeoutMs: number): Promise<number> {
  const deadline = Date.now() + timeoutMs;
  let stepDowns = 0;
  for (;;) {
    const leader = await waitForLeader(jsm, undefined, Math.max(deadline - Date.now(), 1));
    if (leader === name) return stepDowns;
    assert.ok(Date.now() < deadline, `${name} did not become leader within ${timeoutMs} ms (${stepDowns} step-downs) ${replay}`);
    try {
      await nc.request(`$JS.API.STREAM.LEADER.STEPDOWN.${STREAM}`, undefined, { timeout: 2_000 });
      stepDowns++;
      await waitForLeader(jsm, leader, Math.max(deadline - Date.now(), 1));
    } catch (error) {
      if (error instanceof assert.AssertionError) throw error;
      await sleep(100); // the request raced an election: ask again
    }
  }
}

/** The whole log, read again from the start if a read fails with a retryable error (a leader change under it). */
async function readWholeLog(store: JetStreamEventStore): Promise<Commit[]> {
  for (let attempt = 1; ; attempt++) {
    try {
      const out: Commit[] = [];
      for await (const commit of store.readAll()) out.push(commit);
      return out;
    } catch (error) {
      if (!(error instanceof EventStoreError && error.retryable) || attempt >= 5) throw error;
      await sleep(200);
    }
  }
}

/** Positions 1…n with no gap, no commit twice, and exactly the acknowledged commits at their acknowledged positions. */
function assertLogMatches(log: readonly Commit[], acks: readonly Ack[], context: string): void {
  log.forEach((commit, i) => assert.equal(commit.position, i + 1, `${context}: positions not contiguous at ${i + 1} ${replay}`));
  const firstIds = log.map((c) => c.events[0]!.id);
  const twice = firstIds.filter((id, i) => firstIds.indexOf(id) !== i);
  assert.deepEqual(twice, [], `${context}: commits written twice ${replay}`);
  const byPosition = new Map(log.map((c) => [c.position, c]));
  const lost = acks.filter((a) => byPosition.get(a.position)?.events[0]?.id !== a.id || byPosition.get(a.position)?.streamKey !== a.streamKey);
  assert.deepEqual(lost.slice(0, 5), [], `${context}: ${lost.length} acknowledged commits lost or moved ${replay}`);
  const acknowledged = new Set(acks.map((a) => a.id));
  const unacknowledged = firstIds.filter((id) => !acknowledged.has(id));
  assert.deepEqual(unacknowledged, [], `${context}: commits in the log nobody was told about (every append is retried until acknowledged) ${replay}`);
}

interface Again {
  duplicates: number;
  /** Retries with a non-zero expected version refused as a version conflict (nothing written). */
  conflicts: number;
}

/**
 * Appends `count` acknowledged commits again, as a writer retrying after a lost acknowledgement
 * would. With expected version "any" each must answer its original position as a duplicate: the
 * leader knows every msgID of the window, including those written before it was killed. With the
 * original expected version it must write nothing: a duplicate, or a version conflict (see
 * `Writers`).
 */
async function appendAgain(store: JetStreamEventStore, acks: readonly Ack[], random: SeededRandom, count: number, context: string): Promise<Again> {
  const again: Again = { duplicates: 0, conflicts: 0 };
  for (let n = 0; n < count; n++) {
    const ack = random.pick(acks);
    const withAny = await appendWithRetries(store, ack, "any", context);
    assert.deepEqual(withAny, { position: ack.position, duplicate: true }, `${context}: ${ack.id} appended again with "any" ${replay}`);
    const withVersion = await appendWithRetries(store, ack, ack.expectedVersion, context);
    if (withVersion instanceof WrongExpectedVersionError) {
      assert.ok(ack.expectedVersion > 0, `${context}: ${ack.id} appended again with expected version 0: ${withVersion.message} ${replay}`);
      again.conflicts++;
    } else {
      assert.deepEqual(withVersion, { position: ack.position, duplicate: true }, `${context}: ${ack.id} appended again ${replay}`);
    }
    again.duplicates++;
  }
  return again;
}

async function appendWithRetries(
  store: JetStreamEventStore,
  ack: Ack,
  expectedVersion: number | "any",
  context: string,
): Promise<{ position: number; duplicate: boolean } | WrongExpectedVersionError> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await store.append(ack.events, { expectedVersion });
    } catch (error) {
      if (error instanceof WrongExpectedVersionError) return error;
      if (!(error instanceof EventStoreError && error.retryable) || attempt >= 5) {
        throw new Error(`${context}: appending ${ack.id} (position ${ack.position}) again failed: ${String(error)} ${replay}`, { cause: error });
      }
      await sleep(200);
    }
  }
}

const comparable = (log: readonly Commit[]) => log.map((c) => ({ position: c.position, streamKey: c.streamKey, events: JSON.stringify(c.events) }));

describe("JetStream event store on a cluster of three, replicas 3", () => {
  it("keeps appending through kill -9 of the stream leader and of a follower, loses and duplicates nothing acknowledged, and the restarted servers catch up", async (t) => {
    t.diagnostic(`seed ${seed}`);
    const random = seededRandom(seed);
    let cluster: NatsCluster | undefined;
    let nc: NatsConnection | undefined;
    let store: JetStreamEventStore | undefined;
    let pinnedNc: NatsConnection | undefined;
    let pinned: JetStreamEventStore | undefined;
    let writers: Writers | undefined;
    try {
      cluster = await startNatsCluster({ size: 3 });
      const c = cluster;
      await c.waitForMetaLeader();
      nc = await connect({ servers: c.urls, maxReconnectAttempts: -1, reconnectTimeWait: 200, noAsyncTraces: true });
      const jsm = await jetstreamManager(nc, { timeout: 2_000 });
      store = await JetStreamEventStore.connect({ servers: c.urls, replicas: 3, streamName: STREAM, logger: captureLogger().logger });
      assert.equal((await jsm.streams.info(STREAM)).config.num_replicas, 3);
      // A second store on a connection to the server that will lead the stream when it is killed,
      // so appends in flight there lose their acknowledgement and are retried.
      pinnedNc = await connect({ servers: c.urls, noRandomize: true, maxReconnectAttempts: -1, reconnectTimeWait: 200, noAsyncTraces: true });
      pinned = await JetStreamEventStore.connect({ nc: pinnedNc, streamName: STREAM, logger: captureLogger().logger });
      await leadBy(nc, jsm, c.servers[0]!.name, 20_000);
      const kills: string[] = [];

      writers = new Writers([store, pinned], random);
      const w = writers;
      await w.until(() => w.acks.length >= 150, "first appends", 20_000);

      // 1. kill -9 the stream's leader.
      const leader = await waitForLeader(jsm, undefined, 10_000);
      const metaLeader = await c.waitForMetaLeader();
      const killedAt = Date.now();
      await c.kill(c.indexOf(leader));
      kills.push(leader);
      const newLeader = await waitForLeader(jsm, leader, 30_000);
      const reelectedMs = Date.now() - killedAt;
      await w.until(() => w.sentAfter(killedAt).length >= 100, "appends after the leader was killed", 30_000);
      const firstAckMs = Math.min(...w.sentAfter(killedAt).map((a) => a.at)) - killedAt;
      t.diagnostic(
        `killed stream leader ${leader}${leader === metaLeader ? " (also the meta leader)" : ""}: ${newLeader} leads after ${reelectedMs} ms, ` +
          `first append sent after the kill acknowledged after ${firstAckMs} ms`,
      );
      await c.restart(c.indexOf(leader));
      await waitCaughtUp(jsm, leader, 30_000);

      // 2. kill -9 a follower.
      const current = await waitForLeader(jsm, undefined, 10_000);
      const followers = c.servers.map((s) => s.name).filter((n) => n !== current);
      const neverKilled = followers.filter((n) => !kills.includes(n));
      const follower = random.pick(neverKilled.length > 0 ? neverKilled : followers);
      const followerKilledAt = Date.now();
      await c.kill(c.indexOf(follower));
      kills.push(follower);
      await w.until(() => w.sentAfter(followerKilledAt).length >= 100, "appends after a follower was killed", 30_000);
      assert.equal(await waitForLeader(jsm, undefined, 5_000), current, `killing follower ${follower} moved the leadership ${replay}`);
      await c.restart(c.indexOf(follower));
      await waitCaughtUp(jsm, follower, 30_000);

      await w.stop();
      const final = await waitCaughtUp(jsm, follower, 30_000);
      const log = await readWholeLog(store);
      assert.equal(final.state.last_seq, log.length, `stream state and log length ${replay}`);
      assertLogMatches(log, w.acks, "after the kills");
      assert.ok(w.acks.some((a) => a.sentAt > killedAt && a.sentAt < followerKilledAt), `no append acknowledged after the leader was killed ${replay}`);

      // 3. every restarted server leads in turn, serves the same log, and knows every commit id
      // (commits from before the kills too): a retry is answered as a duplicate, not written again.
      const beforeKill = w.acks.filter((a) => a.at < killedAt);
      const again: Again = { duplicates: 0, conflicts: 0 };
      const add = (more: Again) => {
        again.duplicates += more.duplicates;
        again.conflicts += more.conflicts;
      };
      for (const name of new Set(kills)) {
        const stepDowns = await leadBy(nc, jsm, name, 20_000);
        const reread = await readWholeLog(store);
        assert.deepEqual(comparable(reread), comparable(log), `the log read with ${name} leading differs ${replay}`);
        add(await appendAgain(store, beforeKill, random, 10, `${name} leading, commits from before the kill`));
        add(await appendAgain(store, w.acks, random, 10, `${name} leading`));
        t.diagnostic(`${name} (killed and restarted) leads after ${stepDowns} step-downs, serves all ${reread.length} commits identical, de-duplicates retries`);
      }
      // A retry of a stream's last commit with its own expected version is a duplicate even on a
      // replicated stream, whose leader checks the version first (the store looks at the last commit).
      const lastOfStream = new Map<string, Ack>();
      for (const ack of [...w.acks].sort((x, y) => x.position - y.position)) lastOfStream.set(ack.streamKey, ack);
      for (const ack of lastOfStream.values()) {
        const retried = await appendWithRetries(store, ack, ack.expectedVersion, "the last commit of its stream");
        assert.deepEqual(retried, { position: ack.position, duplicate: true }, `retrying ${ack.id}, the last of ${ack.streamKey} ${replay}`);
      }
      assert.equal((await jsm.streams.info(STREAM)).state.last_seq, log.length, `appending again wrote something ${replay}`);

      const duplicates = w.acks.filter((a) => a.duplicate && !a.foundAfterConflict).length;
      const conflicts = w.acks.filter((a) => a.foundAfterConflict).length;
      t.diagnostic(
        `server kills: ${kills.length} (${kills.join(", ")}); commits acknowledged: ${w.acks.length} ` +
          `(${w.sentAfter(killedAt).length} sent after the first kill); lost: 0; written twice: 0; ` +
          `retries: ${w.retries}; commits whose acknowledgement was lost, then answered by a retry as a duplicate: ${duplicates}, ` +
          `as a version conflict (found written): ${conflicts}`,
      );
      t.diagnostic(
        `acknowledged commits appended again under a restarted leader: ${again.duplicates} with "any", all answered as duplicates; ` +
          `with their expected version: ${again.duplicates - again.conflicts} duplicates, ${again.conflicts} version conflicts; none written`,
      );
    } catch (error) {
      if (process.env.SLAP_CLUSTER_LOGS === "1") for (let i = 0; i < 3; i++) console.error(cluster?.logTail(i));
      throw error;
    } finally {
      await writers?.stop().catch(() => undefined);
      await pinned?.close();
      await pinnedNc?.close();
      await store?.close();
      await nc?.close();
      await cluster?.stop();
    }
  });
});
