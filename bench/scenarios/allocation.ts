import { setTimeout as sleep } from "node:timers/promises";
import { Allocator } from "@slap/allocator";
import type { DomainEvent, EventOf, EventStore, Subscription } from "@slap/events";
import { EmbeddedEventStore } from "@slap/eventstore-embedded";
import { JetStreamEventStore } from "@slap/eventstore-jetstream";
import { fixtures } from "@slap/testkit";
import { percentile, perSecond } from "../stats.js";
import { deleteStream, pipelined } from "./common.js";
import type { Scenario, ScenarioContext } from "./types.js";

const RELEASE = "https://lab.example.net/software/kvdb/software.cfg";
const PARTITIONS = 100;
/** Nomad's reference: 1,000,000 placements on 5,000 hosts in under 5 minutes. */
const NOMAD_RATE = 3_750;
/** Longest wait for every request to be placed before a run is declared failed. */
const PLACE_TIMEOUT_MS = 300_000;

/**
 * Requests per sustained run: the 100,000 (on 1,000 computers × 100 partitions) in a
 * full bench, the pipelined size otherwise (quick: 10,000 on 100 computers; the harness test:
 * 300 on 3).
 */
const requestsFor = (ctx: ScenarioContext): number => (ctx.sizes.pipelined >= 30_000 ? 100_000 : ctx.sizes.pipelined);
/** Seconds of each fixed-rate latency phase: 5 in a full bench, 2 in a quick one, 0.2 in the harness test. */
const latencySecondsFor = (ctx: ScenarioContext): number => Math.min(5, Math.max(0.2, ctx.sizes.serial / 150));

/**
 * The allocator (services/allocator), in process with its store, the writer and a watcher:
 *
 * - sustained: computers with the release available and N requests are in the log first;
 *   then allocators start (each on its own connection) and the clock runs until a watcher
 *   subscribed to the partition streams has seen a claim for every request. The rate includes
 *   the allocator's catch-up with the log (reading N + computers commits). Every request
 *   fits: computers × 100 partitions = N. The "after catch-up" figure starts the clock when
 *   `start()` resolves instead.
 * - latency: one allocator is following a log with spare capacity; requests are appended at a
 *   fixed rate (open loop) and each one's time is from the start of its append to the moment
 *   the watcher sees its `PartitionAllocated`.
 */
export const allocation: Scenario = {
  name: "allocation",
  title: "Allocator: placements per second and request → allocated latency",
  figures: [
    { key: "js1", label: "JetStream, 1 allocator: placements/s (incl. catch-up)", unit: "placements/s", target: { kind: "atLeast", value: NOMAD_RATE } },
    { key: "js1Placing", label: "JetStream, 1 allocator: placements/s after catch-up", unit: "placements/s" },
    { key: "js2", label: "JetStream, 2 allocators: placements/s (incl. catch-up)", unit: "placements/s", target: { kind: "atLeast", value: NOMAD_RATE } },
    { key: "embedded1", label: "embedded, 1 allocator: placements/s (incl. catch-up)", unit: "placements/s", target: { kind: "atLeast", value: NOMAD_RATE } },
    { key: "p50At100", label: "JetStream, 100 req/s: request → allocated p50", unit: "ms", higherIsBetter: false },
    { key: "p99At100", label: "JetStream, 100 req/s: request → allocated p99", unit: "ms", higherIsBetter: false, target: { kind: "atMost", value: 20 } },
    { key: "p50At1000", label: "JetStream, 1,000 req/s: request → allocated p50", unit: "ms", higherIsBetter: false },
    { key: "p99At1000", label: "JetStream, 1,000 req/s: request → allocated p99", unit: "ms", higherIsBetter: false },
  ],
  async run(ctx) {
    const requests = requestsFor(ctx);
    const one = await sustainedJetStream(ctx, requests, 1);
    const two = await sustainedJetStream(ctx, requests, 2);
    const embedded = await sustainedEmbedded(ctx, requests);
    const latency = await latencyJetStream(ctx, latencySecondsFor(ctx));
    return {
      js1: one.rate,
      js1Placing: one.afterCatchUp,
      js2: two.rate,
      embedded1: embedded.rate,
      p50At100: latency.at100.p50,
      p99At100: latency.at100.p99,
      p50At1000: latency.at1000.p50,
      p99At1000: latency.at1000.p99,
    };
  },
};

