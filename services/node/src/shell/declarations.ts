import { mkdir } from "node:fs/promises";
import { dirname, isAbsolute, join } from "node:path";
import { insidePartition } from "../core/paths.js";
import { RUN_TIMEOUT_MS, runOnce } from "./checks.js";
import { NODE_OWNED, syncFolder } from "./partition-state.js";
import type { Declarations, ProcessDeclaration } from "./profile.js";
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

/**
 * Applies what a profile declared: writes etc/service, etc/run, etc/promise (exactly the
 * declared entries), hands the partition to its user, runs the one-shots (each at most
 * `runTimeoutMs`, default 10 min), then starts, restarts or stops services to match.
 */
export async function applyDeclarations(partition: DeclaredPartition, declarations: Declarations, runTimeoutMs = RUN_TIMEOUT_MS): Promise<void> {
  const { path, user } = partition;
  await mkdir(join(path, "tmp"), { recursive: true });
  const services = new Map([...declarations.services].map(([name, d]) => [name, spec(path, d)]));
  const runs = new Map([...declarations.runs].map(([name, d]) => [name, spec(path, d)]));
  await syncFolder(join(path, "etc", "service"), services);
  await syncFolder(join(path, "etc", "run"), runs);
  await syncFolder(join(path, "etc", "promise"), declarations.promises);
  // What the profile (run by the node) wrote in the partition becomes its user's, before any of its processes start.
  if (user !== undefined) await ownTree(path, user, NODE_OWNED);
  for (const [name, s] of runs) await runOnce(path, name, s, user, runTimeoutMs);
  await partition.supervisor.apply(services);
}
