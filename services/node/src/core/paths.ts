import { isAbsolute, join, normalize, relative, sep } from "node:path";

/** A path that a profile may not touch: it escapes the partition. The message names the path. */
export class PathEscapeError extends Error {
  override name = "PathEscapeError";
  constructor(readonly path: string) {
    super(`path ${JSON.stringify(path)} escapes the partition: use a relative path inside it`);
  }
}

/** Resolves a relative `path` inside `root`; throws `PathEscapeError` for an absolute path or one leaving `root`. */
export function insidePartition(root: string, path: string): string {
  if (path === "" || isAbsolute(path) || path.includes("\0")) throw new PathEscapeError(path);
  const normalized = normalize(path);
  if (normalized === ".." || normalized.startsWith(`..${sep}`) || normalized.split(/[\\/]/).includes("..")) throw new PathEscapeError(path);
  const full = join(root, normalized);
  const back = relative(root, full);
  if (back === "" || back.startsWith("..") || isAbsolute(back)) throw new PathEscapeError(path);
  return full;
}
