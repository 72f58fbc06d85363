import { chmod, mkdir, readFile, rename, rm, writeFile } from "node:fs/promises";
import { basename, dirname, join } from "node:path";
import { DeployedState } from "../core/state.js";

/**
 * What the node keeps of a partition lives outside it, where its user cannot write:
 * `<root>/state/<partition id>/` (0700, the node's), holding `state.json` (what was last deployed)
 * and `run/<service>.pid`. A tenant cannot rename, replace or forge any of it (DESIGN.md,
 * "Root-safe file handling").
 */
export function nodeStateDir(partitionPath: string): string {
  return join(dirname(partitionPath), "state", basename(partitionPath));
}

/** The folder of the partition's pid files (`pidFileOf`). */
export function runDirOf(partitionPath: string): string {
  return join(nodeStateDir(partitionPath), "run");
}

/** Where the supervisor records a running service of the partition: its pid and argv. */
export function pidFileOf(partitionPath: string, service: string): string {
  return join(runDirOf(partitionPath), `${service}.pid`);
}

/** Makes the node's folder of a partition (and `run/` in it), private to the node. */
export async function prepareNodeStateDir(partitionPath: string): Promise<void> {
  const dir = nodeStateDir(partitionPath);
  await mkdir(runDirOf(partitionPath), { recursive: true, mode: 0o700 });
  await chmod(dirname(dir), 0o700);
  await chmod(dir, 0o700);
}

/** The state file in the node's folder of a partition. */
export const STATE_FILE = "state.json";

/** The partition's saved state; undefined when there is none or it cannot be read (then the instance is processed as new). */
export async function readDeployedState(partitionPath: string): Promise<DeployedState | undefined> {
  try {
    const parsed = DeployedState.safeParse(JSON.parse(await readFile(join(nodeStateDir(partitionPath), STATE_FILE), "utf8")));
    return parsed.success ? parsed.data : undefined;
  } catch {
    return undefined;
  }
}

/** Writes the state whole or not at all (a node killed mid-write keeps the previous one). */
export async function writeDeployedState(partitionPath: string, state: DeployedState): Promise<void> {
  const file = join(nodeStateDir(partitionPath), STATE_FILE);
  await writeFile(`${file}.tmp`, `${JSON.stringify(state, null, 2)}\n`, { mode: 0o600 });
  await rename(`${file}.tmp`, file);
}

/** Forgets what was deployed (the instance was destroyed and its partition wiped). */
export async function clearDeployedState(partitionPath: string): Promise<void> {
  await rm(join(nodeStateDir(partitionPath), STATE_FILE), { force: true });
}
