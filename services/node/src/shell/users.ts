import { execFile } from "node:child_process";
import { createHash } from "node:crypto";
import { chmod, lstat, readdir } from "node:fs/promises";
import { join } from "node:path";

/** The unix user a partition's processes run as (when the node runs as root). */
export interface PartitionUser {
  name: string;
  uid: number;
  gid: number;
}

/** `"auto"` (default): one unix user per partition when the node runs as root; `"off"`: every process runs as the node's user. */
export type PartitionUsersOption = "auto" | "off";

/** Whether partition users are on: `"auto"` and the node runs as root. */
export function partitionUsersEnabled(option: PartitionUsersOption | undefined): boolean {
  return (option ?? "auto") === "auto" && process.getuid?.() === 0;
}

/**
 * The user name of a partition: `slap-<sha256(computerId) first 8 hex>-<N>` for `slappartN`
 * (at most 32 characters, what useradd accepts, whatever the computer id).
 */
export function partitionUserName(computerId: string, partitionId: string): string {
  const hash = createHash("sha256").update(computerId).digest("hex").slice(0, 8);
  const n = /^slappart(\d+)$/.exec(partitionId)?.[1] ?? createHash("sha256").update(partitionId).digest("hex").slice(0, 8);
  const name = `slap-${hash}-${n}`;
  if (name.length > 32) throw new Error(`partition user name ${name} is longer than 32 characters`);
  return name;
}

function run(file: string, args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(file, args, { timeout: 30_000 }, (error, stdout, stderr) => {
      resolve({ code: error === null ? 0 : typeof error.code === "number" ? error.code : -1, stdout, stderr: stderr || (error?.message ?? "") });
    });
  });
}

async function lookup(name: string): Promise<PartitionUser | undefined> {
  const uid = await run("id", ["-u", name]);
  if (uid.code !== 0) return undefined;
  const gid = await run("id", ["-g", name]);
  if (gid.code !== 0) return undefined;
  return { name, uid: Number(uid.stdout.trim()), gid: Number(gid.stdout.trim()) };
}

/**
 * Makes sure the system user `name` (with its own group, no home, no login shell) exists and
 * returns its uid/gid. Idempotent (`id -u` first). Retried a few times when another useradd
 * (another node, another test) holds the lock on /etc/passwd. System uids come from a small
 * range (SYS_UID_MIN…SYS_UID_MAX, 100…999 on Debian): users never removed exhaust it.
 */
export async function ensureUser(name: string): Promise<PartitionUser> {
  let last = "";
  for (let attempt = 0; attempt < 20; attempt++) {
    const existing = await lookup(name);
    if (existing !== undefined) return existing;
    const added = await run("useradd", ["--system", "--no-create-home", "--shell", "/usr/sbin/nologin", "--user-group", name]);
    if (added.code === 0) {
      const created = await lookup(name);
      if (created !== undefined) return created;
    }
    last = added.stderr.trim();
    // 1 and 10: /etc/passwd or /etc/group locked by another useradd; 9: created meanwhile by another node. Anything
    // else (no free system uid, a bad name) will not get better by waiting.
    if (![1, 9, 10].includes(added.code)) break;
    await new Promise((r) => setTimeout(r, 100 + attempt * 50));
  }
  throw new Error(`cannot create the partition user ${name}: ${last}`);
}

/** Removes a user made by `ensureUser` (and its group). Missing users are fine. */
export async function removeUser(name: string): Promise<void> {
  for (let attempt = 0; attempt < 20; attempt++) {
    if ((await lookup(name)) === undefined) return;
    const removed = await run("userdel", [name]);
    if (removed.code === 0 || removed.code === 6) return;
    await new Promise((r) => setTimeout(r, 100 + attempt * 50));
  }
}

/** Removes the users of `slappart0…N-1` of a computer (tests, decommissioning). */
export async function removePartitionUsers(computerId: string, partitions: number): Promise<void> {
  for (let n = 0; n < partitions; n++) await removeUser(partitionUserName(computerId, `slappart${n}`));
}

/**
 * `chmod -R a+rX,go-w`: every file readable by all, directories (and executables) traversable by
 * all, nothing writable but by its owner (the node: a partition user must not change a release);
 * symbolic links left alone.
 */
export async function makeReadable(dir: string): Promise<void> {
  const s = await lstat(dir).catch(() => undefined);
  if (s === undefined || s.isSymbolicLink()) return;
  const mode = s.mode & 0o7777;
  const wanted = (mode | 0o444 | (s.isDirectory() || (mode & 0o111) !== 0 ? 0o111 : 0)) & ~0o022;
  if (wanted !== mode) await chmod(dir, wanted);
  if (!s.isDirectory()) return;
  for (const entry of await readdir(dir)) await makeReadable(join(dir, entry));
}
