import assert from "node:assert/strict";
import { spawn, type ChildProcess } from "node:child_process";
import { randomBytes } from "node:crypto";
import { readFile } from "node:fs/promises";
import { createServer, type Server } from "node:net";
import { join } from "node:path";
import { after, describe, it } from "node:test";
import { fileURLToPath, pathToFileURL } from "node:url";
import { as, callJson, captureLogger, eventually, freePortBlock, tempDir, testToken } from "@slap/testkit";
import { LayoutError, Node, PortsTakenError, removePartitionUsers, type PartitionUsersOption } from "@slap/node";
import { startDeployment, type Deployment } from "./deployment.fixture.js";

const PORTS = pathToFileURL(fileURLToPath(new URL("../../services/node/test-releases/ports", import.meta.url))).href;
const ROOT = process.getuid?.() === 0;
/** Three: the victim, its neighbour, and the survivor of a restart. */
const PARTITIONS = 3;
const { logger } = captureLogger();

/** Processes a test started: killed at the end whatever happened. */
const started: ChildProcess[] = [];
/** Computers whose partition users a test may have made (unique ids), removed at the end. */
const computers = new Set<string>();
after(async () => {
  for (const child of started) if (child.exitCode === null && child.signalCode === null) child.kill("SIGKILL");
  for (const computer of computers) await removePartitionUsers(computer, PARTITIONS);
});

const alive = (child: ChildProcess): boolean => child.exitCode === null && child.signalCode === null;

/** This process's command line as /proc shows it (what a refusal names as the holder). */
async function ownCommand(): Promise<string> {
  return (await readFile("/proc/self/cmdline", "utf8")).split("\0").filter((a) => a !== "").join(" ").slice(0, 200);
}

/** Listens on `host:port` in this process. */
function hold(host: string, port: number): Promise<Server> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once("error", reject);
    server.listen({ host, port, exclusive: true }, () => resolve(server));
  });
}

const close = (server: Server): Promise<void> => new Promise((resolve) => server.close(() => resolve()));

interface Status {
  status: string;
  message: string | null;
}

/** Runs `body` against a deployment (nats-server, master, allocator, node with `partitionUsers`) serving the ports release. */
function withDeployment(partitionUsers: PartitionUsersOption, body: (d: () => Deployment, portBase: () => number, computer: string) => void): void {
  let deployment: Deployment | undefined;
  let portBase = 0;
  const computer = `COMP-PORTS-${partitionUsers}-${randomBytes(4).toString("hex")}`;
  describe(`partitions' ports (partition users ${partitionUsers})`, () => {
    it("starts a deployment", async () => {
      computers.add(computer);
      portBase = await freePortBlock(PARTITIONS * 100);
      deployment = await startDeployment({ computer, node: { partitions: PARTITIONS, portBase, promiseTimeoutMs: 2_000, partitionUsers }, releases: [PORTS], logger });
    });
    body(() => deployment!, () => portBase, computer);
    it("stops the deployment", async () => {
      await deployment?.stop();
    });
  });
}

async function request(d: Deployment, reference: string, parameters: Record<string, string>): Promise<string> {
  const { status, body } = await callJson(`${d.master.url}/v1/requests`, "POST", as.user("alice"), { releaseUrl: PORTS, reference, parameters });
  assert.ok(status === 200 || status === 202, JSON.stringify(body));
  return body.instanceId as string;
}

async function instance(d: Deployment, instanceId: string): Promise<{ partitionId: string | undefined; status: Status | null }> {
  const { status, body } = await callJson(`${d.master.url}/v1/instances/${instanceId}`, "GET", as.admin());
  assert.equal(status, 200, JSON.stringify(body));
  const found = body.instance as { placement: { partitionId: string } | null; status: Status | null };
  return { partitionId: found.placement?.partitionId, status: found.status };
}

const untilStatus = (d: Deployment, instanceId: string, what: string, check: (s: Status) => boolean) =>
  eventually(what, async () => {
    const found = await instance(d, instanceId);
    return found.status !== null && found.partitionId !== undefined && check(found.status) ? { partitionId: found.partitionId, status: found.status } : undefined;
  }, 20_000);

const firstPort = (portBase: number, partitionId: string): number => portBase + 100 * Number(partitionId.replace("slappart", ""));

