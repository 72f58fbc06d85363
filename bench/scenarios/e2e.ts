import { setTimeout as sleep } from "node:timers/promises";
import { Allocator } from "@slap/allocator";
import type { EventStore, Subscription } from "@slap/events";
import { JetStreamEventStore } from "@slap/eventstore-jetstream";
import { runMaster, type RunningMaster } from "@slap/master";
import { as, fixtures, tokenFile } from "@slap/testkit";
import { percentile } from "../stats.js";
import { deleteStream, pipelined } from "./common.js";
import type { Scenario, ScenarioContext } from "./types.js";

const RELEASE = "https://lab.example.net/software/kvdb/software.cfg";
const PARTITIONS = 100;
/** Longest a request may stay unanswered before the run is declared failed. */
const ANSWER_TIMEOUT_MS = 30_000;

/** Seconds of each fixed-rate phase: 10 in a full bench, 3 in a quick one, 0.2 in the harness test. */
const secondsFor = (ctx: ScenarioContext): number => (ctx.sizes.pipelined >= 30_000 ? 10 : Math.min(3, Math.max(0.2, ctx.sizes.serial / 150)));

/**
 * The whole request flow over real parts, with nodes simulated: a master (HTTP API), an
 * allocator and a stream, each on its own connection, in this process. The simulated nodes
 * follow the partition streams and, on each `PartitionAllocated`, publish the instance's
 * connection parameters at once through the master's HTTP API as the holding partition
 * (`POST /v1/instances/:id/connection` with that computer's node token and `x-slap-partition`,
 * and `x-slap-seen` set to the allocation's position), as a real node does after deploying.
 *
 * The client posts `POST /v1/requests?wait=…` (long poll: the master answers as soon as the
 * instance is ready) at a fixed rate (open loop); a request's time is from sending it to the
 * `200 ready` answer. Every hop is in it: HTTP in, the request decided and appended, the
 * allocator's claim, the node's publication (HTTP in, decided, appended), the master's read
 * model catching up and the long poll answering. SlapOS: minutes (nodes poll every minute).
 */
export const e2e: Scenario = {
  name: "e2e",
  title: "End to end, simulated nodes: request → ready (connection parameters) over HTTP",
  figures: [
    { key: "p50At100", label: "100 req/s: request → ready p50", unit: "ms", higherIsBetter: false },
    { key: "p99At100", label: "100 req/s: request → ready p99", unit: "ms", higherIsBetter: false, target: { kind: "atMost", value: 50 } },
    { key: "p50At500", label: "500 req/s: request → ready p50", unit: "ms", higherIsBetter: false },
    { key: "p99At500", label: "500 req/s: request → ready p99", unit: "ms", higherIsBetter: false },
  ],
  async run(ctx) {
    const seconds = secondsFor(ctx);
    return withFlow(ctx, Math.ceil(seconds * 650) + 1, async (master, nodes) => {
      const at100 = await atRate(ctx, master, nodes, "r100", 100, seconds);
      const at500 = await atRate(ctx, master, nodes, "r500", 500, seconds);
      return { p50At100: at100.p50, p99At100: at100.p99, p50At500: at500.p50, p99At500: at500.p99 };
    });
  },
};

/** Master, allocator and simulated nodes on a fresh stream with room for `instances`; all stopped afterwards. */
async function withFlow<T>(ctx: ScenarioContext, instances: number, fn: (master: RunningMaster, nodes: SimulatedNodes) => Promise<T>): Promise<T> {
  const streamName = ctx.unique("E2E");
  const subjectPrefix = `bench.${streamName}`;
  const cleanup: Array<() => Promise<unknown>> = [];
  try {
    const open = async (): Promise<EventStore> => {
      const store = await JetStreamEventStore.connect({ servers: ctx.natsUrl, streamName, subjectPrefix, logger: ctx.logger });
      cleanup.push(() => store.close());
      return store;
    };
    const [masterStore, allocatorStore, nodesStore] = [await open(), await open(), await open()];
    const tag = ctx.unique("e");
    const computers = Array.from({ length: Math.ceil(instances / PARTITIONS) }, (_, c) => `${tag}C${c}`);
    await pipelined(computers, ctx.sizes.window, (id) =>
      masterStore.append([fixtures.computerRegistered(id, PARTITIONS), fixtures.softwareSupplied(id, RELEASE), fixtures.softwareStatus(id, RELEASE, "available")], {
        expectedVersion: 0,
      }),
    );
    const tokens = tokenFile(await ctx.tempDir(), { users: ["bench"], computers });
    const master = await runMaster({ port: 0, host: "127.0.0.1", tokens }, { store: masterStore, logger: ctx.logger });
    cleanup.push(() => master.stop());
    const allocator = new Allocator({ store: allocatorStore, logger: ctx.logger, replica: "allocator-0" });
    await allocator.start();
    cleanup.push(() => allocator.stop());
    const nodes = new SimulatedNodes(nodesStore, master.url, await nodesStore.head());
    cleanup.push(() => nodes.close());
    return await fn(master, nodes);
  } finally {
    for (const close of cleanup.reverse()) await close().catch((error: unknown) => ctx.note(`e2e cleanup: ${String(error)}`));
    await deleteStream(ctx.natsUrl, streamName);
  }
}

