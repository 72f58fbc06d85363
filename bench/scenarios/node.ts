import { setTimeout as sleep } from "node:timers/promises";
import { Writable } from "node:stream";
import { fileURLToPath, pathToFileURL } from "node:url";
import { Allocator } from "@slap/allocator";
import { JetStreamEventStore } from "@slap/eventstore-jetstream";
import { runMaster, type RunningMaster } from "@slap/master";
import { Node, removePartitionUsers } from "@slap/node";
import { as, freePortBlock, releasePortBlock, testToken, tokenFile } from "@slap/testkit";
import { pino, type Logger } from "pino";
import { median } from "../stats.js";
import { deleteStream, pipelined } from "./common.js";
import type { Scenario, ScenarioContext } from "./types.js";

/** The repository root: the node resolves the example releases' relative URLs from it. */
const REPO = fileURLToPath(new URL("../../", import.meta.url));
/** The node's own test release: one HTTP service, a secret, an HTTP promise, a one-shot. */
const WEB = pathToFileURL(fileURLToPath(new URL("../../services/node/test-releases/web", import.meta.url))).href;
/** The example releases, by the relative URLs the webapp's profile requests (its `kvdb-url` default). */
const KVDB = "examples/software/kvdb";
const WEBAPP = "examples/software/webapp";
const PORTS_PER_PARTITION = 5;
/**
 * One computer id for every run (each on a fresh stream and master): a node running as root gives
 * each partition a unix user named after the computer id and the partition (`slap-<hash>-<N>`),
 * created once and never removed, so a unique id per run would add up to 100 system users per
 * run until useradd runs out of ids. With one id, at most 100 users are made, and reused.
 */
const COMPUTER = "BENCH-NODE";
/** Longest wait for a deployment before a run is declared failed. */
const DEPLOY_TIMEOUT_MS = 120_000;

type Scale = "full" | "quick" | "test";
/** full bench (pipelined 30,000), quick bench and the warm-ups (5,000–10,000), the harness test (300). */
const scaleOf = (ctx: ScenarioContext): Scale => (ctx.sizes.pipelined >= 30_000 ? "full" : ctx.sizes.pipelined >= 5_000 ? "quick" : "test");
/** Instances reprocessed at once, and reprocessing rounds, per run. */
const REPROCESS = { full: { instances: 5, rounds: 20 }, quick: { instances: 2, rounds: 10 }, test: { instances: 1, rounds: 3 } } as const;
/** Instances of the "many on one node" figure. */
const MANY = { full: 100, quick: 20, test: 2 } as const;

/**
 * The node agent (services/node) against a real master (HTTP), allocator and JetStream stream,
 * every run on a fresh stream, temporary root and ports; every service is stopped with the node.
 *
 * - reprocess: N instances of one release deployed and ready (5 full, 2 quick, 1 in the harness
 *   test), then rounds of `node.reprocessAll()` + `node.idle()` — the no-change path of a
 *   restart/periodic processing: status `processing` then `started` over HTTP, the profile run,
 *   declarations compared with the files, one-shots run, the HTTP promise checked, connection
 *   re-published; the profile runs in a process of its own (the node's JS profile runner: its
 *   partition's warm host, and in `reprocessKvdbCold` a fresh `node` per processing:
 *   services/node/DESIGN.md, "Warm profile hosts"). Each figure is a
 *   round's wall time (reprocessAll → idle) divided by N, median over the rounds. `reprocess`
 *   deploys `services/node/test-releases/web`, whose `prepare` one-shot (`node -e …`) is
 *   spawned at every processing; `reprocessKvdb` deploys
 *   `examples/software/kvdb` (no one-shot). `reprocessLatency` (web) is the node's own time per
 *   processing (its "instance processed" log line, from "processing instance" to the `started`
 *   report), the median over every instance of every round: with N partitions processed in
 *   parallel it grows with N on a small machine. A round must process every instance once, end
 *   `started` and keep every service's pid (no restart), or the run fails.
 * - webapp: `examples/software/{kvdb,webapp}` supplied and available; the clock runs from the
 *   first `POST /v1/requests` of the webapp (as a user, re-asked with `?wait=` until `ready`)
 *   until `GET <published url>/` answers 200 with "visits" in the body — allocation, processing,
 *   the webapp's `Waiting` on its kvdb, the kvdb's deployment, the serial bump and the webapp's
 *   second processing included.
 * - many: M requests of `web` (100 full, 20 quick, 2 in the harness test) on one node with M
 *   partitions, all posted at once; the clock stops when every answer is `ready`.
 */
