/**
 * File handling inside a folder someone else may change under the node (a partition, whose user
 * owns it while the node acts in it as root), without following a symbolic link at any step and
 * without a gap between a check and a use (DESIGN.md, "Root-safe file handling").
 *
 * Every step opens one name in a folder the node already holds open, through that folder's
 * descriptor (`/proc/self/fd/<fd>/<name>`: Linux resolves the descriptor itself, never a path that
 * could have been swapped meanwhile), with `O_NOFOLLOW`; owners are changed on the open
 * descriptor. A link planted anywhere on the way makes the operation fail with `PlantedLinkError`
 * instead of reaching where it points. Linux only (the node already relies on /proc).
 */
import { constants, type Stats } from "node:fs";
import { lchown, lstat, mkdir, open, readdir, rm, rmdir, unlink, type FileHandle } from "node:fs/promises";
import { normalize, sep } from "node:path";
import type { PartitionUser } from "./users.js";

const { O_RDONLY, O_DIRECTORY, O_NOFOLLOW, O_NONBLOCK } = constants;

/** A symbolic link (or something that is not what it must be) where the node does not follow one. */
export class PlantedLinkError extends Error {
  override name = "PlantedLinkError";
  constructor(readonly path: string, what = "a symbolic link") {
    super(`${path} is ${what}: the node does not follow it`);
  }
}

/** The path of `name` inside the folder open as `dir`. */
export const at = (dir: FileHandle, name: string): string => `/proc/self/fd/${dir.fd}/${name}`;

/** The components of a relative path, refused when it could leave its folder. */
function components(relative: string): string[] {
  const parts = normalize(relative).split(sep).filter((p) => p !== "" && p !== ".");
  if (parts.length === 0 || parts.includes("..")) throw new Error(`path ${JSON.stringify(relative)} is not inside its folder`);
  return parts;
}

const wrap = (error: unknown, path: string): never => {
  const code = (error as NodeJS.ErrnoException).code;
  if (code === "ELOOP" || code === "ENOTDIR") throw new PlantedLinkError(path);
  throw error;
};

/** Opens the folder `root` itself (its own last component not followed either). */
export async function openRoot(root: string): Promise<FileHandle> {
  return open(root, O_RDONLY | O_DIRECTORY | O_NOFOLLOW).catch((error: unknown) => wrap(error, root));
}

/**
 * What `inFolder` does with a missing folder: made (mode 0755) and given to `owner`; `replace`:
 * a link or a file in its place is removed first (for the node's own paths, such as logs, which
 * a tenant may have swapped for a link: the link goes, where it pointed is not touched).
 */
export interface CreateFolders {
  owner: PartitionUser | undefined;
  replace?: boolean;
}

/** Removes `name` from `dir` when it is not a folder (a link is removed as a link). */
async function removeIfNotFolder(dir: FileHandle, name: string): Promise<void> {
  const s = await lstat(at(dir, name)).catch(() => undefined);
  if (s !== undefined && !s.isDirectory()) await unlink(at(dir, name));
}

/** Opens the folder `name` in `dir`, made when missing with `create` (see `CreateFolders`). */
async function openChild(dir: FileHandle, name: string, shown: string, create?: CreateFolders): Promise<FileHandle> {
  try {
    return await open(at(dir, name), O_RDONLY | O_DIRECTORY | O_NOFOLLOW);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (create === undefined) return wrap(error, shown);
    if (code === "ELOOP" || code === "ENOTDIR") {
      if (create.replace !== true) return wrap(error, shown);
      await removeIfNotFolder(dir, name);
    } else if (code !== "ENOENT") throw error;
  }
  // mkdir does not follow a link in its last component (EEXIST): a link planted meanwhile fails the open below.
  await mkdir(at(dir, name), { mode: 0o755 }).catch((error: NodeJS.ErrnoException) => {
    if (error.code !== "EEXIST") throw error;
  });
  const child = await open(at(dir, name), O_RDONLY | O_DIRECTORY | O_NOFOLLOW).catch((error: unknown) => wrap(error, shown));
  if (create.owner !== undefined) await child.chown(create.owner.uid, create.owner.gid);
  return child;
}

/**
 * Runs `fn` with the folder `relative` under `root` open (`""`: `root` itself); `create`: the
 * missing folders on the way are made and given to `owner`.
 */
