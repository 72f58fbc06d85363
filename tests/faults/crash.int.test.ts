/**
 * Fault 1 of "Reliability and security": crashes. nats-server, a master, two allocators and two
 * nodes (500 partitions each) run as real processes; a client sends 1,000 requests at a steady
 * pace while a seeded schedule kills each kind of process with SIGKILL (nats-server, the master,
 * an allocator, a node) and starts it again with the same configuration and data. Once
 * everything has settled, the log (read from JetStream directly) and the master's API must show
 * that nothing was lost, nothing was placed twice, the read models are a fold of the log, and
 * exactly one service process runs per instance.
 *
 * Replay a failure with `SLAP_FAULT_SEED=<seed printed in the message>`.
 */
import assert from "node:assert/strict";
import { randomBytes, randomInt } from "node:crypto";
import { mkdir, readFile, readlink, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { after, before, describe, it, type TestContext } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import { pino } from "pino";
import type { Commit } from "@slap/events";
import { JetStreamEventStore } from "@slap/eventstore-jetstream";
import { pidFileOf } from "@slap/node";
import { faultSeed, freePortBlock, seededRandom, startNatsServer, tempDir, type NatsServer, type SeededRandom } from "@slap/testkit";
import { commandLine, processesRunning, ServiceProcess } from "./processes.js";

const SEED = faultSeed();
const REQUESTS = 1_000;
const CONCURRENCY = 8;
/** One request every this many ms: the stream lasts about REQUESTS × PACE_MS. */
const PACE_MS = 30;
/** Every BANG_EVERY-th request also bangs an earlier instance (an acknowledged write that answers a position). */
const BANG_EVERY = 20;
const PARTITIONS = 500;
/** Deadline to settle after the stream (it takes 5-20 s), and for the whole test: a wedged run fails, it does not hang. */
const SETTLE_MS = 60_000;
const TEST_TIMEOUT_MS = 150_000;

const RUN = randomBytes(3).toString("hex");
const COMPUTERS = [`CRASH-${RUN}-1`, `CRASH-${RUN}-2`];
/** The argument of this run's `sleep` services: finds exactly this run's processes in /proc. */
const SLEEP_ARG = `100000.${randomInt(100_000, 999_999)}`;
const SERVICE = "sleeper";
const ADMIN_TOKEN = `admin-${randomBytes(16).toString("hex")}`;
const NODE_TOKENS = COMPUTERS.map(() => `node-${randomBytes(16).toString("hex")}`);

const KINDS = ["master", "allocator", "node", "nats"] as const;
type Kind = (typeof KINDS)[number];

interface Fault {
  kind: Kind;
  target: string;
  atMs: number;
  downMs: number;
  /** From the restart to ready again. */
  backMs: number;
}

interface Sent {
  reference: string;
  parameters: Record<string, string>;
  instanceId: string | undefined;
  /** HTTP attempts (1 + retries). */
  attempts: number;
  /** The reason it was given up: a refusal (4xx) or the deadline. */
  failure: string | undefined;
}

interface Acked {
  position: number;
  what: string;
  type: string;
  streamKey: string;
}

/**
 * The faults, all drawn from the seed before the stream starts (so nothing else draws from it in
 * between): one of each kind in a random order, then two more of random kinds; each at a random
 * moment of the stream, on a random allocator or node (0 or 1), down for 200-1,500 ms.
 */
function faultPlan(rng: SeededRandom, streamMs: number): Array<{ kind: Kind; victim: number; atMs: number; downMs: number }> {
  const kinds: Kind[] = [...KINDS];
  for (let i = kinds.length - 1; i > 0; i--) {
    const j = rng.int(0, i);
    [kinds[i], kinds[j]] = [kinds[j]!, kinds[i]!];
  }
  kinds.push(rng.pick(KINDS), rng.pick(KINDS));
  const moments = kinds.map(() => rng.int(1_000, streamMs - 2_000)).sort((a, b) => a - b);
  return kinds.map((kind, k) => ({ kind, victim: rng.int(0, 1), atMs: moments[k]!, downMs: rng.int(200, 1_500) }));
}

function replay(extra = ""): string {
  return `(seed ${SEED}: replay with SLAP_FAULT_SEED=${SEED})${extra === "" ? "" : `\n${extra}`}`;
}

/** A release of one long-running service (`sleep`, cheap) that publishes where it runs. */
async function writeRelease(dir: string): Promise<void> {
  await mkdir(dir, { recursive: true });
  await writeFile(join(dir, "slap-release.json"), `${JSON.stringify({ name: "sleeper", profiles: { default: "profile.mjs" } }, null, 2)}\n`);
  await writeFile(
    join(dir, "profile.mjs"),
    `export default async function deploy(slap) {
  slap.service(${JSON.stringify(SERVICE)}, { command: ["sleep", ${JSON.stringify(SLEEP_ARG)}] });
  slap.publish({ computer: slap.partition.computerId, partition: slap.partition.partitionId, reference: slap.instance.reference });
}
`,
  );
}

/** The master's API as the admin; network errors and 5xx are `undefined` status (the caller decides to retry). */
class Api {
  constructor(readonly url: string) {}

  async call(method: string, path: string, body?: unknown, timeoutMs = 20_000): Promise<{ status: number; body: Record<string, unknown> } | { status: undefined; error: string }> {
    try {
      const response = await fetch(`${this.url}${path}`, {
        method,
        headers: {
          authorization: `Bearer ${ADMIN_TOKEN}`,
          "x-slap-user": "admin",
          ...(body === undefined ? {} : { "content-type": "application/json" }),
        },
        ...(body === undefined ? {} : { body: JSON.stringify(body) }),
        signal: AbortSignal.timeout(timeoutMs),
      });
      const text = await response.text();
      if (response.status >= 500) return { status: undefined, error: `${response.status} ${text.slice(0, 200)}` };
      return { status: response.status, body: JSON.parse(text) as Record<string, unknown> };
    } catch (error) {
      return { status: undefined, error: error instanceof Error ? `${error.name}: ${error.message}` : String(error) };
    }
  }

  /** Retries network errors and 5xx until `deadline`; answers the first 2xx/4xx. */
  async retrying(method: string, path: string, body: unknown, deadline: number, onRetry: () => void = () => undefined): Promise<{ status: number; body: Record<string, unknown> }> {
    for (;;) {
      const result = await this.call(method, path, body);
      if (result.status !== undefined) return result;
      if (Date.now() > deadline) throw new Error(`${method} ${path}: no answer before the deadline (last: ${result.error})`);
      onRetry();
      await sleep(250);
    }
  }
}

interface Cluster {
  nats: NatsServer;
  master: ServiceProcess;
  allocators: ServiceProcess[];
  nodes: ServiceProcess[];
  all(): ServiceProcess[];
}

describe("crashes: kill -9 of nats-server, the master, an allocator and a node during a stream of requests", () => {
  let tmp: { path: string; dispose(): Promise<void> } | undefined;
  let cluster: Cluster | undefined;
  let lastResort: (() => void) | undefined;

  before(async () => {
    tmp = await tempDir("slap-crash-");
  });

  after(async () => {
    if (cluster !== undefined) {
      await Promise.all(cluster.nodes.map((n) => n.stop(20_000)));
      await Promise.all([...cluster.allocators, cluster.master].map((p) => p.stop(10_000)));
      await cluster.nats.dispose();
    }
    for (const pid of await processesRunning(["sleep", SLEEP_ARG])) {
      process.stderr.write(`crash test teardown: killing a leftover service process ${pid} (sleep ${SLEEP_ARG})\n`);
      try {
        process.kill(pid, "SIGKILL");
      } catch {
        // gone meanwhile
      }
    }
    if (lastResort !== undefined) process.off("exit", lastResort);
    await tmp?.dispose();
  });

  it("loses no acknowledged request or event, never places twice, and runs exactly one service per instance", { timeout: TEST_TIMEOUT_MS }, async (t: TestContext) => {
    const started = Date.now();
    const dir = tmp!.path;
    const releaseDir = join(dir, "release");
    await writeRelease(releaseDir);
    const tokensFile = join(dir, "tokens.json");
    await writeFile(
      tokensFile,
      JSON.stringify({
        tokens: [{ token: ADMIN_TOKEN, role: "admin" }, ...COMPUTERS.map((computer, k) => ({ token: NODE_TOKENS[k], role: "node", computer }))],
      }),
      { mode: 0o600 },
    );

    const nats = await startNatsServer();
    const masterPort = await freePortBlock(1);
    /** Partition ports, one per partition: node 1 has the first PARTITIONS of the block, node 2 the next. */
    const portBase = await freePortBlock(COMPUTERS.length * PARTITIONS);
    const masterUrl = `http://127.0.0.1:${masterPort}`;
    const env: NodeJS.ProcessEnv = { ...process.env, LOG_LEVEL: "warn", NATS_URL: nats.url, SLAP_PARTITION_USERS: "off" };
    for (const name of ["SLAP_MASTER", "SLAP_TOKEN", "SLAP_TOKEN_FILE", "SLAP_TOKENS", "SLAP_STREAM", "SLAP_DATA", "PORT", "HOST"]) delete env[name];
    const logs = join(dir, "logs");
    await mkdir(logs);
    const master = new ServiceProcess({
      name: "master",
      args: ["master", "--nats", nats.url, "--port", String(masterPort), "--host", "127.0.0.1", "--data", join(dir, "master")],
      env: { ...env, SLAP_TOKENS: tokensFile },
      logFile: join(logs, "master.log"),
      ready: /master listening on /,
    });
    const allocators = [1, 2].map(
      (k) =>
        new ServiceProcess({
          name: `allocator-${k}`,
          args: ["allocator", "--nats", nats.url, "--replica", `allocator-${k}`, "--data", join(dir, `allocator-${k}`)],
          env,
          logFile: join(logs, `allocator-${k}.log`),
          ready: /allocator running/,
        }),
    );
    const nodeRoots = COMPUTERS.map((_, k) => join(dir, `node-${k + 1}`));
    const nodes = COMPUTERS.map(
      (computer, k) =>
        new ServiceProcess({
          name: `node-${k + 1}`,
          args: [
            "node",
            "--master",
            masterUrl,
            "--computer",
            computer,
            "--partitions",
            String(PARTITIONS),
            "--root",
            nodeRoots[k]!,
            "--port-base",
            String(portBase + k * PARTITIONS),
            "--ports-per-partition",
            "1",
          ],
          // No NATS setting at all: a node talks to the master only.
          env: { ...Object.fromEntries(Object.entries(env).filter(([key]) => !key.startsWith("NATS_"))), SLAP_TOKEN: NODE_TOKENS[k] },
          logFile: join(logs, `node-${k + 1}.log`),
          ready: /node \S+ running with/,
        }),
    );
    cluster = { nats, master, allocators, nodes, all: () => [master, ...allocators, ...nodes] };
    const everyone = cluster.all();
    lastResort = () => {
      for (const p of everyone) p.killGroup();
    };
    process.once("exit", lastResort);
    const tails = async (): Promise<string> => {
      const died = everyone.flatMap((p) => p.died);
      return `${died.length === 0 ? "" : `services that died without a fault: ${died.join("; ")}\n`}${(await Promise.all(everyone.map((p) => p.tail()))).join("\n")}`;
    };
    const fail = async (message: string): Promise<never> => assert.fail(`${message}\n${replay(await tails())}`);

    await master.start();
    await Promise.all(allocators.map((a) => a.start()));
    await Promise.all(nodes.map((n) => n.start()));
    const bootMs = Date.now() - started;
    const api = new Api(masterUrl);

    // Supply the release to both computers: acknowledged writes with positions.
    const acked: Acked[] = [];
    for (const computer of COMPUTERS) {
      const answer = await api.retrying("POST", `/v1/computers/${computer}/supply`, { releaseUrl: releaseDir, state: "available" }, Date.now() + 30_000);
      if (answer.status !== 200) await fail(`supply to ${computer}: ${answer.status} ${JSON.stringify(answer.body)}`);
      acked.push({ position: answer.body.position as number, what: `supply to ${computer}`, type: "SoftwareSupplied", streamKey: `computer.${computer}.computer` });
    }

    // The stream of requests, and the faults during it.
    const rng = seededRandom(SEED);
    const sent: Sent[] = Array.from({ length: REQUESTS }, (_, i) => ({
      reference: `crash-${RUN}-${i}`,
      parameters: { n: String(i), run: RUN },
      instanceId: undefined,
      attempts: 0,
      failure: undefined,
    }));
    let retries = 0;
    /** Why attempts were retried, by kind of error: a diagnosis of how the system looked to a client. */
    const retryReasons = new Map<string, number>();
    let slowest = { ms: 0, what: "" };
    let bangsUnacknowledged = 0;
    const streamStart = Date.now();
    let next = 0;
    let streamDone = false;
    const worker = async (): Promise<void> => {
      for (;;) {
        const i = next++;
        if (i >= REQUESTS) return;
        const request = sent[i]!;
        const due = streamStart + i * PACE_MS;
        if (due > Date.now()) await sleep(due - Date.now());
        const body = { releaseUrl: releaseDir, reference: request.reference, parameters: request.parameters };
        const deadline = Date.now() + 90_000;
        for (;;) {
          request.attempts++;
          const attemptAt = Date.now();
          const answer = await api.call("POST", "/v1/requests", body);
          if (Date.now() - attemptAt > slowest.ms) slowest = { ms: Date.now() - attemptAt, what: `${request.reference} (attempt ${request.attempts}) at +${((attemptAt - streamStart) / 1000).toFixed(1)} s` };
          if (answer.status === 200 || answer.status === 202) {
            request.instanceId = answer.body.instanceId as string;
            break;
          }
          if (answer.status !== undefined) {
            request.failure = `${answer.status} ${JSON.stringify(answer.body)}`;
            break;
          }
          if (Date.now() > deadline) {
            request.failure = `no answer within 90 s (last: ${answer.error})`;
            break;
          }
          retries++;
          const reason = answer.error.replace(/\d+/g, "N").slice(0, 80);
          retryReasons.set(reason, (retryReasons.get(reason) ?? 0) + 1);
          await sleep(200 + Math.floor(Math.random() * 300));
        }
        if (i % BANG_EVERY === BANG_EVERY - 1) {
          const target = sent[i - BANG_EVERY / 2]?.instanceId;
          if (target !== undefined) {
            const bang = await api.call("POST", `/v1/instances/${target}/bang`, { message: "crash test" });
            if (bang.status === 200) {
              acked.push({ position: bang.body.position as number, what: `bang of ${target}`, type: "InstanceBanged", streamKey: `tree.${target}.instance.${target}` }); // a root instance: its tree is itself
            } else bangsUnacknowledged++;
          }
        }
      }
    };

    const faults: Fault[] = [];
    const plan = faultPlan(rng, REQUESTS * PACE_MS);
    const injector = async (): Promise<void> => {
      for (const [k, { kind, victim: which, atMs: due, downMs }] of plan.entries()) {
        // The extra faults only while the stream still runs; one of each kind in any case.
        if (k >= KINDS.length && streamDone) return;
        if (streamStart + due > Date.now()) await sleep(streamStart + due - Date.now());
        const atMs = Date.now() - streamStart;
        let target: string;
        let back: () => Promise<void>;
        if (kind === "nats") {
          target = "nats-server";
          await nats.stop("SIGKILL");
          back = () => nats.restart();
        } else {
          const victim = kind === "master" ? master : (kind === "allocator" ? allocators : nodes)[which]!;
          target = victim.name;
          await victim.kill9();
          back = () => victim.start();
        }
        await sleep(downMs);
        const restartAt = Date.now();
        await back();
        faults.push({ kind, target, atMs, downMs, backMs: Date.now() - restartAt });
      }
    };

    const stream = Promise.all(Array.from({ length: CONCURRENCY }, () => worker())).finally(() => (streamDone = true));
    await Promise.all([stream, injector().catch((error: unknown) => fail(`a fault could not be injected or recovered from: ${error instanceof Error ? error.message : String(error)}`))]);
    const streamEndMs = Date.now() - streamStart;

    const lost = sent.filter((s) => s.instanceId === undefined);
    if (lost.length > 0) await fail(`${lost.length} requests were never acknowledged: ${lost.slice(0, 5).map((s) => `${s.reference}: ${s.failure}`).join("; ")}`);
    for (const kind of KINDS) {
      assert.ok(faults.some((f) => f.kind === kind), `a ${kind} was killed ${replay()}`);
    }

    // Settle: every instance ready and started, its service running as its pid file says.
    const byInstance = new Map(sent.map((s) => [s.instanceId!, s]));
    assert.equal(byInstance.size, REQUESTS, `distinct instances for distinct references ${replay()}`);
    const settleStart = Date.now();
    let notYet = "";
    const progress: string[] = [];
    for (;;) {
      notYet = await unsettled(api, byInstance, COMPUTERS, nodeRoots);
      if (notYet === "") break;
      if (progress.length < Math.floor((Date.now() - settleStart) / 10_000)) progress.push(`+${Math.round((Date.now() - settleStart) / 1000)} s: ${notYet.slice(0, 300)}`);
      if (Date.now() - settleStart > SETTLE_MS) await fail(`not settled within ${SETTLE_MS / 1000} s after the stream: ${notYet}`);
      await sleep(1_000);
    }
    const settleMs = Date.now() - settleStart;

    assert.deepEqual(everyone.flatMap((p) => p.died), [], `no service died but those killed on purpose ${replay()}`);

    // The log, read from JetStream directly.
    const store = await JetStreamEventStore.connect({ servers: nats.url, logger: pino({ level: "silent" }) });
    const commits: Commit[] = [];
    try {
      for await (const commit of store.readAll()) commits.push(commit);
    } finally {
      await store.close();
    }

    // 1 and 2: one binding claim per instance, never released; no partition ever held two instances.
    const claims = new Map<string, Array<{ position: number; partition: string }>>();
    const releases = new Map<string, Array<{ position: number; partition: string; reason: string }>>();
    const holder = new Map<string, string>();
    const doubleHeld: string[] = [];
    const requested = new Map<string, Array<Record<string, unknown>>>();
    for (const commit of commits) {
      for (const event of commit.events) {
        if (event.type === "PartitionAllocated" || event.type === "PartitionReleased") {
          const { computerId, partitionId } = event.aggregate as { computerId: string; partitionId: string };
          const partition = `${computerId}/${partitionId}`;
          const instanceId = event.data.instanceId;
          if (event.type === "PartitionAllocated") {
            const held = holder.get(partition);
            if (held !== undefined) doubleHeld.push(`${partition} claimed for ${instanceId} at ${commit.position} while held by ${held}`);
            holder.set(partition, instanceId);
            claims.set(instanceId, [...(claims.get(instanceId) ?? []), { position: commit.position, partition }]);
          } else {
            if (holder.get(partition) !== instanceId) doubleHeld.push(`${partition} released for ${instanceId} at ${commit.position} while held by ${holder.get(partition) ?? "nobody"}`);
            holder.delete(partition);
            releases.set(instanceId, [...(releases.get(instanceId) ?? []), { position: commit.position, partition, reason: event.data.reason }]);
          }
        } else if (event.type === "InstanceRequested") {
          const instanceId = (event.aggregate as { instanceId: string }).instanceId;
          requested.set(instanceId, [...(requested.get(instanceId) ?? []), event.data.parameters]);
        }
      }
    }
    assert.deepEqual(doubleHeld, [], `no partition ever held two instances ${replay()}`);
    let superseded = 0;
    const bindings = new Map<string, string>();
    const placementProblems: string[] = [];
    for (const [instanceId, request] of byInstance) {
      const mine = claims.get(instanceId) ?? [];
      const released = releases.get(instanceId) ?? [];
      const binding = mine[0];
      if (binding === undefined) {
        placementProblems.push(`${request.reference}: never allocated`);
        continue;
      }
      bindings.set(instanceId, binding.partition);
      if (released.some((r) => r.partition === binding.partition)) placementProblems.push(`${request.reference}: its partition ${binding.partition} was released`);
      // A later claim of the same instance (two allocators raced) is a superseded claim: never a
      // binding, and released ("superseded") by a replica. It must not stay, nor be released otherwise.
      for (const extraClaim of mine.slice(1)) {
        superseded++;
        const release = released.find((r) => r.partition === extraClaim.partition && r.position > extraClaim.position);
        if (release?.reason !== "superseded") placementProblems.push(`${request.reference}: a second claim on ${extraClaim.partition} at ${extraClaim.position} (${release === undefined ? "never released" : `released as ${release.reason}`})`);
      }
      if (released.length !== mine.length - 1) placementProblems.push(`${request.reference}: ${mine.length} claims, ${released.length} releases`);
    }
    assert.deepEqual(placementProblems.slice(0, 20), [], `every instance allocated exactly once and never released ${replay()}`);

    // 1: its answer is ready, with the connection parameters its partition published.
    const answerProblems: string[] = [];
    const instanceIds = [...byInstance.keys()];
    let cursor = 0;
    await Promise.all(
      Array.from({ length: CONCURRENCY }, async () => {
        for (let i = cursor++; i < instanceIds.length; i = cursor++) {
          const instanceId = instanceIds[i]!;
          const request = byInstance.get(instanceId)!;
          const answer = await api.retrying("POST", "/v1/requests", { releaseUrl: releaseDir, reference: request.reference, parameters: request.parameters }, Date.now() + 30_000);
          const [computer, partition] = bindings.get(instanceId)!.split("/");
          const expected = { status: "ready", instanceId, reference: request.reference, connection: { computer, partition, reference: request.reference } };
          // Its health (when its node last said how it is doing) is not what this test checks.
          const { health: _, ...body } = answer.body;
          if (answer.status !== 200 || JSON.stringify(sortKeys(body)) !== JSON.stringify(sortKeys(expected))) {
            answerProblems.push(`${request.reference}: ${answer.status} ${JSON.stringify(answer.body)} (expected ${JSON.stringify(expected)})`);
          }
        }
      }),
    );
    assert.deepEqual(answerProblems.slice(0, 10), [], `every answer is ready with its connection parameters ${replay()}`);

    // 3: every acknowledged request and position is in the log.
    const missing: string[] = [];
    for (const [instanceId, request] of byInstance) {
      const found = requested.get(instanceId) ?? [];
      if (found.length !== 1) missing.push(`${request.reference}: ${found.length} InstanceRequested`);
      else if (JSON.stringify(sortKeys(found[0]!)) !== JSON.stringify(sortKeys(request.parameters))) missing.push(`${request.reference}: requested with ${JSON.stringify(found[0])}, sent ${JSON.stringify(request.parameters)}`);
    }
    const byPosition = new Map(commits.map((c) => [c.position, c]));
    for (const ack of acked) {
      const commit = byPosition.get(ack.position);
      if (commit === undefined) missing.push(`${ack.what}: position ${ack.position} is not in the log`);
      else if (commit.streamKey !== ack.streamKey || !commit.events.some((e) => e.type === ack.type)) {
        missing.push(`${ack.what}: position ${ack.position} holds ${commit.events.map((e) => e.type).join(", ")} on ${commit.streamKey}`);
      }
    }
    assert.deepEqual(missing.slice(0, 20), [], `no acknowledged write is missing from the log ${replay()}`);

    // 4: the read models equal a rebuild from the log.
    const audit = await api.retrying("GET", "/v1/audit", undefined, Date.now() + 30_000);
    assert.equal(audit.status, 200, `audit answered ${audit.status} ${JSON.stringify(audit.body)} ${replay()}`);
    assert.equal(audit.body.equal, true, `the read models equal a rebuild from the log: ${JSON.stringify(audit.body.models).slice(0, 2_000)} ${replay()}`);

    // 5: exactly one service process per instance, the one its pid file names.
    const pids = new Set<number>();
    const serviceProblems: string[] = [];
    for (const [instanceId, request] of byInstance) {
      const [computer, partition] = bindings.get(instanceId)!.split("/");
      const root = nodeRoots[COMPUTERS.indexOf(computer!)]!;
      const checked = await serviceOf(join(root, partition!));
      if (typeof checked === "string") serviceProblems.push(`${request.reference} on ${computer}/${partition}: ${checked}`);
      else pids.add(checked);
    }
    const running = await processesRunning(["sleep", SLEEP_ARG]);
    const strays = running.filter((pid) => !pids.has(pid));
    assert.deepEqual(serviceProblems.slice(0, 10), [], `every instance's service runs as its pid file says ${replay()}`);
    assert.equal(pids.size, REQUESTS, `one distinct service process per instance ${replay()}`);
    if (strays.length > 0) {
      // Whose is it: its partition (cwd), its parent (a node, or init for an orphan), and the faults.
      const described = await Promise.all(strays.map(async (pid) => `${pid}: ${await describeProcess(pid)}`));
      assert.fail(`no service process besides the instances' own (sleep ${SLEEP_ARG}): ${described.join("; ")}; faults: ${JSON.stringify(faults)} ${replay()}`);
    }
    assert.equal(running.length, REQUESTS, `exactly ${REQUESTS} service processes ${replay()}`);

    const byKind = Object.fromEntries(KINDS.map((k) => [k, faults.filter((f) => f.kind === k).length]));
    t.diagnostic(`seed ${SEED} (SLAP_FAULT_SEED), run ${RUN}`);
    t.diagnostic(`faults injected: ${faults.length} ${JSON.stringify(byKind)}`);
    for (const f of faults) t.diagnostic(`  kill -9 ${f.target} at +${(f.atMs / 1000).toFixed(1)} s, down ${f.downMs} ms, ready again ${f.backMs} ms after its restart`);
    t.diagnostic(`requests: ${REQUESTS} sent, ${sent.reduce((n, s) => n + s.attempts, 0)} HTTP attempts, ${retries} retries, ${acked.length} other acknowledged writes (${bangsUnacknowledged} bangs unanswered)`);
    t.diagnostic(`retried after: ${JSON.stringify(Object.fromEntries(retryReasons))}; slowest attempt ${slowest.ms} ms: ${slowest.what}`);
    t.diagnostic(`process starts that exited before ready (a dependency still down): ${everyone.reduce((n, p) => n + p.failedStarts, 0)}`);
    t.diagnostic(`verified: ${byInstance.size} instances ready and running, ${commits.length} commits in the log, ${superseded} superseded claims released, lost: 0`);
    for (const line of progress) t.diagnostic(`  settling ${line}`);
    const reaped = (await Promise.all(nodes.map((n) => readFile(n.spec.logFile, "utf8")))).join("").split("stopping a service left running by a previous run of the node").length - 1;
    t.diagnostic(`services a killed node left running, stopped by its next start: ${reaped} (then started again, once each)`);
    t.diagnostic(`times: boot ${(bootMs / 1000).toFixed(1)} s, stream ${(streamEndMs / 1000).toFixed(1)} s, settle ${(settleMs / 1000).toFixed(1)} s, total ${((Date.now() - started) / 1000).toFixed(1)} s`);

    // A clean stop leaves nothing behind: the nodes stop their services on SIGTERM.
    const stopped = await Promise.all(nodes.map((n) => n.stop(20_000)));
    assert.deepEqual(stopped, [true, true], `the nodes stop on SIGTERM ${replay()}`);
    const left = await processesRunning(["sleep", SLEEP_ARG]);
    assert.deepEqual(left, [], `no service process is left once the nodes stopped ${replay()}`);
  });
});

/** What is not settled yet (empty: everything is): instances not ready and started, computers unknown, services not running. */
async function unsettled(api: Api, byInstance: Map<string, Sent>, computers: string[], nodeRoots: string[]): Promise<string> {
  const listing = await api.call("GET", "/v1/instances");
  if (listing.status !== 200) return `GET /v1/instances: ${listing.status ?? ("error" in listing ? listing.error : "")}`;
  const views = new Map((listing.body.instances as Array<{ instanceId: string; placement: { computerId: string; partitionId: string } | null; connection: unknown; status: { status: string; message?: string } | null }>).map((v) => [v.instanceId, v]));
  const waiting: string[] = [];
  let services = 0;
  for (const [instanceId, request] of byInstance) {
    const view = views.get(instanceId);
    if (view === undefined) waiting.push(`${request.reference}: unknown`);
    else if (view.placement === null) waiting.push(`${request.reference}: not placed`);
    else if (view.connection === null || view.status?.status !== "started") waiting.push(`${request.reference}: ${view.status?.status ?? "no status"} ${view.status?.message ?? ""}`.trim());
    else {
      const root = nodeRoots[computers.indexOf(view.placement.computerId)];
      if (root === undefined) waiting.push(`${request.reference}: on an unknown computer ${view.placement.computerId}`);
      else if (typeof (await serviceOf(join(root, view.placement.partitionId))) === "string") services++;
    }
  }
  if (services > 0) waiting.push(`${services} services not running (yet)`);
  if (waiting.length === 0) return "";
  return `${waiting.length} not settled, e.g. ${waiting.slice(0, 5).join("; ")}`;
}

/** The pid of the partition's service when its pid file names a live process with the declared command, else what is wrong. */
async function serviceOf(partitionPath: string): Promise<number | string> {
  let record: { pid: number; command: string[] };
  try {
    record = JSON.parse(await readFile(pidFileOf(partitionPath, SERVICE), "utf8")) as { pid: number; command: string[] };
  } catch (error) {
    return `no pid file (${error instanceof Error ? error.message : String(error)})`;
  }
  const declared = ["sleep", SLEEP_ARG];
  if (JSON.stringify(record.command) !== JSON.stringify(declared)) return `pid file names ${JSON.stringify(record.command)}`;
  const argv = await commandLine(record.pid);
  if (argv === undefined) return `pid ${record.pid} is not running`;
  if (JSON.stringify(argv) !== JSON.stringify(declared)) return `pid ${record.pid} runs ${JSON.stringify(argv)}`;
  return record.pid;
}

function sortKeys(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(sortKeys);
  if (typeof value === "object" && value !== null) {
    return Object.fromEntries(Object.entries(value as Record<string, unknown>).sort(([a], [b]) => a.localeCompare(b)).map(([k, v]) => [k, sortKeys(v)]));
  }
  return value;
}

/** A process's parent, age and working folder, for a failure message. */
async function describeProcess(pid: number): Promise<string> {
  const stat = await readFile(`/proc/${pid}/stat`, "utf8").catch(() => "");
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  const cwd = await readlink(`/proc/${pid}/cwd`).catch(() => "?");
  const pidFile = await readFile(pidFileOf(cwd, SERVICE), "utf8").catch(() => "(no pid file)");
  return `ppid ${fields[1] ?? "?"}, started at tick ${fields[19] ?? "?"}, cwd ${cwd}, its partition's pid file: ${pidFile.trim().slice(0, 200)}`;
}
