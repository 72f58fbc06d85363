import { readdir, readFile, readlink } from "node:fs/promises";
import { createServer } from "node:net";
import { endianness } from "node:os";
import { join } from "node:path";
import { listenersOf, normalizeIp, parseProcNetTcp, type TcpSocket } from "../core/sockets.js";
import { runDirOf } from "./partition-state.js";
import { serviceMarkOf } from "./supervisor.js";
import type { PartitionUser } from "./users.js";

/**
 * Who a partition is, to tell its sockets from anyone else's: with partition users, a socket its
 * user owns (the uid /proc gives the socket) is the partition's; without, a socket one of its
 * service processes (marked `SLAP_SERVICE=<path>#…`, or a descendant of one) holds.
 */
export interface PartitionIdentity {
  /** The partition folder (what its services' mark names). */
  path: string;
  /** The partition's unix user (partition users on). */
  user?: PartitionUser | undefined;
}

/** A process holding a socket, as far as /proc tells. */
export interface SocketHolder {
  uid: number;
  /** The uid's name in /etc/passwd, when it has one. */
  user?: string | undefined;
  /** The processes holding the socket (none when their /proc/<pid>/fd cannot be read). */
  processes: Array<{ pid: number; command: string }>;
}

/** Every TCP socket of the host (`/proc/net/tcp` and `tcp6`); undefined when /proc has neither (not Linux). */
export async function readTcpSockets(): Promise<TcpSocket[] | undefined> {
  const little = endianness() === "LE";
  const [v4, v6] = await Promise.all(["/proc/net/tcp", "/proc/net/tcp6"].map((f) => readFile(f, "utf8").catch(() => undefined)));
  if (v4 === undefined && v6 === undefined) return undefined;
  return [...parseProcNetTcp(v4 ?? "", 4, little), ...parseProcNetTcp(v6 ?? "", 6, little)];
}

async function pids(): Promise<number[]> {
  return (await readdir("/proc").catch(() => [] as string[])).filter((e) => /^\d+$/.test(e)).map(Number);
}

/** The socket inodes a process holds (empty when its fds cannot be read: another user's, without root). */
async function socketInodes(pid: number): Promise<Set<number>> {
  const out = new Set<number>();
  const fds = await readdir(`/proc/${pid}/fd`).catch(() => [] as string[]);
  for (const fd of fds) {
    const link = await readlink(`/proc/${pid}/fd/${fd}`).catch(() => "");
    const inode = /^socket:\[(\d+)\]$/.exec(link)?.[1];
    if (inode !== undefined) out.add(Number(inode));
  }
  return out;
}

const COMMAND_KEEP = 200;

async function commandOf(pid: number): Promise<string> {
  const raw = await readFile(`/proc/${pid}/cmdline`, "utf8").catch(() => "");
  const command = raw.split("\0").filter((a) => a !== "").join(" ");
  return command.length > COMMAND_KEEP ? `${command.slice(0, COMMAND_KEEP)}…` : command || "?";
}

async function userNames(): Promise<Map<number, string>> {
  const names = new Map<number, string>();
  const passwd = await readFile("/etc/passwd", "utf8").catch(() => "");
  for (const line of passwd.split("\n")) {
    const [name, , uid] = line.split(":");
    if (name !== undefined && uid !== undefined && /^\d+$/.test(uid) && !names.has(Number(uid))) names.set(Number(uid), name);
  }
  return names;
}

/** Who holds each socket: its uid (and name), and the processes whose fds link to its inode (when readable). */
export async function holdersOf(sockets: readonly TcpSocket[]): Promise<Map<number, SocketHolder>> {
  const wanted = new Set(sockets.map((s) => s.inode));
  const byInode = new Map<number, Array<{ pid: number; command: string }>>();
  if (wanted.size > 0) {
    for (const pid of await pids()) {
      for (const inode of await socketInodes(pid)) {
        if (!wanted.has(inode)) continue;
        const list = byInode.get(inode) ?? [];
        list.push({ pid, command: await commandOf(pid) });
        byInode.set(inode, list);
      }
    }
  }
  const names = await userNames();
  return new Map(sockets.map((s) => [s.inode, { uid: s.uid, user: names.get(s.uid), processes: byInode.get(s.inode) ?? [] }]));
}

