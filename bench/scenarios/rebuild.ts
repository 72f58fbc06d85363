import { execFile } from "node:child_process";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { EmbeddedEventStore } from "@slap/eventstore-embedded";
import { JetStreamEventStore } from "@slap/eventstore-jetstream";
import { tempDir } from "@slap/testkit";
import { deleteStream } from "./common.js";
import { RebuildResult, writeLog, type RebuildTarget } from "./rebuild-log.js";
import type { Scenario, ScenarioContext } from "./types.js";

const CHILD = fileURLToPath(new URL("./rebuild-child.ts", import.meta.url));

/** Events in the log: the 1,000,000 in a full bench, 100,000 quick, 3,000 in the harness test. */
const eventsFor = (ctx: ScenarioContext): number =>
  ctx.sizes.pipelined >= 30_000 ? 1_000_000 : ctx.sizes.pipelined >= 10_000 ? 100_000 : ctx.sizes.pipelined >= 5_000 ? 20_000 : 3_000;

/**
 * Rebuilding every read model of the master (computers, instances and the computers' desired
 * states: `masterProjection`) from position 0 of a log of a million events, as an audit or a
 * new replica does. The log (see `rebuild-log.ts`) is written once per bench to each store and
 * shared by the runs. Each run rebuilds in a fresh child process, so the peak resident memory it
 * reports (`maxRSS`: Node, the modules and the read models) is the rebuild's alone; the rate is
 * timed inside the child, from opening the read to the last event folded.
 */
export const rebuildScenario: Scenario = {
  name: "rebuild",
  title: "Rebuild of every read model from a log of 1,000,000 events",
  figures: [
    { key: "embeddedRate", label: "embedded log: events/s", unit: "events/s", target: { kind: "atLeast", value: 100_000 } },
    { key: "embeddedRss", label: "embedded log: peak memory of the rebuilding process", unit: "MiB", higherIsBetter: false, target: { kind: "atMost", value: 1_024 } },
    { key: "jetstreamRate", label: "JetStream: events/s", unit: "events/s", target: { kind: "atLeast", value: 100_000 } },
    { key: "jetstreamRss", label: "JetStream: peak memory of the rebuilding process", unit: "MiB", higherIsBetter: false, target: { kind: "atMost", value: 1_024 } },
  ],
  async run(ctx) {
    const events = eventsFor(ctx);
    const embedded = await ctx.shared(
      `rebuild-embedded-${events}`,
      async () => {
        const dir = await tempDir("slap-bench-rebuild-");
        const store = await EmbeddedEventStore.open({ dir: dir.path, logger: ctx.logger });
        try {
          ctx.note(`rebuild: writing ${events.toLocaleString("en-US")} events to an embedded log (once per bench)`);
          const written = await writeLog(store, events, ctx.sizes.window, "r");
          return { dir, written };
        } finally {
          await store.close();
        }
      },
      async ({ dir }) => dir.dispose(),
    );
    const streamName = `REBUILD${events}`;
    const jetstream = await ctx.shared(
      `rebuild-jetstream-${events}`,
      async () => {
        const store = await JetStreamEventStore.connect({ servers: ctx.natsUrl, streamName, subjectPrefix: `bench.${streamName}`, logger: ctx.logger });
        try {
          ctx.note(`rebuild: writing ${events.toLocaleString("en-US")} events to a JetStream stream (once per bench)`);
          return await writeLog(store, events, ctx.sizes.window, "r");
        } finally {
          await store.close();
        }
      },
      () => deleteStream(ctx.natsUrl, streamName),
    );
    await ctx.settle();
    const e = await rebuildInChild({ store: "embedded", dir: embedded.dir.path, instances: embedded.written.instances }, embedded.written.events);
    await ctx.settle();
    const j = await rebuildInChild(
      { store: "jetstream", servers: ctx.natsUrl, streamName, subjectPrefix: `bench.${streamName}`, instances: jetstream.instances },
      jetstream.events,
    );
    return { embeddedRate: e.rate, embeddedRss: e.maxRssMb, jetstreamRate: j.rate, jetstreamRss: j.maxRssMb };
  },
};

async function rebuildInChild(target: RebuildTarget, expected: number): Promise<{ rate: number; maxRssMb: number }> {
  const { stdout } = await promisify(execFile)(process.execPath, ["--import", "tsx", CHILD, JSON.stringify(target)], { maxBuffer: 1024 * 1024 });
  const result = RebuildResult.parse(JSON.parse(stdout.trim().split("\n").at(-1) ?? "null"));
  if (result.events !== expected) throw new Error(`the rebuild folded ${result.events} events, ${expected} were written`);
  return { rate: (result.events / result.ms) * 1_000, maxRssMb: result.maxRssMb };
}
