import { spawn, type ChildProcess } from "node:child_process";
import { readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";
import type { DomainEvent, EventOf, EventStore } from "@slap/events";
import { EmbeddedEventStore } from "@slap/eventstore-embedded";
import { runMaster, type RunningMaster } from "@slap/master";
import { fixtures, freePortBlock, releasePortBlock, tempDir, tokenFile } from "@slap/testkit";
import { percentile } from "../stats.js";
import { pipelined } from "./common.js";
import type { Scenario, ScenarioContext } from "./types.js";

const CHILD = fileURLToPath(new URL("./desired-child.ts", import.meta.url));
const REPO = fileURLToPath(new URL("../../", import.meta.url));
const FILLER_RELEASE = "https://lab.example.net/software/kvdb/software.cfg";
/** The node's own partitions, each holding one instance of a release that only publishes. */
const NODE_PARTITIONS = 10;
const PORTS_PER_PARTITION = 5;
/** Filler computers' partitions. */
const FILLER_PARTITIONS = 100;
/** Computer ids made ready for the node's runs (each run takes a fresh one: warm-up, then up to this many). */
const MAX_RUNS = 50;
const PROCESSED_TIMEOUT_MS = 120_000;

type Scale = "full" | "quick" | "test";
const scaleOf = (ctx: ScenarioContext): Scale => (ctx.sizes.pipelined >= 30_000 ? "full" : ctx.sizes.pipelined >= 5_000 ? "quick" : "test");
/** Cloud sizes (instances of other computers) the node joins: the 1,000 / 10,000 / 100,000; tiny in the harness test. */
const CLOUDS = { full: [1_000, 10_000, 100_000], quick: [1_000, 10_000, 100_000], test: [50, 100, 200] } as const;
/** Watching computers, changes per second and seconds of changes. */
const WATCH = { full: { computers: 1_000, rate: 100, seconds: 5 }, quick: { computers: 1_000, rate: 100, seconds: 3 }, test: { computers: 10, rate: 100, seconds: 0.3 } } as const;

/**
 * A node sees only its own computer (issue 13): its cost must not grow with the cloud.
 *
 * - join: a master over an embedded log holding a cloud of N instances of other computers (N =
 *   1,000, 10,000, 100,000; each requested, allocated, published and started, on computers of
 *   100 partitions), written to the store before the master starts (shared by the runs). Each run
 *   writes a fresh computer of 10 partitions with one instance allocated on each and its release
 *   supplied, then starts a node for it in a process of its own (`desired-child.ts`, through tsx):
 *   the clock runs from the spawn until the master has all 10 instances `started` (the node
 *   registered, read its desired state, installed the release and processed them: one profile
 *   run each). `rss*` is the node process's peak resident memory (`VmHWM`) then. The ratios are
 *   100,000's figure over 1,000's, in the same run.
 * - watch: a master with 1,000 computers (one instance each), a process holding one blocking
 *   query per computer on its desired state, and 100 changes a second (a bang of a random
 *   computer's instance appended to the store) for 5 s: the figure is the p99 (and p50), over the
 *   changes, of the time from the append to the watching process receiving the computer's new
 *   revision.
 */
export const nodeDesired: Scenario = {
  name: "node-desired",
  title: "Node on its desired state: joining clouds of 1,000 / 10,000 / 100,000 instances; 1,000 watchers",
  figures: [
    { key: "time1k", label: "node start → its 10 instances processed, cloud of 1,000", unit: "ms", higherIsBetter: false },
    { key: "time10k", label: "node start → its 10 instances processed, cloud of 10,000", unit: "ms", higherIsBetter: false },
    { key: "time100k", label: "node start → its 10 instances processed, cloud of 100,000", unit: "ms", higherIsBetter: false },
    { key: "timeRatio", label: "time at 100,000 / time at 1,000", unit: "x", higherIsBetter: false, target: { kind: "atMost", value: 1.2 } },
    { key: "rss1k", label: "node peak RSS, cloud of 1,000", unit: "MiB", higherIsBetter: false, target: { kind: "atMost", value: 100 } },
    { key: "rss10k", label: "node peak RSS, cloud of 10,000", unit: "MiB", higherIsBetter: false, target: { kind: "atMost", value: 100 } },
    { key: "rss100k", label: "node peak RSS, cloud of 100,000", unit: "MiB", higherIsBetter: false, target: { kind: "atMost", value: 100 } },
    { key: "rssRatio", label: "RSS at 100,000 / RSS at 1,000", unit: "x", higherIsBetter: false, target: { kind: "atMost", value: 1.2 } },
    { key: "rssRuntime", label: "peak RSS of the same process with nothing of slap loaded (Node, tsx, zod)", unit: "MiB", higherIsBetter: false },
    { key: "notifyP99", label: "1,000 watchers, 100 changes/s: change → node notified, p99", unit: "ms", higherIsBetter: false, target: { kind: "atMost", value: 20 } },
    { key: "notifyP50", label: "1,000 watchers, 100 changes/s: change → node notified, p50", unit: "ms", higherIsBetter: false },
  ],
  async run(ctx) {
    const scale = scaleOf(ctx);
    const release = await ctx.shared("node-desired-release", makeRelease, (r) => r.dispose());
    const joins: Array<{ time: number; rss: number }> = [];
    for (const size of CLOUDS[scale]) {
      const cloud = await ctx.shared(`node-desired-cloud-${size}`, () => startCloud(ctx, size), (c) => c.dispose());
      await ctx.settle();
      joins.push(await joinCloud(ctx, cloud, release.url));
    }
    const watch = WATCH[scale];
    const watched = await ctx.shared(`node-desired-watch-${watch.computers}`, () => startWatched(ctx, watch.computers), (c) => c.dispose());
    await ctx.settle();
    const notify = await notifyLatencies(watched, watch.rate, watch.seconds);
    const rssRuntime = await runtimeRss();
    const [small, , large] = joins as [(typeof joins)[0], (typeof joins)[0], (typeof joins)[0]];
    return {
      time1k: joins[0]!.time,
      time10k: joins[1]!.time,
      time100k: joins[2]!.time,
      timeRatio: large.time / small.time,
      rss1k: joins[0]!.rss,
      rss10k: joins[1]!.rss,
      rss100k: joins[2]!.rss,
      rssRatio: large.rss / small.rss,
      rssRuntime,
      notifyP99: percentile(notify, 99),
      notifyP50: percentile(notify, 50),
    };
  },
};

/** A release whose profile only publishes: the node's processing is the node's own cost. */
async function makeRelease(): Promise<{ url: string; dispose(): Promise<void> }> {
  const dir = await tempDir("slap-bench-desired-release-");
  await writeFile(join(dir.path, "slap-release.json"), JSON.stringify({ name: "publisher", install: [], profiles: { default: "profile.mjs" } }));
  await writeFile(join(dir.path, "profile.mjs"), "export default async function deploy(slap) { slap.publish({ url: `http://${slap.partition.address}:${slap.partition.ports.from}/` }); }\n");
  return { url: dir.path, dispose: () => dir.dispose() };
}

interface Cloud {
  master: RunningMaster;
  store: EventStore;
  size: number;
  dispose(): Promise<void>;
}

/** An embedded log with `instances` of other computers, then a master on it that may hear the node ids of the runs. */
async function startCloud(ctx: ScenarioContext, instances: number): Promise<Cloud> {
  const dir = await tempDir("slap-bench-desired-cloud-");
  const store = await EmbeddedEventStore.open({ dir: dir.path, logger: ctx.logger });
  ctx.note(`node-desired: writing a cloud of ${instances.toLocaleString("en-US")} instances (once per bench)`);
  const computers = Array.from({ length: Math.ceil(instances / FILLER_PARTITIONS) }, (_, c) => `F${instances}C${c}`);
  await pipelined(computers, ctx.sizes.window, async (id) => {
    for (const event of [fixtures.computerRegistered(id, FILLER_PARTITIONS), fixtures.softwareSupplied(id, FILLER_RELEASE), fixtures.softwareStatus(id, FILLER_RELEASE, "available")]) {
      await store.append([event], { expectedVersion: "any" });
    }
  });
  const ids = Array.from({ length: instances }, (_, i) => i);
  await pipelined(ids, ctx.sizes.window, async (i) => {
    for (const event of fillerStory(instances, i)) await store.append([event], { expectedVersion: "any" });
  });
  const tokens = tokenFile(join(dir.path, "tokens"), { computers: Array.from({ length: MAX_RUNS + 1 }, (_, run) => nodeComputer(instances, run - 1)) });
  const master = await runMaster({ port: 0, host: "127.0.0.1", tokens }, { store, logger: ctx.logger });
  return {
    master,
    store,
    size: instances,
    async dispose() {
      await master.stop();
      await store.close();
      await dir.dispose();
    },
  };
}

const nodeComputer = (size: number, run: number): string => `DN${size}R${run + 1}`;

/** Instance `i` of a cloud: requested (with parameters, one of them a secret), allocated, published, started. */
function fillerStory(size: number, i: number): DomainEvent[] {
  const instanceId = `F${size}i${i}`;
  const computerId = `F${size}C${Math.floor(i / FILLER_PARTITIONS)}`;
  const partitionId = `slappart${i % FILLER_PARTITIONS}`;
  const started: EventOf<"InstanceStatusReported"> = { ...fixtures.instanceBanged(instanceId), type: "InstanceStatusReported", data: { status: "started", computerId, partitionId } };
  return [
    fixtures.instanceRequested(instanceId, { releaseUrl: FILLER_RELEASE, reference: `instance ${i}`, parameters: { "memory-mb": String(512 + (i % 8) * 256), password: `s3cret-${i}` } }),
    fixtures.partitionAllocated(computerId, partitionId, instanceId),
    fixtures.connectionPublished(instanceId, { url: `http://10.0.${i % 250}.1:8080/`, password: `s3cret-${i}` }, { computerId, partitionId }),
    started,
  ];
}

/** One run's node joining `cloud`: its computer and instances written, the node started in its own process, timed until they are processed. */
async function joinCloud(ctx: ScenarioContext, cloud: Cloud, releaseUrl: string): Promise<{ time: number; rss: number }> {
  const computerId = nodeComputer(cloud.size, ctx.run);
  const instanceIds = Array.from({ length: NODE_PARTITIONS }, (_, n) => `${computerId}i${n}`);
  let position = 0;
  for (const event of [
    fixtures.computerRegistered(computerId, NODE_PARTITIONS),
    fixtures.softwareSupplied(computerId, releaseUrl),
    ...instanceIds.flatMap((instanceId, n) => [fixtures.instanceRequested(instanceId, { releaseUrl, reference: `mine ${n}` }), fixtures.partitionAllocated(computerId, `slappart${n}`, instanceId)]),
  ]) {
    position = (await cloud.store.append([event], { expectedVersion: "any" })).position;
  }
  await cloud.master.master.settled(position);
  const root = await ctx.tempDir();
  const portBase = await freePortBlock(NODE_PARTITIONS * PORTS_PER_PARTITION);
  const args = { mode: "node", masterUrl: cloud.master.url, computerId, partitions: NODE_PARTITIONS, root, portBase, portsPerPartition: PORTS_PER_PARTITION, cwd: REPO };
  const started = performance.now();
  const child = spawnChild(args);
  try {
    const processed = (): boolean => instanceIds.every((id) => cloud.master.master.instance(id)?.status?.status === "started");
    await until(child, processed, PROCESSED_TIMEOUT_MS, `the node of ${computerId} processing its instances`);
    const time = performance.now() - started;
    const rss = await peakRssMiB(child.pid!);
    return { time, rss };
  } finally {
    await stopChild(child);
    await releasePortBlock(portBase);
  }
}

/** The peak RSS of the child process with nothing of slap loaded: what Node and tsx take by themselves. */
async function runtimeRss(): Promise<number> {
  const child = spawnChild({ mode: "runtime" });
  try {
    const lines = createInterface({ input: child.stdout })[Symbol.asyncIterator]();
    const first = await lines.next();
    if (first.value !== "started") throw new Error(`the runtime child answered ${String(first.value)}`);
    return await peakRssMiB(child.pid!);
  } finally {
    await stopChild(child);
  }
}

/** `desired-child.ts` in a process of its own, through tsx as `slap` runs (bin/slap.mjs). */
function spawnChild(args: Record<string, unknown>): ChildProcess & { stdout: NodeJS.ReadableStream } {
  return spawn(process.execPath, ["--import", "tsx", CHILD, JSON.stringify(args)], { stdio: ["ignore", "pipe", "inherit"] });
}

/** Polls `done` (in this process: the master's read models) every 5 ms; fails if the child exits first or the time runs out. */
async function until(child: ChildProcess, done: () => boolean, timeoutMs: number, what: string): Promise<void> {
  const deadline = performance.now() + timeoutMs;
  while (!done()) {
    if (child.exitCode !== null) throw new Error(`${what}: the process exited (${child.exitCode})`);
    if (performance.now() > deadline) throw new Error(`${what}: not done after ${timeoutMs} ms`);
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}

/** The peak resident memory of a process (`VmHWM` of /proc/<pid>/status), MiB. */
async function peakRssMiB(pid: number): Promise<number> {
  const status = await readFile(`/proc/${pid}/status`, "utf8");
  const kib = Number(/^VmHWM:\s+(\d+) kB$/m.exec(status)?.[1]);
  if (!Number.isFinite(kib)) throw new Error(`no VmHWM for process ${pid}`);
  return kib / 1024;
}

async function stopChild(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise((resolve) => child.once("exit", resolve));
  child.kill("SIGTERM");
  const timer = setTimeout(() => child.kill("SIGKILL"), 10_000);
  await exited;
  clearTimeout(timer);
}

interface Watched {
  master: RunningMaster;
  store: EventStore;
  computers: string[];
  dispose(): Promise<void>;
}

/** A master with `count` computers of one partition, each holding one instance. */
async function startWatched(ctx: ScenarioContext, count: number): Promise<Watched> {
  const dir = await tempDir("slap-bench-desired-watch-");
  const store = await EmbeddedEventStore.open({ dir: dir.path, logger: ctx.logger });
  const computers = Array.from({ length: count }, (_, c) => `W${c}`);
  await pipelined(computers, ctx.sizes.window, async (id) => {
    for (const event of [fixtures.computerRegistered(id, 1), fixtures.instanceRequested(`${id}i`, { parameters: { n: id } }), fixtures.partitionAllocated(id, "slappart0", `${id}i`)]) {
      await store.append([event], { expectedVersion: "any" });
    }
  });
  const master = await runMaster({ port: 0, host: "127.0.0.1", tokens: tokenFile(join(dir.path, "tokens"), { computers }) }, { store, logger: ctx.logger });
  return {
    master,
    store,
    computers,
    async dispose() {
      await master.stop();
      await store.close();
      await dir.dispose();
    },
  };
}

/**
 * One blocking query per computer from a process of its own, then `rate` bangs a second of a
 * random computer's instance for `seconds`: each change's time from before its append to the
 * watcher receiving a revision at least its position.
 */
async function notifyLatencies(watched: Watched, rate: number, seconds: number): Promise<number[]> {
  const args = { mode: "watchers", masterUrl: watched.master.url, computers: watched.computers, waitMs: 30_000 };
  const child = spawnChild(args);
  const lines = createInterface({ input: child.stdout })[Symbol.asyncIterator]();
  try {
    const first = await lines.next();
    if (first.value !== "watching") throw new Error(`the watchers answered ${String(first.value)}`);
    const changes: Array<{ computerId: string; position: number; at: number }> = [];
    const count = Math.max(1, Math.round(rate * seconds));
    const start = performance.now();
    for (let k = 0; k < count; k++) {
      const due = start + (k * 1_000) / rate;
      const wait = due - performance.now();
      if (wait > 0) await new Promise((resolve) => setTimeout(resolve, wait));
      const computerId = watched.computers[Math.floor(Math.random() * watched.computers.length)]!;
      const at = performance.timeOrigin + performance.now();
      const { position } = await watched.store.append([fixtures.instanceBanged(`${computerId}i`)], { expectedVersion: "any" });
      changes.push({ computerId, position, at });
    }
    await watched.master.master.settled(changes.at(-1)!.position);
    // Time for the last answers to cross.
    await new Promise((resolve) => setTimeout(resolve, 500));
    const exited = new Promise((resolve) => child.once("exit", resolve));
    child.kill("SIGTERM");
    const report = await lines.next();
    await exited;
    const seen = JSON.parse(String(report.value)) as Array<[string, number, number]>;
    const byComputer = new Map<string, Array<[number, number]>>();
    for (const [computerId, revision, at] of seen) byComputer.set(computerId, [...(byComputer.get(computerId) ?? []), [revision, at]]);
    return changes.map((change) => {
      const notified = (byComputer.get(change.computerId) ?? []).find(([revision]) => revision >= change.position);
      if (notified === undefined) throw new Error(`the watcher of ${change.computerId} never saw position ${change.position}`);
      return Math.max(0.001, notified[1] - change.at);
    });
  } finally {
    await stopChild(child);
  }
}