for (const partitionUsers of ROOT ? (["auto", "off"] as const) : (["off"] as const)) {
  withDeployment(partitionUsers, (deployment, portBase, computer) => {
    it("a promise on the partition's own port holds when its own service answers, and fails naming the neighbour that answers instead", async () => {
      const d = deployment();
      const victim = await request(d, "victim", { listen: "own" });
      const own = await untilStatus(d, victim, "the victim started on its own port", (s) => s.status === "started");
      const port = firstPort(portBase(), own.partitionId);

      // Its service goes, and a neighbour takes its port.
      await request(d, "victim", {});
      await untilStatus(d, victim, "the victim's promise fails: nothing answers", (s) => s.status === "error" && /ECONNREFUSED/.test(s.message ?? ""));
      const squatter = await request(d, "squatter", { listen: String(port), check: "no" });
      const neighbour = await untilStatus(d, squatter, "the squatter started", (s) => s.status === "started");
      assert.notEqual(neighbour.partitionId, own.partitionId);
      const pid = d.node.servicePid(neighbour.partitionId, "server");
      assert.ok(pid !== undefined);
      const uid = d.node.partitionUser(neighbour.partitionId)?.uid ?? process.getuid?.();

      await request(d, "victim", { nonce: "again" });
      const failed = await untilStatus(d, victim, "the victim's promise fails: not its own process answers", (s) => s.status === "error" && /answered by/.test(s.message ?? ""));
      assert.match(failed.status.message ?? "", new RegExp(`^promise tcp failed: port ${port} is answered by a process that is not this partition's \\(uid ${uid}( \\S+)?, pid ${pid} \\S*node \\S*server\\.mjs\\)$`));
      await request(d, "squatter", { check: "no" });
    });

    it("a node restarted over its own running services starts, stops them and brings them back", async () => {
      const d = deployment();
      const survivor = await request(d, "survivor", { listen: "own" });
      const { partitionId } = await untilStatus(d, survivor, "the survivor started", (s) => s.status === "started");
      const path = join(d.root, partitionId);
      const user = d.node.partitionUser(partitionId);
      await d.node.stop();
      // What a node killed with SIGKILL leaves: its service running (as the partition's user), marked, its pid not recorded.
      const declared = JSON.parse(await readFile(join(path, "etc", "service", "server.json"), "utf8")) as { command: [string, ...string[]]; env: Record<string, string>; cwd: string };
      const asUser = user === undefined ? {} : { uid: user.uid, gid: user.gid };
      const leftover = spawn(declared.command[0], declared.command.slice(1), { cwd: declared.cwd, env: { ...declared.env, SLAP_SERVICE: `${path}#server` }, stdio: "ignore", ...asUser });
      started.push(leftover);
      const port = firstPort(portBase(), partitionId);
      /** Resolves once something listens on 127.0.0.1:p (a bind of it fails). */
      const listening = (p: number) => () =>
        new Promise<true | undefined>((resolve) => {
          const client = createServer().listen({ host: "127.0.0.1", port: p, exclusive: true });
          client.once("listening", () => client.close(() => resolve(undefined)));
          client.once("error", () => resolve(true));
        });
      await eventually("the leftover to listen", listening(port));
      // With partition users, a process of the partition's user the node does not know of (a daemon that left its
      // service and its mark) is the partition's own too: not a reason to refuse.
      let daemon: ChildProcess | undefined;
      if (user !== undefined) {
        daemon = spawn(process.execPath, [join(fileURLToPath(PORTS), "server.mjs")], { env: { HOST: "127.0.0.1", PORT: String(port + 1) }, stdio: "ignore", ...asUser });
        started.push(daemon);
        await eventually("the daemon to listen", listening(port + 1));
      }

      const again = new Node({ masterUrl: d.master.url, token: testToken.node(computer), computerId: computer, partitions: PARTITIONS, root: d.root, portBase: portBase(), promiseTimeoutMs: 2_000, partitionUsers, logger });
      try {
        await again.start();
        await eventually("the leftover stopped", () => Promise.resolve(alive(leftover) ? undefined : true));
        const pid = await eventually("the service back", () => Promise.resolve(again.servicePid(partitionId, "server")));
        assert.notEqual(pid, leftover.pid);
        if (daemon !== undefined) assert.ok(alive(daemon), "the partition's own daemon is not the node's to stop");
      } finally {
        daemon?.kill("SIGKILL");
        await again.stop();
      }
    });
  });
}

describe("format refuses what would leave a partition to someone else", () => {
  for (const partitionUsers of ROOT ? (["off", "auto"] as const) : (["off"] as const)) it(`a port of a partition's block held by another process: format fails naming the port and the holder, nothing is registered (partition users ${partitionUsers})`, async () => {
    const root = await tempDir("slap-ports-taken-");
    const computer = `COMP-TAKEN-${randomBytes(4).toString("hex")}`;
    computers.add(computer);
    const portBase = await freePortBlock(PARTITIONS * 100);
    const holder = await hold("127.0.0.1", portBase + 107);
    try {
      const node = new Node({ masterUrl: "http://127.0.0.1:9", token: testToken.node(computer), computerId: computer, partitions: PARTITIONS, root: root.path, portBase, logger, partitionUsers });
      const error = await node.start().then(
        () => assert.fail("the node must refuse the taken port"),
        (e: unknown) => e,
      );
      assert.ok(error instanceof PortsTakenError, String(error));
      assert.deepEqual(error.taken.map((t) => [t.partitionId, t.port]), [["slappart1", portBase + 107]]);
      assert.ok(
        error.message.includes(`port ${portBase + 107} of slappart1 (on 127.0.0.1) is held by uid ${process.getuid?.()}`) && error.message.includes(`pid ${process.pid} ${await ownCommand()}`),
        error.message,
      );
    } finally {
      await close(holder);
      await root.dispose();
    }
  });

  if (ROOT) it("partition users on: a root inside a folder they cannot traverse is refused, naming the folder and its mode", async () => {
    const parent = await tempDir("slap-ports-unreachable-");
    const computer = `COMP-UNREACH-${randomBytes(4).toString("hex")}`;
    computers.add(computer);
    try {
      const root = join(parent.path, "root");
      const node = new Node({ masterUrl: "http://127.0.0.1:9", token: testToken.node(computer), computerId: computer, partitions: PARTITIONS, root, portBase: await freePortBlock(PARTITIONS * 100), logger });
      const error = await node.start().then(
        () => assert.fail("the node must refuse a root its partition users cannot reach"),
        (e: unknown) => e,
      );
      assert.ok(error instanceof LayoutError, String(error));
      assert.equal(error.path, parent.path);
      assert.match(error.message, new RegExp(`^the node's root ${root} is not reachable by the partition users \\(slap-[0-9a-f]{8}-0, slap-[0-9a-f]{8}-1, slap-[0-9a-f]{8}-2\\): ${parent.path} \\(mode 0700, owner uid 0 gid 0\\) is not traversable`));
    } finally {
      await parent.dispose();
    }
  });
});
