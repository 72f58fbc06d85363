import { constants } from "node:fs";
import { chmod, lstat, mkdir, open, readFile, realpath } from "node:fs/promises";
import { dirname, isAbsolute, join, relative } from "node:path";
import { insidePartition, PathEscapeError } from "../core/paths.js";
import { RUN_TIMEOUT_MS, runOnce } from "./checks.js";
import { NODE_OWNED, syncFolder } from "./partition-state.js";
import type { Declarations, ProcessDeclaration } from "./profile.js";
import type { FileDeclaration } from "./profile-protocol.js";
import type { ServiceSpec, Supervisor } from "./supervisor.js";
import { ownTree, type PartitionUser } from "./users.js";

/** The partition a profile's declarations are applied to. */
export interface DeclaredPartition {
  path: string;
  /** Its unix user (partition users on): owns what the profile wrote, runs its processes. */
  user: PartitionUser | undefined;
  supervisor: Supervisor;
}

/** The environment every process of a partition starts with (the node's `node` first on PATH; HOME and TMPDIR in the partition). */
export function baseEnv(partitionPath: string): Record<string, string> {
  const path = [dirname(process.execPath), process.env.PATH ?? "/usr/local/bin:/usr/bin:/bin"].join(":");
  return { PATH: path, HOME: partitionPath, TMPDIR: join(partitionPath, "tmp"), LANG: "C.UTF-8" };
}

function spec(partitionPath: string, declaration: ProcessDeclaration): ServiceSpec {
  const cwd = declaration.cwd === undefined ? partitionPath : isAbsolute(declaration.cwd) ? declaration.cwd : insidePartition(partitionPath, declaration.cwd);
  return { command: [...declaration.command], env: { ...baseEnv(partitionPath), ...(declaration.env ?? {}) }, cwd };
}

/** `full` (lexically inside `root`) does not leave `root` through a symbolic link either: its nearest existing folder resolves inside. */
async function noLinkOut(root: string, full: string, path: string): Promise<void> {
  const realRoot = await realpath(root);
  let dir = dirname(full);
  for (;;) {
    const real = await realpath(dir).catch((error: NodeJS.ErrnoException) => {
      if (error.code === "ENOENT") return undefined;
      throw error;
    });
    if (real !== undefined) {
      const back = relative(realRoot, real);
      if (back.startsWith("..") || isAbsolute(back)) throw new PathEscapeError(path);
      return;
    }
    dir = dirname(dir);
  }
}

/**
 * Writes one declared file in the partition: refused if its path leaves the partition, lexically
 * or through a symbolic link (the file itself is opened with O_NOFOLLOW); unchanged content is
 * not rewritten; `once`: left as it is when it exists.
 */
export async function writeDeclaredFile(root: string, file: FileDeclaration): Promise<void> {
  const full = insidePartition(root, file.path);
  await noLinkOut(root, full, file.path);
  const bytes = Buffer.from(file.content, file.encoding);
  const existing = await lstat(full).catch(() => undefined);
  if (existing?.isSymbolicLink() === true) throw new PathEscapeError(file.path);
  if (existing !== undefined && file.once) return;
  if (existing !== undefined && !existing.isFile()) throw new Error(`cannot write ${file.path}: it is not a regular file`);
  const current = existing === undefined ? undefined : await readFile(full);
  if (current === undefined || !current.equals(bytes)) {
    await mkdir(dirname(full), { recursive: true });
    const handle = await open(full, constants.O_WRONLY | constants.O_CREAT | constants.O_TRUNC | constants.O_NOFOLLOW, file.mode ?? 0o644);
    try {
      await handle.writeFile(bytes);
    } finally {
      await handle.close();
    }
  }
  if (file.mode !== undefined && ((await lstat(full)).mode & 0o7777) !== file.mode) await chmod(full, file.mode);
}

/**
 * Applies what a profile declared: writes its files, writes etc/service, etc/run, etc/promise (exactly the
 * declared entries), hands the partition to its user, runs the one-shots (each at most
 * `runTimeoutMs`, default 10 min), then starts, restarts or stops services to match.
 */
export async function applyDeclarations(partition: DeclaredPartition, declarations: Declarations, runTimeoutMs = RUN_TIMEOUT_MS): Promise<void> {
  const { path, user } = partition;
  await mkdir(join(path, "tmp"), { recursive: true });
  // Every path checked before any file is written: a refused answer writes nothing.
  for (const file of declarations.files) await noLinkOut(path, insidePartition(path, file.path), file.path);
  for (const file of declarations.files) await writeDeclaredFile(path, file);
  const services = new Map([...declarations.services].map(([name, d]) => [name, spec(path, d)]));
  const runs = new Map([...declarations.runs].map(([name, d]) => [name, spec(path, d)]));
  await syncFolder(join(path, "etc", "service"), services);
  await syncFolder(join(path, "etc", "run"), runs);
  await syncFolder(join(path, "etc", "promise"), declarations.promises);
  // What the node wrote for the profile in the partition becomes its user's, before any of its processes start.
  if (user !== undefined) await ownTree(path, user, NODE_OWNED);
  for (const [name, s] of runs) await runOnce(path, name, s, user, runTimeoutMs);
  await partition.supervisor.apply(services);
}