interface Sustained {
  rate: number;
  afterCatchUp: number;
}

/** Computers (one commit each: registered, release supplied and available) and requests (one commit each). */
function backlog(tag: string, computers: number, requests: number): { setup: DomainEvent[][]; requests: Array<EventOf<"InstanceRequested">> } {
  const setup: DomainEvent[][] = [];
  for (let c = 0; c < computers; c++) {
    const id = `${tag}C${c}`;
    setup.push([fixtures.computerRegistered(id, PARTITIONS), fixtures.softwareSupplied(id, RELEASE), fixtures.softwareStatus(id, RELEASE, "available")]);
  }
  return {
    setup,
    requests: Array.from({ length: requests }, (_, i) => fixtures.instanceRequested(`${tag}i${i}`, { releaseUrl: RELEASE, reference: `bench ${i}` })),
  };
}

async function appendAll(ctx: ScenarioContext, store: EventStore, commits: readonly DomainEvent[][]): Promise<void> {
  await pipelined(commits, ctx.sizes.window, (events) => store.append(events, { expectedVersion: 0 }));
}

/** Counts distinct instances claimed on partition streams after `after`; `reached(n)` resolves at n. */
class ClaimWatcher {
  readonly seenAt = new Map<string, number>();
  private readonly subscription: Subscription;
  private readonly loop: Promise<void>;
  private target = Number.POSITIVE_INFINITY;
  private wake: (() => void) | undefined;

  constructor(store: EventStore, after: number) {
    this.subscription = store.subscribe({ after, filter: "computer.*.partition.*" });
    this.loop = this.follow();
  }

  private async follow(): Promise<void> {
    for await (const commit of this.subscription) {
      for (const event of commit.events) {
        if (event.type === "PartitionAllocated" && !this.seenAt.has(event.data.instanceId)) {
          this.seenAt.set(event.data.instanceId, performance.now());
        }
      }
      if (this.seenAt.size >= this.target) this.wake?.();
    }
  }

  async reached(count: number, timeoutMs = PLACE_TIMEOUT_MS): Promise<void> {
    if (this.seenAt.size >= count) return;
    this.target = count;
    const done = new Promise<void>((resolve) => (this.wake = resolve));
    const abort = new AbortController();
    const timeout = sleep(timeoutMs, undefined, { signal: abort.signal }).then(() => {
      throw new Error(`only ${this.seenAt.size} of ${count} requests placed after ${timeoutMs} ms`);
    });
    try {
      await Promise.race([done, timeout]);
    } finally {
      abort.abort();
    }
  }

  async close(): Promise<void> {
    await this.subscription.close();
    await this.loop;
  }
}

async function sustainedJetStream(ctx: ScenarioContext, requests: number, allocators: number): Promise<Sustained> {
  const streamName = ctx.unique("ALLOC");
  const subjectPrefix = `bench.${streamName}`;
  const open = () => JetStreamEventStore.connect({ servers: ctx.natsUrl, streamName, subjectPrefix, logger: ctx.logger });
  const stores: EventStore[] = [];
  try {
    const writer = await open();
    stores.push(writer);
    return await sustained(ctx, requests, writer, async () => {
      const store = await open();
      stores.push(store);
      return store;
    }, allocators);
  } finally {
    for (const store of stores) await store.close();
    await deleteStream(ctx.natsUrl, streamName);
  }
}

async function sustainedEmbedded(ctx: ScenarioContext, requests: number): Promise<Sustained> {
  const store = await EmbeddedEventStore.open({ dir: await ctx.tempDir(), logger: ctx.logger });
  try {
    return await sustained(ctx, requests, store, () => Promise.resolve(store), 1);
  } finally {
    await store.close();
  }
}

