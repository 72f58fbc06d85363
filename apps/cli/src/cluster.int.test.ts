import assert from "node:assert/strict";
import { spawn, type ChildProcess } from "node:child_process";
import { randomBytes } from "node:crypto";
import { existsSync } from "node:fs";
import { chmod, readFile, readdir, stat } from "node:fs/promises";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { after, before, describe, it } from "node:test";
import { removePartitionUsers } from "@slap/node";
import { pino } from "pino";
import { JetStreamEventStore } from "@slap/eventstore-jetstream";
import { callJson, freePortBlock, tempDir } from "@slap/testkit";
import { CLUSTER_NODES } from "./cluster.js";

const REPO = fileURLToPath(new URL("../../../", import.meta.url));
const BIN = `${REPO}bin/slap.mjs`;
const PREFIX = `COMP-CL-${randomBytes(3).toString("hex")}`;
const COMPUTERS = [`${PREFIX}-1`, `${PREFIX}-2`];
const PARTITIONS = 2;
/** The nodes' partition ports, the same at every start (the instances keep theirs), free on this host. */
const PORT_BASE = await freePortBlock(CLUSTER_NODES * PARTITIONS * 100);

interface Cluster {
  child: ChildProcess;
  output: () => string;
  exited: Promise<number | null>;
  webapp: string;
  master: string;
}

