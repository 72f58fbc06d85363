import assert from "node:assert/strict";
import { setTimeout as sleep } from "node:timers/promises";
import { after, before, describe, it } from "node:test";
import type { EventStore } from "@slap/events";
import { EmbeddedEventStore } from "@slap/eventstore-embedded";
import { JetStreamEventStore } from "@slap/eventstore-jetstream";
import { fixtures, startNatsServer, tempDir, type NatsServer } from "@slap/testkit";
import { pino } from "pino";
import { ConfigError, configFromEnv, runAllocator } from "./main.js";

const KVDB = "file:///software/kvdb";
const logger = pino({ level: "silent" });

async function seed(store: EventStore): Promise<void> {
  await store.append([fixtures.computerRegistered("COMP-1", 1), fixtures.softwareSupplied("COMP-1", KVDB), fixtures.softwareStatus("COMP-1", KVDB, "available")], {
    expectedVersion: 0,
  });
  await store.append([fixtures.instanceRequested("one", { releaseUrl: KVDB })], { expectedVersion: 0 });
}

async function until(what: string, predicate: () => boolean): Promise<void> {
  const deadline = Date.now() + 10_000;
  while (!predicate()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting until ${what}`);
    await sleep(10);
  }
}

describe("runAllocator", () => {
  let server: NatsServer;
  before(async () => {
    server = await startNatsServer();
  });
  after(async () => {
    await server.dispose();
  });

  it("runs over the embedded log in a data folder, and stop() releases the folder", async () => {
    const dir = await tempDir("slap-alloc-main-");
    try {
      const writer = await EmbeddedEventStore.open({ dir: dir.path, logger });
      await seed(writer);
      await writer.close();
      const running = await runAllocator({ data: dir.path, replica: "allocator-1", logLevel: "silent" }, { logger, handleSignals: false });
      await until("placed", () => running.allocator.view.computers.bindings.one !== undefined);
      assert.equal(running.allocator.replica, "allocator-1");
      assert.equal(running.allocator.rotation, 1);
      await running.stop();
      await running.stop();
      const reopened = await EmbeddedEventStore.open({ dir: dir.path, logger });
      await reopened.close();
    } finally {
      await dir.dispose();
    }
  });

  it("runs over JetStream when a NATS URL is given", async () => {
    const writer = await JetStreamEventStore.connect({ servers: server.url, streamName: "MAIN1", logger });
    try {
      await seed(writer);
      const running = await runAllocator({ nats: server.url, streamName: "MAIN1", data: "", logLevel: "silent" }, { logger, handleSignals: false });
      try {
        await until("placed", () => running.allocator.view.computers.bindings.one !== undefined);
      } finally {
        await running.stop();
      }
    } finally {
      await writer.close();
    }
  });

  it("refuses an invalid configuration naming the setting, and reads the environment", async () => {
    await assert.rejects(
      runAllocator({ replica: "no spaces allowed", logLevel: "loud" }, { logger, handleSignals: false }),
      (error: unknown) => error instanceof ConfigError && /replica/.test(error.message) && /logLevel/.test(error.message),
    );
    assert.deepEqual(configFromEnv({ NATS_URL: "nats://x:4222", ALLOCATOR_REPLICA: "allocator-2", LOG_LEVEL: "" }), {
      nats: "nats://x:4222",
      streamName: undefined,
      data: undefined,
      replica: "allocator-2",
      logLevel: "",
      maxInFlight: undefined,
      natsUser: undefined,
      natsPassword: undefined,
      natsCa: undefined,
      natsCert: undefined,
      natsKey: undefined,
      replicas: undefined,
    });
  });
});