/** Every computer's node at once: publishes connection parameters for each new allocation, as its partition. */
class SimulatedNodes {
  private readonly subscription: Subscription;
  private readonly loop: Promise<void>;
  private readonly inFlight = new Set<Promise<void>>();
  failures = 0;

  constructor(store: EventStore, private readonly masterUrl: string, after: number) {
    this.subscription = store.subscribe({ after, filter: "computer.*.partition.*" });
    this.loop = this.follow();
  }

  private async follow(): Promise<void> {
    for await (const commit of this.subscription) {
      for (const event of commit.events) {
        if (event.type !== "PartitionAllocated") continue;
        const { computerId, partitionId } = event.aggregate;
        const publish = this.publish(event.data.instanceId, computerId, partitionId, commit.position);
        this.inFlight.add(publish);
        void publish.finally(() => this.inFlight.delete(publish));
      }
    }
  }

  private async publish(instanceId: string, computerId: string, partitionId: string, seen: number): Promise<void> {
    const response = await fetch(`${this.masterUrl}/v1/instances/${instanceId}/connection`, {
      method: "POST",
      headers: { "content-type": "application/json", ...as.partition(computerId, partitionId), "x-slap-seen": String(seen) },
      body: JSON.stringify({ parameters: { url: `http://10.0.0.1:8080/${instanceId}`, "instance-id": instanceId } }),
    }).catch(() => undefined);
    if (response === undefined || response.status !== 200) this.failures++;
    await response?.body?.cancel();
  }

  async close(): Promise<void> {
    await this.subscription.close();
    await this.loop;
    await Promise.all(this.inFlight);
  }
}

interface Percentiles {
  p50: number;
  p99: number;
}

/** Posts `rate` requests per second for `seconds` (open loop), each long-polling until ready. */
async function atRate(ctx: ScenarioContext, master: RunningMaster, nodes: SimulatedNodes, tag: string, rate: number, seconds: number): Promise<Percentiles> {
  const count = Math.max(10, Math.round(rate * seconds));
  const prefix = ctx.unique(tag);
  const latencies: number[] = [];
  const requests: Array<Promise<void>> = [];
  const ask = async (i: number): Promise<void> => {
    const sent = performance.now();
    const body = JSON.stringify({ releaseUrl: RELEASE, reference: `${prefix}-${i}`, parameters: { "memory-mb": "512" } });
    for (;;) {
      const response = await fetch(`${master.url}/v1/requests?wait=${ANSWER_TIMEOUT_MS}`, {
        method: "POST",
        headers: { "content-type": "application/json", ...as.user("bench") },
        body,
      });
      const answer = (await response.json()) as { status?: string };
      if (response.status === 200 && answer.status === "ready") break;
      if (response.status !== 202) throw new Error(`request ${i} answered ${response.status}: ${JSON.stringify(answer)}`);
      if (performance.now() - sent > ANSWER_TIMEOUT_MS) throw new Error(`request ${i} still pending after ${ANSWER_TIMEOUT_MS} ms`);
    }
    latencies.push(performance.now() - sent);
  };
  const failuresBefore = nodes.failures;
  await ctx.settle();
  const t0 = performance.now();
  const interval = 1_000 / rate;
  for (let i = 0; i < count; ) {
    const now = performance.now();
    while (i < count && t0 + i * interval <= now) requests.push(ask(i++));
    if (i < count) await sleep(Math.max(0, t0 + i * interval - performance.now()));
  }
  await Promise.all(requests);
  if (nodes.failures > failuresBefore) throw new Error(`${nodes.failures - failuresBefore} publications of connection parameters were refused`);
  return { p50: percentile(latencies, 50), p99: percentile(latencies, 99) };
}