/** Starts `slap cluster` (what `npm run cluster` runs) and waits until it prints the web app's URL. */
async function startCluster(dir: string): Promise<Cluster> {
  const env: NodeJS.ProcessEnv = { ...process.env, LOG_LEVEL: "warn" };
  delete env.NATS_URL; // its own nats-server, never a shared one
  const child = spawn(
    process.execPath,
    [BIN, "cluster", "--dir", dir, "--port", "0", "--partitions", String(PARTITIONS), "--port-base", String(PORT_BASE), "--computer-prefix", PREFIX],
    { cwd: REPO, stdio: ["ignore", "pipe", "pipe"], env },
  );
  let stdout = "";
  let stderr = "";
  child.stdout?.on("data", (chunk: Buffer) => (stdout += chunk.toString()));
  child.stderr?.on("data", (chunk: Buffer) => (stderr = (stderr + chunk.toString()).slice(-20_000)));
  const output = (): string => `${stdout}\n--- stderr (end) ---\n${stderr}`;
  const exited = new Promise<number | null>((resolve) => child.once("exit", (code) => resolve(code)));
  const deadline = Date.now() + 45_000;
  while (!/ready: the web app is at /.test(stdout)) {
    if (Date.now() > deadline || child.exitCode !== null) {
      child.kill("SIGKILL");
      assert.fail(`slap cluster did not get ready:\n${output()}`);
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  return {
    child,
    output,
    exited,
    webapp: /the web app is at (\S+)/.exec(stdout)![1]!,
    master: /master: (\S+) \(API/.exec(stdout)![1]!,
  };
}

interface Proc {
  ppid: number;
  argv: string[];
}

/** Every process under `root` (children, grandchildren…) with its parent and argv, from /proc. */
async function descendants(root: number): Promise<Map<number, Proc>> {
  const parents = new Map<number, number>();
  const argv = new Map<number, string[]>();
  for (const entry of await readdir("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = await readFile(`/proc/${entry}/stat`, "utf8");
      const ppid = Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]);
      parents.set(Number(entry), ppid);
      argv.set(Number(entry), (await readFile(`/proc/${entry}/cmdline`, "utf8")).split("\0").filter((a) => a !== ""));
    } catch {
      // gone meanwhile
    }
  }
  const found = new Map<number, Proc>();
  let added = true;
  while (added) {
    added = false;
    for (const [pid, ppid] of parents) {
      if (!found.has(pid) && (ppid === root || found.has(ppid))) {
        found.set(pid, { ppid, argv: argv.get(pid) ?? [] });
        added = true;
      }
    }
  }
  return found;
}

/**
 * The pids of `tree` still alive after a grace period (an orphaned esbuild service of tsx, say,
 * ends once it sees its parent's pipe close).
 */
async function leftOver(tree: Map<number, Proc>, graceMs = 5_000): Promise<string[]> {
  const deadline = Date.now() + graceMs;
  for (;;) {
    const left = [...tree.keys()].filter((p) => existsSync(`/proc/${p}`));
    if (left.length === 0 || Date.now() > deadline) return left.map((p) => `${p}: ${tree.get(p)?.argv.join(" ")}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** After a failed assertion: SIGTERM, so the cluster stops its children (a SIGKILL would orphan them), then SIGKILL if it hangs. */
async function stopAfterFailure(cluster: Cluster): Promise<void> {
  if (cluster.child.exitCode !== null) return;
  cluster.child.kill("SIGTERM");
  const late = new Promise((r) => setTimeout(r, 20_000).unref());
  await Promise.race([cluster.exited, late]);
  if (cluster.child.exitCode === null) cluster.child.kill("SIGKILL");
}

async function exitWithin(cluster: Cluster, ms: number): Promise<number | null> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<"late">((r) => (timer = setTimeout(() => r("late"), ms)));
  const code = await Promise.race([cluster.exited, late]);
  clearTimeout(timer);
  if (code === "late") {
    cluster.child.kill("SIGKILL");
    assert.fail(`slap cluster did not exit within ${ms / 1000} s:\n${cluster.output()}`);
  }
  return code;
}

describe("slap cluster (npm run cluster): nats-server, master, two allocators and two nodes as separate processes", () => {
  let tmp: { path: string; dispose(): Promise<void> } | undefined;
  let dir = "";
  before(async () => {
    tmp = await tempDir("slap-cluster-");
    // mkdtemp makes it 0700; the partitions' unix users (when root) must traverse it.
    await chmod(tmp.path, 0o755);
    dir = join(tmp.path, "data");
  });
  after(async () => {
    for (const computer of COMPUTERS) await removePartitionUsers(computer, PARTITIONS);
    await tmp?.dispose();
  });

  it("deploys the webapp with its kvdb across the processes, and SIGTERM stops every process and exits 0", async () => {
    const cluster = await startCluster(dir);
    const pid = cluster.child.pid!;
    try {
      const page = await (await fetch(cluster.webapp)).text();
      assert.match(page, /connected to kvdb at http:\/\/127\.0\.0\.1:\d+: visits = 1/);

      const admin = { authorization: `Bearer ${(await readFile(join(dir, "admin.token"), "utf8")).trim()}` };
      assert.equal((await callJson(`${cluster.master}/v1/instances`, "GET", {})).status, 401, "the API needs a token");
      assert.equal((await stat(join(dir, "node-1.token"))).mode & 0o777, 0o600);
      const { body: list } = await callJson(`${cluster.master}/v1/instances`, "GET", admin);
      const instances = list.instances as Array<{ reference: string; releaseUrl: string; placement: { computerId: string } | null }>;
      const webapp = instances.find((i) => i.reference === "my-webapp");
      const kvdb = instances.find((i) => i.releaseUrl.endsWith("kvdb"));
      assert.ok(webapp !== undefined && kvdb !== undefined, JSON.stringify(instances));
      assert.ok(COMPUTERS.includes(webapp.placement?.computerId ?? ""), `webapp placed on ${JSON.stringify(webapp.placement)}`);
      assert.ok(COMPUTERS.includes(kvdb.placement?.computerId ?? ""), `kvdb placed on ${JSON.stringify(kvdb.placement)}`);

      const { body: computers } = await callJson(`${cluster.master}/v1/computers`, "GET", admin);
      const ids = (computers.computers as Array<{ computerId: string }>).map((c) => c.computerId);
      for (const computer of COMPUTERS) assert.ok(ids.includes(computer), `${computer} registered: ${ids.join(", ")}`);

      const tree = await descendants(pid);
      const services: Record<string, number> = {};
      for (const { ppid, argv } of tree.values()) {
        // tsx's esbuild transform service is the TypeScript loader of the cluster process, not a service.
        if (ppid !== pid || (argv[0] ?? "").endsWith("/esbuild")) continue;
        const role = argv[1] === BIN ? `${argv[2]}` : (argv[0] ?? "").endsWith("nats-server") ? "nats" : `other: ${argv.join(" ")}`;
        services[role] = (services[role] ?? 0) + 1;
      }
      assert.deepEqual(services, { nats: 1, master: 1, allocator: 2, node: 2 }, "one process per service");
      const partitionServices = [...tree.values()].filter((p) => p.argv.some((a) => a.endsWith("server.mjs")));
      assert.equal(partitionServices.length, 2, "the webapp's and the kvdb's processes run under the nodes");

      // NATS: one user per service but the nodes, which have none; no anonymous client.
      const natsUrl = /nats: (nats:\/\/\S+)/.exec(cluster.output())![1]!;
      const logger = pino({ level: "silent" });
      await assert.rejects(JetStreamEventStore.connect({ servers: natsUrl, logger }), /[Aa]uthori[sz]ation/, "an anonymous client is refused");
      assert.deepEqual((await readdir(join(dir, "nats-auth"))).sort(), ["allocator-1.env", "allocator-2.env", "master.env", "nats.conf"], "no NATS user for a node");
      const nodes = [...tree.entries()].filter(([, p]) => p.argv[1] === BIN && p.argv[2] === "node");
      assert.equal(nodes.length, 2);
      for (const [nodePid, { argv }] of nodes) {
        assert.ok(!argv.some((a) => a.startsWith("--nats")), `a node is given no NATS URL: ${argv.join(" ")}`);
        const environ = await readFile(`/proc/${nodePid}/environ`, "utf8").catch(() => "");
        assert.ok(!environ.split("\0").some((entry) => entry.startsWith("NATS_")), "a node's environment holds no NATS setting");
      }

      cluster.child.kill("SIGTERM");
      const started = Date.now();
      const code = await exitWithin(cluster, 20_000);
      assert.equal(code, 0, cluster.output());
      assert.match(cluster.output(), /stopping\n.*stopped\n/);
      assert.deepEqual(await leftOver(tree), [], "no process is left after the stop");
      assert.ok(Date.now() - started < 20_000);
    } finally {
      await stopAfterFailure(cluster);
    }
  });

  it("picks up the same state on the next start, and when a process dies stops the others and exits 1", async () => {
    const cluster = await startCluster(dir);
    const pid = cluster.child.pid!;
    try {
      assert.match(await (await fetch(cluster.webapp)).text(), /visits = 2/, "the kvdb's data survived the restart");
      const tree = await descendants(pid);
      const allocator = [...tree].find(([, p]) => p.argv[2] === "allocator" && p.argv.includes("allocator-2"))?.[0];
      assert.ok(allocator !== undefined, "allocator-2 runs");
      process.kill(allocator, "SIGKILL");
      const code = await exitWithin(cluster, 20_000);
      assert.equal(code, 1, cluster.output());
      assert.match(cluster.output(), /allocator-2 exited unexpectedly \(SIGKILL\): stopping the others/);
      assert.deepEqual(await leftOver(tree), [], "no process is left after the stop");
    } finally {
      await stopAfterFailure(cluster);
    }
  });
});
