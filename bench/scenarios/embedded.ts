import { computersProjection, instancesProjection } from "@slap/events";
import { EmbeddedEventStore } from "@slap/eventstore-embedded";
import { perSecond, timed } from "../stats.js";
import { appendBoth, countingProjection, expectCount, expectInstances, instanceRequests, readAllRate, rebuildRate } from "./common.js";
import type { Scenario } from "./types.js";

/**
 * The embedded file log: durable appends (fdatasync before the acknowledgement; pipelined
 * appends share one sync through group commit), reopening (index rebuilt from record headers)
 * and replays. Every run writes a fresh log in a fresh temporary folder.
 */
export const embedded: Scenario = {
  name: "embedded",
  title: "Embedded adapter (file log, group commit)",
  figures: [
    { key: "appendSerial", label: "append one at a time", unit: "appends/s" },
    { key: "appendPipelined", label: "append pipelined (group commit)", unit: "appends/s", target: { kind: "atLeast", value: 50_000 } },
    { key: "open", label: "reopen: index scan of the log", unit: "commits/s" },
    { key: "readAll", label: "replay: readAll iteration", unit: "events/s", target: { kind: "atLeast", value: 200_000 } },
    { key: "rebuildCounting", label: "replay: rebuild(counting)", unit: "events/s" },
    { key: "rebuildInstances", label: "replay: rebuild(instancesProjection)", unit: "events/s" },
    { key: "rebuildComputers", label: "replay: rebuild(computersProjection)", unit: "events/s" },
  ],
  async run(ctx) {
    const dir = await ctx.tempDir();
    const tag = ctx.unique("e");
    const serial = instanceRequests(ctx.sizes.serial, `${tag}s`);
    const piped = instanceRequests(ctx.sizes.pipelined, `${tag}p`);
    const total = serial.length + piped.length;

    const writer = await EmbeddedEventStore.open({ dir, logger: ctx.logger });
    let appended: { serial: number; pipelined: number };
    try {
      appended = await appendBoth(ctx, writer, serial, piped);
    } finally {
      await writer.close();
    }

    await ctx.settle();
    const opened = await timed(() => EmbeddedEventStore.open({ dir, logger: ctx.logger }));
    const store = opened.result;
    try {
      const head = await store.head();
      if (head !== total) throw new Error(`reopened log has head ${head}, ${total} commits were appended`);
      return {
        appendSerial: appended.serial,
        appendPipelined: appended.pipelined,
        open: perSecond(total, opened.ms),
        readAll: await readAllRate(ctx, store, total),
        rebuildCounting: await rebuildRate(ctx, store, countingProjection, total, expectCount(total)),
        rebuildInstances: await rebuildRate(ctx, store, instancesProjection, total, expectInstances(total)),
        rebuildComputers: await rebuildRate(ctx, store, computersProjection, total),
      };
    } finally {
      await store.close();
    }
  },
};
