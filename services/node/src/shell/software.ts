import { execFile } from "node:child_process";
import { createHash } from "node:crypto";
import { appendFile, cp, mkdir, readFile, rm, stat, writeFile } from "node:fs/promises";
import { dirname, join, normalize, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { z } from "zod";
import { ParametersSchema } from "@slap/events";
import { ReleaseManifest } from "../core/manifest.js";
import { insidePartition } from "../core/paths.js";

export const INSTALLED_MARKER = ".slap-installed";
export const INSTALL_LOG = ".slap-install.log";

/** The folder a release is installed into: `<root>/software/<sha256(url) first 16 hex>`. */
export function softwareDir(root: string, releaseUrl: string): string {
  return join(root, "software", createHash("sha256").update(releaseUrl).digest("hex").slice(0, 16));
}

/** An install that failed: the message, and the tail of its log for the master. */
export class InstallError extends Error {
  override name = "InstallError";
  constructor(
    message: string,
    readonly log: string,
  ) {
    super(message);
  }
}

export async function isInstalled(dir: string): Promise<boolean> {
  return stat(join(dir, INSTALLED_MARKER)).then(
    () => true,
    () => false,
  );
}

/** SlapOS's name for a release's instance parameters schema, read when the manifest has no `parameters`. */
export const INPUT_SCHEMA_FILE = "instance-input-schema.json";

/** Reads and validates the manifest of an installed release, its parameters schema from `INPUT_SCHEMA_FILE` if it has none inline. */
export async function readManifest(dir: string): Promise<ReleaseManifest> {
  const read = async (file: string): Promise<unknown> => {
    try {
      return JSON.parse(await readFile(join(dir, file), "utf8"));
    } catch (error) {
      if (file === INPUT_SCHEMA_FILE && (error as NodeJS.ErrnoException).code === "ENOENT") return undefined;
      throw new Error(`cannot read ${file}: ${error instanceof Error ? error.message : String(error)}`, { cause: error });
    }
  };
  const parsed = ReleaseManifest.safeParse(await read("slap-release.json"));
  if (!parsed.success) throw new Error(`invalid slap-release.json:\n${z.prettifyError(parsed.error)}`);
  if (parsed.data.parameters !== undefined) return parsed.data;
  const schema = await read(INPUT_SCHEMA_FILE);
  if (schema === undefined) return parsed.data;
  const checked = ParametersSchema.safeParse(schema);
  if (!checked.success) throw new Error(`invalid ${INPUT_SCHEMA_FILE}:\n${z.prettifyError(checked.error)}`);
  return { ...parsed.data, parameters: checked.data };
}

/**
 * Installs a release once: copies (or fetches) it into `dir`, runs its install steps there (argv
 * arrays, no shell), writes the marker last. Throws `InstallError` with the log tail.
 */
export async function install(releaseUrl: string, dir: string, options: { cwd?: string; timeoutMs?: number } = {}): Promise<void> {
  await rm(dir, { recursive: true, force: true });
  await mkdir(dir, { recursive: true });
  const logFile = join(dir, INSTALL_LOG);
  const log = (line: string): Promise<void> => appendFile(logFile, line.endsWith("\n") ? line : `${line}\n`);
  const fail = async (message: string): Promise<never> => {
    await log(`install failed: ${message}`).catch(() => undefined);
    const text = await readFile(logFile, "utf8").catch(() => message);
    throw new InstallError(message, text.slice(-4_000));
  };
  try {
    if (/^https?:\/\//.test(releaseUrl)) await fetchRelease(releaseUrl, dir);
    else {
      const source = releaseUrl.startsWith("file://") ? fileURLToPath(releaseUrl) : resolve(options.cwd ?? process.cwd(), releaseUrl);
      await cp(source, dir, { recursive: true, filter: (src) => !src.endsWith(INSTALLED_MARKER) });
    }
  } catch (error) {
    return fail(`cannot fetch the release: ${error instanceof Error ? error.message : String(error)}`);
  }
  let manifest: ReleaseManifest;
  try {
    manifest = await readManifest(dir);
  } catch (error) {
    return fail(error instanceof Error ? error.message : String(error));
  }
  for (const step of manifest.install) {
    const [file, ...args] = step as [string, ...string[]];
    await log(`$ ${JSON.stringify(step)}`);
    const result = await new Promise<{ code: number | null; output: string; error?: Error }>((done) => {
      execFile(file, args, { cwd: dir, timeout: options.timeoutMs ?? 600_000, maxBuffer: 16 * 1024 * 1024 }, (error, stdout, stderr) => {
        const code = error === null ? 0 : typeof error.code === "number" ? error.code : null;
        done({ code, output: `${stdout}${stderr}`, ...(error === null ? {} : { error }) });
      });
    });
    await log(result.output);
    if (result.code !== 0) return fail(`step ${JSON.stringify(step)} ${result.code === null ? `failed: ${result.error?.message ?? "unknown error"}` : `exited with code ${result.code}`}`);
  }
  await writeFile(join(dir, INSTALLED_MARKER), `${new Date().toISOString()}\n`);
}

async function fetchRelease(releaseUrl: string, dir: string): Promise<void> {
  const base = releaseUrl.endsWith("/") ? releaseUrl : `${releaseUrl}/`;
  const get = async (file: string): Promise<Buffer> => {
    const response = await fetch(new URL(file, base), { signal: AbortSignal.timeout(60_000) });
    if (!response.ok) throw new Error(`GET ${file}: HTTP ${response.status}`);
    return Buffer.from(await response.arrayBuffer());
  };
  const manifestBytes = await get("slap-release.json");
  const parsed = ReleaseManifest.safeParse(JSON.parse(manifestBytes.toString("utf8")));
  if (!parsed.success) throw new Error(`invalid slap-release.json:\n${z.prettifyError(parsed.error)}`);
  await writeFile(join(dir, "slap-release.json"), manifestBytes);
  const profiles = [...Object.values(parsed.data.profiles), ...(parsed.data.destroy === undefined ? [] : [parsed.data.destroy])];
  // A command profile's executable is fetched executable.
  const executables = new Set(profiles.flatMap((p) => (typeof p === "string" ? [] : [normalize(p.command[0])])));
  const files = new Set([...parsed.data.files.map((f) => normalize(f)), ...profiles.map((p) => normalize(typeof p === "string" ? p : p.command[0]))]);
  for (const file of files) {
    const target = insidePartition(dir, file);
    await mkdir(dirname(target), { recursive: true });
    await writeFile(target, await get(file), executables.has(file) ? { mode: 0o755 } : {});
  }
}