/** `uid 1003 slap-ab12cd34-1, pid 4242 node server.mjs` (the pids, when /proc lets the node read them). */
export function describeHolder(holder: SocketHolder): string {
  const who = `uid ${holder.uid}${holder.user === undefined ? "" : ` ${holder.user}`}`;
  const what = holder.processes.map((p) => `pid ${p.pid} ${p.command}`);
  return [who, ...(what.length > 0 ? what : ["pid unknown"])].join(", ");
}

/** Whether a process carries the mark of a service of the partition at `path`. */
async function markedFor(pid: number, path: string): Promise<boolean> {
  return (await serviceMarkOf(pid))?.partition === path;
}

/** The pids the supervisor recorded (`pidFileOf`) that still carry the partition's mark. */
async function recordedPids(path: string): Promise<number[]> {
  const dir = runDirOf(path);
  const files = (await readdir(dir).catch(() => [] as string[])).filter((f) => f.endsWith(".pid"));
  const out: number[] = [];
  for (const file of files) {
    const pid = Number((JSON.parse(await readFile(join(dir, file), "utf8").catch(() => "{}")) as { pid?: unknown }).pid);
    if (Number.isInteger(pid) && pid > 0 && (await markedFor(pid, path))) out.push(pid);
  }
  return out;
}

/** The pids of a partition's services: marked with its folder, and their descendants (a service's children). */
async function partitionPids(path: string): Promise<Set<number>> {
  const own = new Set<number>();
  const parents = new Map<number, number>();
  for (const pid of await pids()) {
    if (await markedFor(pid, path)) own.add(pid);
    // The fields after the command, which is in parentheses and may hold any character: state, ppid, …
    const stat = await readFile(`/proc/${pid}/stat`, "utf8").catch(() => "");
    const ppid = Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]);
    if (Number.isInteger(ppid)) parents.set(pid, ppid);
  }
  for (const pid of parents.keys()) {
    for (let p: number | undefined = pid, hops = 0; p !== undefined && p > 1 && hops < 64; p = parents.get(p), hops++) {
      if (own.has(p)) {
        own.add(pid);
        break;
      }
    }
  }
  return own;
}

/**
 * Which of `sockets` are the partition's own (see `PartitionIdentity`): by uid with partition
 * users, else by their inode among the fds of the partition's service processes.
 */
export async function ownSockets(partition: PartitionIdentity, sockets: readonly TcpSocket[]): Promise<Set<number>> {
  const user = partition.user;
  if (user !== undefined) return new Set(sockets.filter((s) => s.uid === user.uid).map((s) => s.inode));
  if (sockets.length === 0) return new Set();
  const inodes = new Set<number>();
  const covered = (): boolean => sockets.every((s) => inodes.has(s.inode));
  // The services the supervisor recorded first (a few reads: the usual case, a service listening itself), then
  // every marked process and their descendants (a scan of /proc).
  for (const pid of await recordedPids(partition.path)) for (const inode of await socketInodes(pid)) inodes.add(inode);
  if (!covered()) for (const pid of await partitionPids(partition.path)) for (const inode of await socketInodes(pid)) inodes.add(inode);
  return new Set(sockets.filter((s) => inodes.has(s.inode)).map((s) => s.inode));
}

/**
 * The check of a promise that reached `host:port`: when that is the partition's address and one of
 * its ports, the listening socket that answered must be the partition's own. Resolves undefined
 * when it is (or the promise is not on the partition's address and ports, or /proc does not
 * tell), else the message naming who answers instead.
 */
export async function foreignAnswer(
  partition: PartitionIdentity & { address: string; ports: { from: number; to: number } },
  host: string,
  port: number,
): Promise<string | undefined> {
  if (port < partition.ports.from || port > partition.ports.to) return undefined;
  const address = normalizeIp(partition.address);
  const target = normalizeIp(host);
  const loopback = address === "127.0.0.1" || address === "0:0:0:0:0:0:0:1";
  if (target !== address && !(loopback && target === "localhost")) return undefined;
  const sockets = await readTcpSockets();
  if (sockets === undefined) return undefined;
  // `localhost` may reach 127.0.0.1 or ::1, whichever listens.
  const listeners = target === "localhost" ? [...listenersOf(sockets, "127.0.0.1", port), ...listenersOf(sockets, "::1", port)] : listenersOf(sockets, target, port);
  if (listeners.length === 0) return `port ${port} answered, but no listening socket on it was found in /proc/net/tcp`;
  const own = await ownSockets(partition, listeners);
  const foreign = listeners.filter((s) => !own.has(s.inode));
  if (foreign.length === 0) return undefined;
  const holders = await holdersOf(foreign);
  const who = foreign.map((s) => describeHolder(holders.get(s.inode)!)).join("; ");
  return `port ${port} is answered by a process that is not this partition's (${who})`;
}