export async function inFolder<T>(root: string, relative: string, fn: (dir: FileHandle) => Promise<T>, create?: CreateFolders): Promise<T> {
  let dir = await openRoot(root);
  try {
    let shown = root;
    for (const part of relative === "" ? [] : components(relative)) {
      shown = `${shown}/${part}`;
      const child = await openChild(dir, part, shown, create);
      await dir.close();
      dir = child;
    }
    return await fn(dir);
  } finally {
    await dir.close();
  }
}

/** The open `file` is a regular file (else `PlantedLinkError`), given to `owner` on its descriptor when it is another's; its status. */
async function ownedRegular(file: FileHandle, shown: string, owner: PartitionUser | undefined): Promise<Stats> {
  const s = await file.stat();
  if (!s.isFile()) throw new PlantedLinkError(shown, "not a regular file");
  if (owner !== undefined && (s.uid !== owner.uid || s.gid !== owner.gid)) await file.chown(owner.uid, owner.gid);
  return s;
}

/**
 * Opens the regular file `relative` under `root` (`flags`: `O_CREAT` and the like; `O_NOFOLLOW`
 * and `O_NONBLOCK` added, so a FIFO planted there never blocks the node). A new file, or one of
 * another owner, is given to `owner` on its descriptor.
 * @throws PlantedLinkError when a link, or something that is not a regular file, is on the way.
 */
export async function openFileBeneath(
  root: string,
  relative: string,
  flags: number,
  options: { mode?: number; owner?: PartitionUser | undefined; mkdirs?: boolean; replace?: boolean } = {},
): Promise<FileHandle> {
  const parts = components(relative);
  const name = parts.pop()!;
  const shown = `${root}/${relative}`;
  const openIn = async (dir: FileHandle): Promise<FileHandle> => {
    const file = await open(at(dir, name), flags | O_NOFOLLOW | O_NONBLOCK, options.mode ?? 0o644).catch((error: unknown) => wrap(error, shown));
    try {
      await ownedRegular(file, shown, options.owner);
      return file;
    } catch (error) {
      await file.close();
      throw error;
    }
  };
  return inFolder(
    root,
    parts.join("/"),
    async (dir) => {
      try {
        return await openIn(dir);
      } catch (error) {
        if (!(error instanceof PlantedLinkError) || options.replace !== true) throw error;
        // Not a folder (a folder in its place is refused: nothing of the tenant's is removed but a link or a special file).
        await removeIfNotFolder(dir, name);
        return openIn(dir);
      }
    },
    options.mkdirs === true ? { owner: options.owner, ...(options.replace === true ? { replace: true } : {}) } : undefined,
  );
}

/** The last `bytes` of the regular file `relative` under `root`, or undefined when it cannot be read as one. */
export function readTailBeneath(root: string, relative: string, bytes: number): Promise<string | undefined> {
  return tailOf(() => openFileBeneath(root, relative, O_RDONLY), bytes);
}

/** The last `bytes` of the file `opening` opens (closed after), or undefined when it cannot be opened or read. */
export async function tailOf(opening: () => Promise<FileHandle>, bytes: number): Promise<string | undefined> {
  try {
    const file = await opening();
    try {
      const { size } = await file.stat();
      const length = Math.min(size, bytes);
      const buffer = Buffer.alloc(length);
      await file.read(buffer, 0, length, size - length);
      return buffer.toString("utf8");
    } finally {
      await file.close();
    }
  } catch {
    return undefined;
  }
}

/** What is in the folder open as `dir`: each name with its own status (a link is a link). */
async function entries(dir: FileHandle): Promise<Array<{ name: string; stats: Stats }>> {
  const names = await readdir(`/proc/self/fd/${dir.fd}`);
  const out: Array<{ name: string; stats: Stats }> = [];
  for (const name of names) {
    const stats = await lstat(at(dir, name)).catch(() => undefined);
    if (stats !== undefined) out.push({ name, stats });
  }
  return out;
}

/**
 * Removes everything in the folder open as `dir` but `keep`'s names, without following a link:
 * a link is removed as a link, a folder emptied through its own descriptor, then removed.
 */
export async function emptyFolder(dir: FileHandle, keep: ReadonlySet<string> = new Set()): Promise<void> {
  for (const { name, stats } of await entries(dir)) {
    if (keep.has(name)) continue;
    if (!stats.isDirectory()) {
      await unlink(at(dir, name)).catch(() => undefined);
      continue;
    }
    let child: FileHandle | undefined;
    try {
      child = await open(at(dir, name), O_RDONLY | O_DIRECTORY | O_NOFOLLOW);
      await emptyFolder(child);
    } catch {
      // Swapped for a link or a file meanwhile: removed below as what it is now.
    } finally {
      await child?.close();
    }
    await rmdir(at(dir, name)).catch(() => rm(at(dir, name), { force: true }).catch(() => undefined));
  }
}

