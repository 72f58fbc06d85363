import { computersProjection, instancesProjection } from "@slap/events";
import { JetStreamEventStore } from "@slap/eventstore-jetstream";
import { appendBoth, countingProjection, deleteStream, expectCount, expectInstances, instanceRequests, readAllRate, rebuildRate } from "./common.js";
import type { FigureRef, Scenario } from "./types.js";

const raw = (figure: string): FigureRef => ({ scenario: "jetstream-raw", figure });
const within20 = { kind: "ratioAtLeast", value: 0.8 } as const;

/**
 * The JetStream adapter doing what the raw reference does: the same events, appended one at
 * a time and pipelined (validation, `expectedVersion: 0` → expected last subject sequence,
 * msgID = commit id), then replayed. Target: within 20% of raw on appends and replay.
 */
export const jetstreamAdapter: Scenario = {
  name: "jetstream-adapter",
  title: "JetStream adapter (vs raw JetStream measured in the same run)",
  figures: [
    { key: "appendSerial", label: "append one at a time", unit: "appends/s", reference: raw("publishSerial"), target: within20 },
    { key: "appendPipelined", label: "append pipelined", unit: "appends/s", reference: raw("publishPipelined"), target: within20 },
    { key: "rebuildCounting", label: "replay: rebuild(counting)", unit: "events/s", reference: raw("replay"), target: within20 },
    { key: "readAll", label: "replay: readAll iteration", unit: "events/s", reference: raw("replay"), target: within20 },
    {
      key: "readAllVsDecoded",
      label: "replay: readAll vs raw consume + decode",
      unit: "events/s",
      reference: raw("replayDecode"),
      target: within20,
    },
    { key: "rebuildInstances", label: "replay: rebuild(instancesProjection)", unit: "events/s", reference: raw("replay") },
    { key: "rebuildComputers", label: "replay: rebuild(computersProjection)", unit: "events/s", reference: raw("replay") },
  ],
  async run(ctx) {
    const streamName = ctx.unique("ADP");
    const subjectPrefix = `bench.${streamName}`;
    const tag = ctx.unique("j");
    const serial = instanceRequests(ctx.sizes.serial, `${tag}s`);
    const piped = instanceRequests(ctx.sizes.pipelined, `${tag}p`);
    const total = serial.length + piped.length;

    try {
      const store = await JetStreamEventStore.connect({ servers: ctx.natsUrl, streamName, subjectPrefix, logger: ctx.logger });
      try {
        const appended = await appendBoth(ctx, store, serial, piped);
        const head = await store.head();
        if (head !== total) throw new Error(`adapter head is ${head}, ${total} commits were appended`);
        return {
          appendSerial: appended.serial,
          appendPipelined: appended.pipelined,
          rebuildCounting: await rebuildRate(ctx, store, countingProjection, total, expectCount(total)),
          ...(await readAllRate(ctx, store, total).then((rate) => ({ readAll: rate, readAllVsDecoded: rate }))),
          rebuildInstances: await rebuildRate(ctx, store, instancesProjection, total, expectInstances(total)),
          rebuildComputers: await rebuildRate(ctx, store, computersProjection, total),
        };
      } finally {
        await store.close();
      }
    } finally {
      await deleteStream(ctx.natsUrl, streamName);
    }
  },
};
