import { readdir, realpath, rm } from "node:fs/promises";
import { dirname, isAbsolute, join, relative } from "node:path";
import { insidePartition, PathEscapeError } from "../core/paths.js";
import { RUN_TIMEOUT_MS, runOnce } from "./checks.js";
import { at, ensureFolder, inFolder, PlantedLinkError, writeFileBeneath, writeFileIn } from "./beneath.js";
import type { Declarations, ProcessDeclaration } from "./profile.js";
import type { FileDeclaration } from "./profile-protocol.js";
import type { ServiceSpec, Supervisor } from "./supervisor.js";
import type { PartitionUser } from "./users.js";

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
 * Writes one declared file in the partition, as `owner`'s: refused if its path leaves the
 * partition, lexically or through a symbolic link at any step (`writeFileBeneath`: no link is
 * followed, no gap between check and write); unchanged content is not rewritten; `once`: left as
 * it is when it exists.
 */
export async function writeDeclaredFile(root: string, file: FileDeclaration, owner?: PartitionUser): Promise<void> {
  insidePartition(root, file.path);
  try {
    await writeFileBeneath(root, file.path, Buffer.from(file.content, file.encoding), { mode: file.mode, owner, once: file.once });
  } catch (error) {
    if (error instanceof PlantedLinkError) throw new PathEscapeError(file.path);
    throw error;
  }
}

/**
 * Makes the folder `relative` of the partition hold exactly `<name>.json` for each entry: changed
 * files rewritten, stale ones removed, through the folder's descriptor (no link followed).
 */
async function syncFolder(root: string, relative: string, entries: Map<string, unknown>, owner: PartitionUser | undefined): Promise<void> {
  await inFolder(
    root,
    relative,
    async (dir) => {
      for (const file of await readdir(`/proc/self/fd/${dir.fd}`)) {
        if (file.endsWith(".json") && !entries.has(file.slice(0, -5))) await rm(at(dir, file), { force: true });
      }
      for (const [name, value] of entries) {
        await writeFileIn(dir, `${name}.json`, Buffer.from(`${JSON.stringify(value, null, 2)}\n`), { owner, shown: `${relative}/${name}.json` });
      }
    },
    { owner },
  );
}

/**
 * Applies what a profile declared: writes its files, writes etc/service, etc/run, etc/promise (exactly the
 * declared entries), hands the partition to its user, runs the one-shots (each at most
 * `runTimeoutMs`, default 10 min), then starts, restarts or stops services to match.
 */
export async function applyDeclarations(partition: DeclaredPartition, declarations: Declarations, runTimeoutMs = RUN_TIMEOUT_MS): Promise<void> {
  const { path, user } = partition;
  await ensureFolder(path, "tmp", user);
  // Every path checked before any file is written: a refused answer writes nothing (each write checks again, without a gap).
  for (const file of declarations.files) await noLinkOut(path, insidePartition(path, file.path), file.path);
  // What the node writes for the profile is its user's from the start, before any of its processes start.
  for (const file of declarations.files) await writeDeclaredFile(path, file, user);
  const services = new Map([...declarations.services].map(([name, d]) => [name, spec(path, d)]));
  const runs = new Map([...declarations.runs].map(([name, d]) => [name, spec(path, d)]));
  await syncFolder(path, "etc/service", services, user);
  await syncFolder(path, "etc/run", runs, user);
  await syncFolder(path, "etc/promise", declarations.promises, user);
  for (const [name, s] of runs) await runOnce(path, name, s, user, runTimeoutMs);
  await partition.supervisor.apply(services);
}