/**
 * Gives everything under `root` (and `root`) to `owner` where the owner differs, without following
 * a link (a link itself is given with `lchown`); `skip`: top-level names left as they are.
 */
export async function ownTreeBeneath(root: string, owner: PartitionUser, skip: ReadonlySet<string> = new Set()): Promise<void> {
  const walk = async (dir: FileHandle, top: boolean): Promise<void> => {
    const s = await dir.stat();
    if (s.uid !== owner.uid || s.gid !== owner.gid) await dir.chown(owner.uid, owner.gid);
    for (const { name, stats } of await entries(dir)) {
      if (top && skip.has(name)) continue;
      if (!stats.isDirectory()) {
        if (stats.uid !== owner.uid || stats.gid !== owner.gid) await lchown(at(dir, name), owner.uid, owner.gid).catch(() => undefined);
        continue;
      }
      const child = await open(at(dir, name), O_RDONLY | O_DIRECTORY | O_NOFOLLOW).catch(() => undefined);
      if (child === undefined) continue;
      try {
        await walk(child, false);
      } finally {
        await child.close();
      }
    }
  };
  await inFolder(root, "", (dir) => walk(dir, true));
}

/**
 * Opens a process's log, `<partition>/var/log/<name>.log`, for appending (made when missing, and
 * the folders on the way, given to `owner`): the descriptor the process gets as stdout and stderr.
 * A link (or a special file) in place of the log or of a folder on the way is removed and replaced:
 * where it pointed is never opened.
 */
export function openPartitionLog(partitionPath: string, name: string, owner: PartitionUser | undefined): Promise<FileHandle> {
  return openFileBeneath(partitionPath, `var/log/${name}.log`, constants.O_WRONLY | constants.O_APPEND | constants.O_CREAT, { owner, mkdirs: true, replace: true });
}

/** Makes the node's folder `relative` under `root` (and those on the way), given to `owner` when made; a link in the way is replaced by the folder. */
export function ensureFolder(root: string, relative: string, owner: PartitionUser | undefined): Promise<void> {
  return inFolder(root, relative, () => Promise.resolve(), { owner, replace: true });
}

/**
 * Makes `name` in the folder open as `dir` a regular file holding `bytes` (mode `mode`, given to
 * `owner`), without following a link: unchanged content is not rewritten (its mode and owner are
 * made right); `once`: an existing file is left as it is.
 * @throws PlantedLinkError when a link, or something that is not a regular file, is there.
 */
export async function writeFileIn(dir: FileHandle, name: string, bytes: Buffer, options: { mode?: number | undefined; owner?: PartitionUser | undefined; once?: boolean; shown: string }): Promise<void> {
  const mode = async (file: FileHandle, s: Stats): Promise<void> => {
    if (options.mode !== undefined && (s.mode & 0o7777) !== options.mode) await file.chmod(options.mode);
  };
  const current = await open(at(dir, name), O_RDONLY | O_NOFOLLOW | O_NONBLOCK).catch((error: NodeJS.ErrnoException) => {
    if (error.code === "ENOENT") return undefined;
    return wrap(error, options.shown);
  });
  if (current !== undefined) {
    try {
      const s = await ownedRegular(current, options.shown, options.owner);
      if (options.once === true) return;
      if (s.size === bytes.length && (await current.readFile()).equals(bytes)) return await mode(current, s);
    } finally {
      await current.close();
    }
  }
  const file = await open(at(dir, name), constants.O_WRONLY | constants.O_CREAT | constants.O_TRUNC | O_NOFOLLOW | O_NONBLOCK, options.mode ?? 0o644).catch((error: unknown) => wrap(error, options.shown));
  try {
    const s = await ownedRegular(file, options.shown, options.owner);
    await file.writeFile(bytes);
    await mode(file, s);
  } finally {
    await file.close();
  }
}

/** `writeFileIn` for the file `relative` under `root`, the folders on the way made (given to `owner`) when missing; a link on the way is refused. */
export function writeFileBeneath(root: string, relative: string, bytes: Buffer, options: { mode?: number | undefined; owner?: PartitionUser | undefined; once?: boolean }): Promise<void> {
  const parts = components(relative);
  const name = parts.pop()!;
  return inFolder(root, parts.join("/"), (dir) => writeFileIn(dir, name, bytes, { ...options, shown: relative }), { owner: options.owner });
}