export const node: Scenario = {
  name: "node",
  title: "Node agent: no-change reprocessing, request → serving, many instances on one node",
  figures: [
    {
      key: "reprocess",
      label: "no-change reprocessing per instance, test-release web (one-shot each time), 5 at once (quick: 2)",
      unit: "ms",
      higherIsBetter: false,
      target: { kind: "atMost", value: 20 },
    },
    {
      key: "reprocessKvdb",
      label: "no-change reprocessing per instance, example kvdb, 5 at once (quick: 2)",
      unit: "ms",
      higherIsBetter: false,
      target: { kind: "atMost", value: 20 },
    },
    {
      key: "reprocessKvdbCold",
      label: "no-change reprocessing per instance, example kvdb, no warm profile host (SLAP_WARM_PROFILES=0: a fresh node per processing)",
      unit: "ms",
      higherIsBetter: false,
    },
    { key: "reprocessLatency", label: "no-change reprocessing, web: the node's time per processing", unit: "ms", higherIsBetter: false },
    { key: "webapp", label: "request → webapp answering HTTP (with its kvdb)", unit: "ms", higherIsBetter: false, target: { kind: "atMost", value: 2_000 } },
    { key: "many", label: "100 instances on one node: request → all ready (quick: 20)", unit: "s", higherIsBetter: false },
  ],
  async run(ctx) {
    const scale = scaleOf(ctx);
    const { instances, rounds } = REPROCESS[scale];
    const web = await reprocessing(ctx, WEB, "web", instances, rounds);
    const kvdb = await reprocessing(ctx, KVDB, "kvdb", instances, rounds);
    const kvdbCold = await reprocessing(ctx, KVDB, "kvdb", instances, rounds, 0);
    const webapp = await webappServing(ctx);
    const many = await manyInstances(ctx, MANY[scale]);
    return { reprocess: web.wallPerInstance, reprocessKvdb: kvdb.wallPerInstance, reprocessKvdbCold: kvdbCold.wallPerInstance, reprocessLatency: web.perProcessing, webapp, many };
  },
};

// ---------------------------------------------------------------------------------------------
// A master, an allocator and a node on a fresh stream
// ---------------------------------------------------------------------------------------------

interface Env {
  master: RunningMaster;
  node: Node;
  computerId: string;
}

interface EnvOptions {
  partitions: number;
  releases: readonly string[];
  nodeLogger?: Logger;
  /** The node's `warmProfiles` (default: the node's). */
  warmProfiles?: number;
}

