import type { Stats } from "node:fs";
import { realpath, stat } from "node:fs/promises";
import { dirname, resolve } from "node:path";
import type { PartitionUser } from "./users.js";

/**
 * The node's folders would not keep the partition users where they belong: a parent of the root
 * they cannot traverse (their services could not even load their release), or a folder of the
 * node they could write into. The message names the folder, its mode and owner. An operator's fix;
 * retrying does not help.
 */
export class LayoutError extends Error {
  override name = "LayoutError";
  readonly retryable = false;
  constructor(
    message: string,
    readonly path: string,
  ) {
    super(message);
  }
}

const octal = (mode: number): string => `0${(mode & 0o7777).toString(8).padStart(3, "0")}`;
const describe = (path: string, s: Stats): string => `${path} (mode ${octal(s.mode)}, owner uid ${s.uid} gid ${s.gid})`;

/** The permission bits that apply to `user` on a file (owner, else group, else others: no supplementary groups, as spawned). */
function bitsFor(s: Stats, user: PartitionUser): number {
  if (s.uid === user.uid) return (s.mode >> 6) & 0o7;
  if (s.gid === user.gid) return (s.mode >> 3) & 0o7;
  return s.mode & 0o7;
}

/** Every folder above `path`, from its parent up to `/`. */
function ancestors(path: string): string[] {
  const out: string[] = [];
  for (let dir = dirname(path); ; dir = dirname(dir)) {
    out.push(dir);
    if (dirname(dir) === dir) return out;
  }
}

/**
 * Partition users on: every folder above the root (as given, and its real path when a symbolic
 * link leads there) must be traversable (`x`) by each partition user, by others' bits or its own
 * group's (ACLs are not read).
 * @throws LayoutError naming the first folder that is not, with its mode and owner.
 */
export async function checkRootReachable(root: string, users: readonly PartitionUser[]): Promise<void> {
  const given = resolve(root);
  const real = await realpath(given).catch(() => given);
  const folders = [...new Set([...ancestors(given), ...ancestors(real)])];
  for (const folder of folders) {
    const s = await stat(folder);
    const blocked = users.filter((u) => (bitsFor(s, u) & 0o1) === 0);
    if (blocked.length === 0) continue;
    throw new LayoutError(
      `the node's root ${given} is not reachable by the partition users (${blocked.map((u) => u.name).join(", ")}): ` +
        `${describe(folder, s)} is not traversable by others (o+x) nor by their group; ` +
        `make it traversable (chmod o+x ${folder}) or put the root where every parent folder is`,
      folder,
    );
  }
}

/**
 * Partition users on, after format: what the node made is as the partitions need it. Each
 * partition folder belongs to its user, mode 0750; the root and the software folder are not
 * writable by any partition user (nor owned by one).
 * @throws LayoutError naming the folder that is not.
 */
export async function checkLayout(root: string, software: string, partitions: ReadonlyArray<{ path: string; user: PartitionUser }>): Promise<void> {
  const users = partitions.map((p) => p.user);
  for (const folder of [root, software]) {
    const s = await stat(folder);
    const writer = users.find((u) => s.uid === u.uid || (bitsFor(s, u) & 0o2) !== 0);
    if (writer !== undefined) throw new LayoutError(`${describe(folder, s)} is writable by the partition user ${writer.name}: it must belong to the node and not be group- or world-writable`, folder);
  }
  for (const { path, user } of partitions) {
    const s = await stat(path);
    if (s.uid !== user.uid || s.gid !== user.gid || (s.mode & 0o7777) !== 0o750) {
      throw new LayoutError(`${describe(path, s)} must belong to its partition user ${user.name} (uid ${user.uid} gid ${user.gid}), mode 0750`, path);
    }
  }
}
