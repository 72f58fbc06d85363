/**
 * Runs in its own process (so its peak memory is the rebuild's alone): opens the log named by
 * its one argument (JSON), rebuilds every read model from position 0, checks the result and
 * prints one JSON line `{ events, ms, maxRssMb, heapUsedMb, instances }`.
 */
import { pino } from "pino";
import { masterProjection } from "@slap/events";
import { rebuild, type EventStore } from "@slap/events";
import { EmbeddedEventStore } from "@slap/eventstore-embedded";
import { JetStreamEventStore } from "@slap/eventstore-jetstream";
import { RebuildTarget, type RebuildResult } from "./rebuild-log.js";

async function main(): Promise<void> {
  const target = RebuildTarget.parse(JSON.parse(process.argv[2] ?? "null"));
  const logger = pino({ level: "warn" }, pino.destination(2));
  const store: EventStore =
    target.store === "embedded"
      ? await EmbeddedEventStore.open({ dir: target.dir, logger })
      : await JetStreamEventStore.connect({ servers: target.servers, streamName: target.streamName, subjectPrefix: target.subjectPrefix, logger });
  try {
    let events = 0;
    const counted = {
      ...masterProjection,
      evolve: (state: Parameters<typeof masterProjection.evolve>[0], event: Parameters<typeof masterProjection.evolve>[1], position: number) => {
        events++;
        return masterProjection.evolve(state, event, position);
      },
    };
    const t0 = performance.now();
    const { state } = await rebuild(store, counted);
    const ms = performance.now() - t0;
    const instances = Object.values(state.instances.instances);
    const ready = instances.filter((i) => i.connection !== null && state.computers.bindings[i.instanceId] !== undefined).length;
    if (instances.length !== target.instances || ready !== target.instances) {
      throw new Error(`rebuilt ${instances.length} instances (${ready} placed with connection parameters), expected ${target.instances}`);
    }
    const result: RebuildResult = {
      events,
      ms,
      maxRssMb: process.resourceUsage().maxRSS / 1024,
      heapUsedMb: process.memoryUsage().heapUsed / 1024 / 1024,
      instances: instances.length,
    };
    process.stdout.write(`${JSON.stringify(result)}\n`);
  } finally {
    await store.close();
  }
}

main().catch((error: unknown) => {
  process.stderr.write(`rebuild-child: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
  process.exitCode = 1;
});