/** A port of a partition's block that someone else holds. */
export interface TakenPort {
  partitionId: string;
  address: string;
  port: number;
  /** Who holds it, as far as /proc tells (`describeHolder`), or why the bind test failed. */
  holder: string;
}

/**
 * Some partitions' ports are held by processes that are not the partitions' own: the node does
 * not register them (their services could not listen, and their promises would talk to someone
 * else). Retrying helps once the holders let go.
 */
export class PortsTakenError extends Error {
  override name = "PortsTakenError";
  readonly retryable = true;
  constructor(readonly taken: readonly TakenPort[]) {
    const shown = taken.slice(0, 10).map((t) => `port ${t.port} of ${t.partitionId} (on ${t.address}) is held by ${t.holder}`);
    const more = taken.length > 10 ? `; and ${taken.length - 10} more` : "";
    super(`cannot register the partitions: their ports must be free: ${shown.join("; ")}${more}`);
  }
}

/** Tries to bind `host:port` (as a service would, with SO_REUSEADDR); the error code when it cannot. */
function bindError(host: string, port: number): Promise<string | undefined> {
  return new Promise((resolve) => {
    const server = createServer();
    server.once("error", (error: NodeJS.ErrnoException) => resolve(error.code ?? error.message));
    server.listen({ host, port, exclusive: true }, () => server.close(() => resolve(undefined)));
  });
}

/**
 * Checks that every port of each partition's block is free for it, on its address: no listening
 * socket in /proc/net/tcp* but the partition's own (`ownSockets`), and a bind succeeds (a port
 * bound by the partition's own process is not tried). Done at format, after the leftovers of a
 * previous run were stopped, so a node restarting over its own services does not refuse them.
 * @throws PortsTakenError naming each taken port and its holder.
 */
export async function checkPortBlocks(blocks: ReadonlyArray<PartitionIdentity & { partitionId: string; address: string; ports: { from: number; to: number } }>): Promise<void> {
  const sockets = (await readTcpSockets()) ?? [];
  const taken: Array<TakenPort & { socket?: TcpSocket }> = [];
  for (const block of blocks) {
    const ports = Array.from({ length: block.ports.to - block.ports.from + 1 }, (_, i) => block.ports.from + i);
    const listening = ports.map((port) => ({ port, listeners: listenersOf(sockets, block.address, port) }));
    const own = await ownSockets(block, listening.flatMap((l) => l.listeners));
    const results = await Promise.all(
      listening.map(async ({ port, listeners }) => {
        const foreign = listeners.filter((s) => !own.has(s.inode));
        if (foreign.length > 0) return foreign.map((socket) => ({ partitionId: block.partitionId, address: block.address, port, holder: "", socket }));
        if (listeners.length > 0) return [];
        const code = await bindError(block.address, port);
        // Only a port in use is taken; an address this host does not have (EADDRNOTAVAIL) is not the port's fault.
        if (code !== "EADDRINUSE" && code !== "EACCES") return [];
        const bound = sockets.find((s) => s.port === port && !own.has(s.inode));
        return [{ partitionId: block.partitionId, address: block.address, port, holder: `an unknown process (bind: ${code})`, ...(bound === undefined ? {} : { socket: bound }) }];
      }),
    );
    taken.push(...results.flat());
  }
  if (taken.length === 0) return;
  const holders = await holdersOf(taken.flatMap((t) => (t.socket === undefined ? [] : [t.socket])));
  throw new PortsTakenError(
    taken.map(({ socket, ...t }) => (socket === undefined ? t : { ...t, holder: describeHolder(holders.get(socket.inode)!) })),
  );
}
