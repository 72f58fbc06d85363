import { unlinkSync } from "node:fs";
import { randomUUID } from "node:crypto";
import { link, mkdir, readFile, unlink, writeFile } from "node:fs/promises";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";

/**
 * Lowest port a block may start at: clear of the ports services commonly listen on (8080, 5432,
 * 6379, 9000s…) and of the partition ports `slap up` and `slap cluster` use by default (20000+),
 * so a demo running on the same host never answers a test's partition.
 */
const LOWEST = 30_000;
const HIGHEST = 65_535;
/** Blocks are taken in slots of this many ports (a node's partition's default port block). */
const SLOT = 100;
/** Linux's default ephemeral range, when /proc does not say. */
const DEFAULT_EPHEMERAL = { first: 32_768, last: 60_999 };
/** Slots this process holds, as files under `reservations()`: deleted when it exits. */
const held = new Set<string>();
/** The slot files of each block handed out, by its first port, for `releasePortBlock`. */
const blocks = new Map<number, string[]>();
let releasesOnExit = false;

export interface FreePortBlockOptions {
  /** Addresses every port must also be free on, besides 127.0.0.1 (those the test's node binds). */
  addresses?: readonly string[];
  /** The highest port the block may end at (default 65535), for a command that takes no higher one. */
  highest?: number;
  /** Random places tried before giving up (default 50). */
  attempts?: number;
}

/**
 * The first port of `count` consecutive ports that nothing listens on, for a test's node (its
 * partitions' ports) or any server the test starts on a fixed port. The block starts at a random
 * slot of 100 ports from 30000 up, outside the kernel's ephemeral range (which port 0 and
 * outgoing connections draw from, `/proc/sys/net/ipv4/ip_local_port_range`); every port is
 * bound once on 127.0.0.1 and on each of `addresses` to check it is free. Its slots are reserved
 * for this process (files in the temporary folder, freed when it exits or dies), so test files
 * running side by side never get overlapping blocks. Another place is tried when a port is taken.
 * @throws Error when no free block was found after `attempts` places.
 */
export async function freePortBlock(count: number, options: FreePortBlockOptions = {}): Promise<number> {
  if (!Number.isInteger(count) || count < 1 || count > 10_000) throw new RangeError(`a port block is 1 to 10000 ports, not ${count}`);
  const slots = Math.ceil(count / SLOT);
  const bases = candidateBases(await ephemeralRange(), slots * SLOT, options.highest ?? HIGHEST);
  if (bases.length === 0) throw new Error(`no room for ${count} ports between ${LOWEST} and ${options.highest ?? HIGHEST} outside the ephemeral range`);
  const addresses = ["127.0.0.1", ...(options.addresses ?? []).filter((a) => a !== "127.0.0.1")];
  const attempts = options.attempts ?? 50;
  for (let attempt = 0; attempt < attempts; attempt++) {
    const base = bases[Math.floor(Math.random() * bases.length)]!;
    const reserved = await reserve(base, slots);
    if (reserved === undefined) continue;
    if (await allBindable(base, count, addresses)) {
      blocks.set(base, reserved);
      return base;
    }
    await Promise.all(reserved.map(release));
  }
  throw new Error(`no block of ${count} free ports found after ${attempts} tries (on ${addresses.join(", ")})`);
}

/**
 * Gives back a block `freePortBlock` handed out, for a long-running process (a benchmark) that
 * takes many in turn; a test needs not: its blocks are freed when its process exits.
 */
export async function releasePortBlock(base: number): Promise<void> {
  const files = blocks.get(base) ?? [];
  blocks.delete(base);
  await Promise.all(files.map(release));
}

/** Every slot-aligned base from which `size` ports fit in [LOWEST, highest] without touching the ephemeral range. */
function candidateBases(ephemeral: { first: number; last: number }, size: number, highest: number): number[] {
  const all: number[] = [];
  for (let base = LOWEST; base + size - 1 <= Math.min(highest, HIGHEST); base += SLOT) all.push(base);
  const clear = all.filter((base) => base + size - 1 < ephemeral.first || base > ephemeral.last);
  // A host whose ephemeral range covers it all (a tuned container): any base, each port still checked free.
  return clear.length > 0 ? clear : all;
}

async function ephemeralRange(): Promise<{ first: number; last: number }> {
  try {
    const [first, last] = (await readFile("/proc/sys/net/ipv4/ip_local_port_range", "utf8")).trim().split(/\s+/).map(Number);
    if (Number.isInteger(first) && Number.isInteger(last)) return { first: first!, last: last! };
  } catch {
    // Not Linux: assume its default.
  }
  return DEFAULT_EPHEMERAL;
}

function reservations(): string {
  return join(tmpdir(), `slap-test-ports-${process.getuid?.() ?? "user"}`);
}

/** Reserves the `slots` slots from `base` for this process, or none (undefined) when another live process holds one. */
async function reserve(base: number, slots: number): Promise<string[] | undefined> {
  await mkdir(reservations(), { recursive: true });
  const taken: string[] = [];
  for (let k = 0; k < slots; k++) {
    const file = join(reservations(), String(base + k * SLOT));
    if (!(await claim(file))) {
      await Promise.all(taken.map(release));
      return undefined;
    }
    taken.push(file);
  }
  return taken;
}

/**
 * Creates `file` holding our pid (written aside and hard-linked, so it never exists empty);
 * takes it over when the process that wrote it is gone.
 */
async function claim(file: string): Promise<boolean> {
  const draft = `${file}.${process.pid}.${randomUUID()}`;
  await writeFile(draft, String(process.pid));
  try {
    return await linkOrTakeOver(draft, file);
  } finally {
    await unlink(draft).catch(() => undefined);
  }
}

async function linkOrTakeOver(draft: string, file: string): Promise<boolean> {
  for (let round = 0; round < 2; round++) {
    try {
      await link(draft, file);
      if (!releasesOnExit) process.once("exit", releaseAll);
      releasesOnExit = true;
      held.add(file);
      return true;
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== "EEXIST") throw error;
      const owner = Number(await readFile(file, "utf8").catch(() => ""));
      if (owner === process.pid || (owner > 0 && alive(owner))) return false;
      await unlink(file).catch(() => undefined);
    }
  }
  return false;
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === "EPERM";
  }
}

async function release(file: string): Promise<void> {
  held.delete(file);
  await unlink(file).catch(() => undefined);
}

function releaseAll(): void {
  for (const file of held) {
    try {
      unlinkSync(file);
    } catch {
      // Already gone.
    }
  }
  held.clear();
}

async function allBindable(base: number, count: number, addresses: readonly string[]): Promise<boolean> {
  for (let port = base; port < base + count; port++) {
    for (const host of addresses) if (!(await bindable(port, host))) return false;
  }
  return true;
}

function bindable(port: number, host: string): Promise<boolean> {
  return new Promise((resolve) => {
    const server = createServer();
    server.once("error", () => resolve(false));
    server.listen({ host, port, exclusive: true }, () => server.close(() => resolve(true)));
  });
}
