/**
 * A live subscription across nats-server restarts (found by the crash test: after a restart of
 * nats-server the master's read models stopped moving for about a minute, and requests waiting
 * for their own writes timed out). nats.js re-creates the ordered consumer the server lost but
 * keeps the old pull's pending count, so the new consumer delivered a few messages and stalled;
 * the JetStream store now moves the subscription to a fresh consumer of its own.
 */
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import { pino } from "pino";
import { ProjectionRunner, type Commit } from "@slap/events";
import { JetStreamEventStore } from "@slap/eventstore-jetstream";
import { faultSeed, fixtures, seededRandom, startNatsServer, type NatsServer } from "@slap/testkit";

const SEED = faultSeed();
const RESTARTS = 3;

describe("a live subscription across nats-server restarts", () => {
  let nats: NatsServer | undefined;
  before(async () => {
    nats = await startNatsServer();
  });
  after(async () => {
    await nats?.dispose();
  });

  it("keeps delivering every acknowledged commit, in order, with no gap or duplicate, after each restart", async () => {
    const server = nats!;
    const rng = seededRandom(SEED);
    const logger = pino({ level: "silent" });
    const reader = await JetStreamEventStore.connect({ servers: server.url, logger });
    const writer = await JetStreamEventStore.connect({ servers: server.url, logger });
    const runner = new ProjectionRunner(reader, { name: "count", version: 1, initial: () => 0, evolve: (n: number) => n + 1 }, { logger });
    await runner.start();
    const subscription = reader.subscribe();
    const delivered: number[] = [];
    const following = (async () => {
      for await (const commit of subscription as AsyncIterable<Commit>) delivered.push(commit.position);
    })();
    const acked: number[] = [];
    let writing = true;
    const writes = (async () => {
      for (let i = 0; writing; i++) {
        try {
          acked.push((await writer.append([fixtures.instanceRequested(`R${i}`)], { expectedVersion: 0 })).position);
        } catch {
          // dropped while the client reconnects: a new request, not a retry (it is another instance)
        }
        await sleep(20);
      }
    })();
    try {
      for (let restart = 1; restart <= RESTARTS; restart++) {
        await sleep(rng.int(500, 1_500));
        await server.stop("SIGKILL");
        await sleep(rng.int(200, 1_000));
        await server.restart();
        // Appends go on after the restart; every one acknowledged must reach both readers soon.
        const count = acked.length;
        const deadline = Date.now() + 20_000;
        while (acked.length < count + 50) {
          assert.ok(Date.now() < deadline, `appends resumed after restart ${restart} (seed ${SEED})`);
          await sleep(50);
        }
        const last = acked.at(-1)!;
        while (runner.position < last || (delivered.at(-1) ?? 0) < last) {
          assert.ok(
            Date.now() < deadline,
            `restart ${restart}: the readers reach position ${last} (runner at ${runner.position}, subscription at ${delivered.at(-1)}) (seed ${SEED})`,
          );
          await sleep(50);
        }
      }
    } finally {
      writing = false;
      await writes;
      await subscription.close();
      await following;
      await runner.stop();
      await reader.close();
      await writer.close();
    }
    assert.deepEqual(
      delivered,
      Array.from({ length: delivered.length }, (_, i) => i + 1),
      `the subscription delivered positions 1, 2, 3… with no gap or duplicate (seed ${SEED})`,
    );
    assert.ok(acked.every((p) => p <= delivered.length), `every acknowledged position was delivered (seed ${SEED})`);
  });
});
