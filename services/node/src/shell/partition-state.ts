import { mkdir, readFile, readdir, rm, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { DeployedState } from "../core/state.js";

/** What the node last deployed in a partition, in the partition itself (`<partition>/.slap-state.json`). */
export const STATE_FILE = ".slap-state.json";

/** What stays the node's (root's) in a partition owned by its user. */
export const NODE_OWNED: ReadonlySet<string> = new Set([STATE_FILE, "var/run"]);

/** The partition's saved state; undefined when there is none or it cannot be read (then the instance is processed as new). */
export async function readDeployedState(partitionPath: string): Promise<DeployedState | undefined> {
  try {
    const parsed = DeployedState.safeParse(JSON.parse(await readFile(join(partitionPath, STATE_FILE), "utf8")));
    return parsed.success ? parsed.data : undefined;
  } catch {
    return undefined;
  }
}

export async function writeDeployedState(partitionPath: string, state: DeployedState): Promise<void> {
  await writeFile(join(partitionPath, STATE_FILE), `${JSON.stringify(state, null, 2)}\n`);
}

/** Makes `<dir>/<name>.json` hold exactly the declared entries: changed files rewritten, stale ones removed. */
export async function syncFolder(dir: string, entries: Map<string, unknown>): Promise<void> {
  await mkdir(dir, { recursive: true });
  for (const file of await readdir(dir)) {
    if (file.endsWith(".json") && !entries.has(file.slice(0, -5))) await rm(join(dir, file), { force: true });
  }
  for (const [name, value] of entries) {
    const file = join(dir, `${name}.json`);
    const content = `${JSON.stringify(value, null, 2)}\n`;
    const current = await readFile(file, "utf8").catch(() => undefined);
    if (current !== content) await writeFile(file, content);
  }
}