/** Starts master, allocator and node, supplies `releases` and waits until they are available; stops it all afterwards. */
async function withEnv<T>(ctx: ScenarioContext, options: EnvOptions, fn: (env: Env) => Promise<T>): Promise<T> {
  const streamName = ctx.unique("NODE");
  const subjectPrefix = `bench.${streamName}`;
  const computerId = COMPUTER;
  const cleanup: Array<() => Promise<unknown>> = [];
  try {
    const open = async (): Promise<JetStreamEventStore> => {
      const store = await JetStreamEventStore.connect({ servers: ctx.natsUrl, streamName, subjectPrefix, logger: ctx.logger });
      cleanup.push(() => store.close());
      return store;
    };
    const masterStore = await open();
    const allocatorStore = await open();
    const tokens = tokenFile(await ctx.tempDir(), { users: ["alice"], computers: [computerId] });
    const master = await runMaster({ port: 0, host: "127.0.0.1", tokens }, { store: masterStore, logger: ctx.logger });
    cleanup.push(() => master.stop());
    const allocator = new Allocator({ store: allocatorStore, logger: ctx.logger });
    await allocator.start();
    cleanup.push(() => allocator.stop());
    const portBase = await freePortBlock(options.partitions * PORTS_PER_PARTITION);
    cleanup.push(() => releasePortBlock(portBase));
    const agent = new Node({
      masterUrl: master.url,
      token: testToken.node(computerId),
      computerId,
      partitions: options.partitions,
      root: await ctx.tempDir(),
      portBase,
      portsPerPartition: PORTS_PER_PARTITION,
      cwd: REPO,
      ...(options.warmProfiles === undefined ? {} : { warmProfiles: options.warmProfiles }),
      logger: options.nodeLogger ?? ctx.logger,
    });
    // Registered before start: a start that fails half-way may have spawned nothing yet, and stop() is safe then.
    cleanup.push(() => agent.stop());
    await agent.start();
    const env: Env = { master, node: agent, computerId };
    for (const releaseUrl of options.releases) {
      const { status, body } = await call(master, "POST", `/v1/computers/${computerId}/supply`, { releaseUrl }, ADMIN);
      if (status !== 200) throw new Error(`supply ${releaseUrl} answered ${status}: ${JSON.stringify(body)}`);
    }
    await untilAvailable(env, options.releases);
    return await fn(env);
  } finally {
    // Node first (its services stop), then allocator and master, then the connections.
    for (const close of cleanup.reverse()) await close().catch((error: unknown) => ctx.note(`node scenario cleanup: ${String(error)}`));
    await deleteStream(ctx.natsUrl, streamName);
    // The partition users a root node made for this run (none when not root): nothing is left on the host.
    await removePartitionUsers(computerId, options.partitions).catch((error: unknown) => ctx.note(`node scenario cleanup: ${String(error)}`));
  }
}

const USER = as.user("alice");
const ADMIN = as.admin();

async function call(
  master: RunningMaster,
  method: string,
  path: string,
  body?: unknown,
  headers: Record<string, string> = USER,
): Promise<{ status: number; body: Record<string, unknown> }> {
  const response = await fetch(`${master.url}${path}`, {
    method,
    headers: { ...headers, ...(body === undefined ? {} : { "content-type": "application/json" }) },
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
  });
  return { status: response.status, body: (await response.json()) as Record<string, unknown> };
}

async function untilAvailable(env: Env, releases: readonly string[]): Promise<void> {
  const deadline = Date.now() + DEPLOY_TIMEOUT_MS;
  for (;;) {
    const { body } = await call(env.master, "GET", `/v1/computers/${env.computerId}`, undefined, ADMIN);
    const software = (body.computer as { software?: Record<string, { status: string }> } | undefined)?.software ?? {};
    const statuses = releases.map((url) => software[url]?.status);
    const failed = releases.filter((url) => software[url]?.status === "error");
    if (failed.length > 0) throw new Error(`install failed on the node: ${failed.join(", ")}`);
    if (statuses.every((s) => s === "available")) return;
    if (Date.now() > deadline) throw new Error(`releases not available after ${DEPLOY_TIMEOUT_MS} ms: ${JSON.stringify(statuses)}`);
    await sleep(20);
  }
}

interface ReadyAnswer {
  instanceId: string;
  connection: Record<string, string>;
}

/** Requests an instance as the user, asking again (`?wait=`, long poll) until the answer is `ready`. */
async function requestUntilReady(env: Env, releaseUrl: string, reference: string): Promise<ReadyAnswer> {
  const deadline = Date.now() + DEPLOY_TIMEOUT_MS;
  for (;;) {
    const { status, body } = await call(env.master, "POST", "/v1/requests?wait=10000", { releaseUrl, reference });
    if (status >= 300 && status !== 202) throw new Error(`request ${reference} answered ${status}: ${JSON.stringify(body)}`);
    if (body.status === "ready") return { instanceId: body.instanceId as string, connection: body.connection as Record<string, string> };
    if (Date.now() > deadline) throw new Error(`${reference} not ready after ${DEPLOY_TIMEOUT_MS} ms: ${JSON.stringify(body)}`);
  }
}

// ---------------------------------------------------------------------------------------------
// Figures
// ---------------------------------------------------------------------------------------------

