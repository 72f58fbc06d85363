/**
 * The processes of the `node-desired` scenario, apart from the master so their memory and event
 * loop are their own. `node <json>`: a node agent (`Node` of @slap/node) of one computer against
 * the master's URL; prints `started` once it has registered and read its desired state, and stops
 * on SIGTERM. `watchers <json>`: one blocking query per computer on its desired state, re-asked at
 * once after each answer; on SIGTERM prints, as one JSON line, when (ms, `performance.timeOrigin`
 * based) each computer saw each revision. `runtime`: nothing of slap loaded, for the runtime's own
 * memory (Node and tsx). Tokens are the test kit's (`test-token-node-<computerId>`), written here
 * so the node process loads nothing but the node.
 */
import { setMaxListeners } from "node:events";
import { z } from "zod";

const RuntimeArgs = z.object({ mode: z.literal("runtime") });
const NodeArgs = z.object({ mode: z.literal("node"), masterUrl: z.string(), computerId: z.string(), partitions: z.number(), root: z.string(), portBase: z.number(), portsPerPartition: z.number(), cwd: z.string() });
const WatchArgs = z.object({ mode: z.literal("watchers"), masterUrl: z.string(), computers: z.array(z.string()), waitMs: z.number() });
const Args = z.discriminatedUnion("mode", [RuntimeArgs, NodeArgs, WatchArgs]);
const tokenOf = (computerId: string): string => `test-token-node-${computerId}`;

const now = (): number => performance.timeOrigin + performance.now();

async function runNode(args: z.infer<typeof NodeArgs>): Promise<void> {
  const [{ Node }, { pino }] = await Promise.all([import("@slap/node"), import("pino")]);
  const node = new Node({
    masterUrl: args.masterUrl,
    token: tokenOf(args.computerId),
    computerId: args.computerId,
    partitions: args.partitions,
    root: args.root,
    portBase: args.portBase,
    portsPerPartition: args.portsPerPartition,
    partitionUsers: "off",
    cwd: args.cwd,
    logger: pino({ level: "silent" }),
  });
  process.once("SIGTERM", () => {
    void node.stop().then(() => process.exit(0));
  });
  await node.start();
  process.stdout.write("started\n");
}

async function runWatchers(args: z.infer<typeof WatchArgs>): Promise<void> {
  const stop = new AbortController();
  // One listener per query in flight on this one signal.
  setMaxListeners(0, stop.signal);
  const seen: Array<[string, number, number]> = [];
  let ready = 0;
  const watch = async (computerId: string): Promise<void> => {
    const headers = { authorization: `Bearer ${tokenOf(computerId)}` };
    let index: number | undefined;
    while (!stop.signal.aborted) {
      const query = index === undefined ? "" : `?index=${index}&wait=${args.waitMs}`;
      try {
        const response = await fetch(`${args.masterUrl}/v1/computers/${computerId}/desired${query}`, { headers, signal: stop.signal });
        const body = (await response.json()) as { revision: number };
        if (index === undefined) ready++;
        else if (body.revision > index) seen.push([computerId, body.revision, now()]);
        index = body.revision;
      } catch {
        if (stop.signal.aborted) return;
        await new Promise((resolve) => setTimeout(resolve, 100));
      }
    }
  };
  const loops = args.computers.map((computerId) => watch(computerId));
  process.once("SIGTERM", () => {
    stop.abort();
    void Promise.allSettled(loops).then(() => {
      process.stdout.write(`${JSON.stringify(seen)}\n`);
      process.exit(0);
    });
  });
  // Every watcher has its first answer (and waits on its revision) before the parent changes anything.
  while (ready < args.computers.length) await new Promise((r) => setTimeout(r, 10));
  process.stdout.write("watching\n");
}

const args = Args.parse(JSON.parse(process.argv[2] ?? "null"));
if (args.mode === "runtime") {
  // zod only (parsing these arguments): the baseline the node's figure compares with.
  process.once("SIGTERM", () => process.exit(0));
  setInterval(() => undefined, 60_000);
  process.stdout.write("started\n");
} else await (args.mode === "node" ? runNode(args) : runWatchers(args));
