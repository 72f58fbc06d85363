import { DeliverPolicy, StorageType, jetstream, jetstreamManager, type JetStreamClient, type JetStreamManager } from "@nats-io/jetstream";
import { connect, type NatsConnection } from "@nats-io/transport-node";
import { decodeCommit, encodeCommit, streamKeyOf } from "@slap/events";
import { perSecond, timed } from "../stats.js";
import { instanceRequests, pipelined, serially } from "./common.js";
import type { Scenario } from "./types.js";

/**
 * Messages asked per pull while replaying. Larger batches mean fewer pull round trips; the
 * client's default (100) is much slower on a long stream. Same as the adapter's replay batch.
 */
export const REPLAY_BATCH = 10_000;

/** Stream settings shared by the raw reference and what the adapter is expected to create. */
export function benchStreamConfig(name: string, prefix: string) {
  return {
    name,
    subjects: [`${prefix}.>`],
    storage: StorageType.File,
    duplicate_window: 120_000_000_000, // 2 min, in ns
  };
}

/**
 * Reads the whole stream with an ordered consumer; answers how many messages were seen.
 * `each` runs on every message body.
 */
export async function replayOrdered(js: JetStreamClient, jsm: JetStreamManager, stream: string, each?: (body: Uint8Array) => void): Promise<number> {
  const last = (await jsm.streams.info(stream)).state.last_seq;
  if (last === 0) return 0;
  const consumer = await js.consumers.get(stream, { deliver_policy: DeliverPolicy.All });
  const messages = await consumer.consume({ max_messages: REPLAY_BATCH });
  let seen = 0;
  try {
    for await (const m of messages) {
      each?.(m.data);
      seen++;
      if (m.seq >= last) break;
    }
  } finally {
    await messages.close();
  }
  return seen;
}

/**
 * The reference: what JetStream itself does with the same bytes the adapter writes
 * (`encodeCommit([event])` on `<prefix>.<streamKey>`, msgID = event id), through the plain
 * client, without validation or expectations.
 */
export const jetstreamRaw: Scenario = {
  name: "jetstream-raw",
  title: "Raw JetStream (reference: same subjects and bytes, no adapter)",
  figures: [
    { key: "publishSerial", label: "acked publish, one at a time", unit: "msgs/s" },
    { key: "publishPipelined", label: "acked publish, pipelined", unit: "msgs/s" },
    { key: "replay", label: "replay: ordered consumer", unit: "msgs/s" },
    { key: "replayDecode", label: "replay: ordered consumer + decodeCommit", unit: "msgs/s" },
  ],
  async run(ctx) {
    const name = ctx.unique("RAW");
    const prefix = `bench.${name}`;
    const tag = ctx.unique("r");
    const toMessage = (e: ReturnType<typeof instanceRequests>[number]) => ({
      subject: `${prefix}.${streamKeyOf(e.aggregate)}`,
      data: encodeCommit([e]),
      msgID: e.id,
    });
    const serial = instanceRequests(ctx.sizes.serial, `${tag}s`).map(toMessage);
    const piped = instanceRequests(ctx.sizes.pipelined, `${tag}p`).map(toMessage);
    const total = serial.length + piped.length;

    const nc: NatsConnection = await connect({ servers: ctx.natsUrl });
    try {
      const jsm = await jetstreamManager(nc);
      const js = jetstream(nc);
      await jsm.streams.add(benchStreamConfig(name, prefix));
      try {
        const publish = (m: (typeof serial)[number]) => js.publish(m.subject, m.data, { msgID: m.msgID });
        await ctx.settle();
        const one = await timed(() => serially(serial, publish));
        await ctx.settle();
        const many = await timed(() => pipelined(piped, ctx.sizes.window, publish));
        await ctx.settle();
        const replay = await timed(() => replayOrdered(js, jsm, name));
        if (replay.result !== total) throw new Error(`raw replay saw ${replay.result} messages, ${total} were published`);
        await ctx.settle();
        const decoded = await timed(() =>
          replayOrdered(js, jsm, name, (body) => {
            if (!decodeCommit(body).ok) throw new Error("raw replay: a body did not decode");
          }),
        );
        return {
          publishSerial: perSecond(serial.length, one.ms),
          publishPipelined: perSecond(piped.length, many.ms),
          replay: perSecond(total, replay.ms),
          replayDecode: perSecond(total, decoded.ms),
        };
      } finally {
        await jsm.streams.delete(name);
      }
    } finally {
      await nc.close();
    }
  },
};