/** A node logger (info) that keeps every "instance processed" line's `durationMs` and outcome; other lines are dropped unparsed. */
function processingLog(): { logger: Logger; processed: Array<{ durationMs: number; outcome: string }> } {
  const processed: Array<{ durationMs: number; outcome: string }> = [];
  const sink = new Writable({
    write(chunk: Buffer, _encoding, done) {
      for (const line of chunk.toString().split("\n")) {
        if (!line.includes('"instance processed"')) continue;
        const record = JSON.parse(line) as { durationMs?: number; outcome?: string };
        processed.push({ durationMs: record.durationMs ?? Number.NaN, outcome: String(record.outcome) });
      }
      done();
    },
  });
  return { logger: pino({ level: "info" }, sink), processed };
}

/** N instances of `releaseUrl` (its service `service`), then `rounds` no-change reprocessings of them all (`warmProfiles`: the node's setting). */
async function reprocessing(
  ctx: ScenarioContext,
  releaseUrl: string,
  service: string,
  instances: number,
  rounds: number,
  warmProfiles?: number,
): Promise<{ perProcessing: number; wallPerInstance: number }> {
  const log = processingLog();
  return withEnv(ctx, { partitions: instances, releases: [releaseUrl], nodeLogger: log.logger, ...(warmProfiles === undefined ? {} : { warmProfiles }) }, async (env) => {
    await Promise.all(Array.from({ length: instances }, (_, i) => requestUntilReady(env, releaseUrl, `site${i}`)));
    // Ready means published: the `started` report comes right after; let every processing end.
    await env.node.idle();
    const partitions = Array.from({ length: instances }, (_, i) => `slappart${i}`);
    const pids = partitions.map((p) => env.node.servicePid(p, service));
    if (pids.some((pid) => pid === undefined)) throw new Error(`not every partition runs its service: ${JSON.stringify(pids)}`);
    const walls: number[] = [];
    await ctx.settle();
    log.processed.length = 0;
    for (let round = 0; round < rounds; round++) {
      const t0 = performance.now();
      env.node.reprocessAll();
      await env.node.idle();
      walls.push((performance.now() - t0) / instances);
    }
    const processed = log.processed.splice(0);
    if (processed.length !== rounds * instances) throw new Error(`${processed.length} processings logged, ${rounds * instances} expected`);
    const failed = processed.filter((p) => p.outcome !== "started");
    if (failed.length > 0) throw new Error(`${failed.length} no-change processings did not end started: ${JSON.stringify(failed[0])}`);
    const after = partitions.map((p) => env.node.servicePid(p, service));
    if (after.some((pid, i) => pid !== pids[i])) throw new Error(`a no-change processing restarted a service: ${JSON.stringify({ pids, after })}`);
    // durationMs is whole milliseconds (Date.now()); the median of many is still meaningful, 0 is not a time.
    return { perProcessing: Math.max(median(processed.map((p) => p.durationMs)), 0.5), wallPerInstance: median(walls) };
  });
}

async function webappServing(ctx: ScenarioContext): Promise<number> {
  return withEnv(ctx, { partitions: 3, releases: [KVDB, WEBAPP] }, async (env) => {
    await ctx.settle();
    const t0 = performance.now();
    const { connection } = await requestUntilReady(env, WEBAPP, "shop");
    const url = `${(connection.url ?? "").replace(/\/+$/, "")}/`;
    if (!url.startsWith("http")) throw new Error(`the webapp published no url: ${JSON.stringify(connection)}`);
    const deadline = Date.now() + DEPLOY_TIMEOUT_MS;
    let last = "";
    for (;;) {
      try {
        const response = await fetch(url, { signal: AbortSignal.timeout(5_000) });
        const text = await response.text();
        if (response.status === 200 && text.includes("visits")) break;
        last = `${response.status} ${text.slice(0, 200)}`;
      } catch (error) {
        last = String(error);
      }
      if (Date.now() > deadline) throw new Error(`the webapp at ${url} did not serve its page: ${last}`);
      await sleep(5);
    }
    const ms = performance.now() - t0;
    await env.node.idle();
    return ms;
  });
}

async function manyInstances(ctx: ScenarioContext, count: number): Promise<number> {
  return withEnv(ctx, { partitions: count, releases: [WEB] }, async (env) => {
    const references = Array.from({ length: count }, (_, i) => `many${i}`);
    await ctx.settle();
    const t0 = performance.now();
    await pipelined(references, count, (reference) => requestUntilReady(env, WEB, reference));
    const seconds = (performance.now() - t0) / 1_000;
    await env.node.idle();
    return seconds;
  });
}