async function sustained(
  ctx: ScenarioContext,
  requests: number,
  writer: EventStore,
  storeForAllocator: () => Promise<EventStore>,
  count: number,
): Promise<Sustained> {
  const tag = ctx.unique("a");
  const { setup, requests: events } = backlog(tag, Math.ceil(requests / PARTITIONS), requests);
  await appendAll(ctx, writer, setup);
  await appendAll(ctx, writer, events.map((e) => [e]));
  const watcher = new ClaimWatcher(writer, await writer.head());
  const stores = await Promise.all(Array.from({ length: count }, storeForAllocator));
  const replicas = stores.map((store, i) => new Allocator({ store, logger: ctx.logger, replica: `allocator-${i}` }));
  try {
    await ctx.settle();
    const t0 = performance.now();
    await Promise.all(replicas.map((r) => r.start()));
    const t1 = performance.now();
    await watcher.reached(requests);
    const t2 = performance.now();
    return { rate: perSecond(requests, t2 - t0), afterCatchUp: perSecond(requests, t2 - t1) };
  } finally {
    for (const r of replicas) await r.stop();
    await watcher.close();
  }
}

interface Percentiles {
  p50: number;
  p99: number;
}

async function latencyJetStream(ctx: ScenarioContext, seconds: number): Promise<{ at100: Percentiles; at1000: Percentiles }> {
  const streamName = ctx.unique("ALAT");
  const subjectPrefix = `bench.${streamName}`;
  const open = () => JetStreamEventStore.connect({ servers: ctx.natsUrl, streamName, subjectPrefix, logger: ctx.logger });
  const stores: EventStore[] = [];
  try {
    const writer = await open();
    const allocatorStore = await open();
    const watcherStore = await open();
    stores.push(writer, allocatorStore, watcherStore);
    const tag = ctx.unique("l");
    const needed = Math.ceil(seconds * 1_100) + 1;
    const { setup } = backlog(tag, Math.ceil(needed / PARTITIONS), 0);
    await appendAll(ctx, writer, setup);
    const watcher = new ClaimWatcher(watcherStore, await writer.head());
    const allocator = new Allocator({ store: allocatorStore, logger: ctx.logger, replica: "allocator-0" });
    await allocator.start();
    try {
      const at100 = await atRate(ctx, writer, watcher, `${tag}r100`, 100, seconds);
      const at1000 = await atRate(ctx, writer, watcher, `${tag}r1000`, 1_000, seconds);
      return { at100, at1000 };
    } finally {
      await allocator.stop();
      await watcher.close();
    }
  } finally {
    for (const store of stores) await store.close();
    await deleteStream(ctx.natsUrl, streamName);
  }
}

/** Appends `rate` requests per second for `seconds` (open loop: not waiting for acks), then waits for every placement. */
async function atRate(ctx: ScenarioContext, writer: EventStore, watcher: ClaimWatcher, tag: string, rate: number, seconds: number): Promise<Percentiles> {
  const count = Math.max(10, Math.round(rate * seconds));
  const events = Array.from({ length: count }, (_, i) => fixtures.instanceRequested(`${tag}i${i}`, { releaseUrl: RELEASE, reference: `latency ${i}` }));
  const sentAt = new Map<string, number>();
  const appends: Array<Promise<unknown>> = [];
  const already = watcher.seenAt.size;
  await ctx.settle();
  const t0 = performance.now();
  const interval = 1_000 / rate;
  for (let i = 0; i < count; ) {
    const now = performance.now();
    while (i < count && t0 + i * interval <= now) {
      const event = events[i++]!;
      sentAt.set(event.aggregate.instanceId, performance.now());
      appends.push(writer.append([event], { expectedVersion: 0 }));
    }
    if (i < count) await sleep(Math.max(0, t0 + i * interval - performance.now()));
  }
  await Promise.all(appends);
  await watcher.reached(already + count, 30_000);
  const latencies = [...sentAt].map(([id, sent]) => watcher.seenAt.get(id)! - sent);
  return { p50: percentile(latencies, 50), p99: percentile(latencies, 99) };
}
