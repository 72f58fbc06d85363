import { randomBytes } from "node:crypto";
import { chmod, mkdir, readFile, stat, writeFile } from "node:fs/promises";
import { dirname, join } from "node:path";
import { pathToFileURL } from "node:url";
import type { Logger } from "pino";
import { insidePartition } from "../core/paths.js";
import type { Answer, RequestBody } from "./master-client.js";

/** Thrown by `slap.request` when the requested instance is not ready: processing ends as `waiting`. */
export class Waiting extends Error {
  override name = "Waiting";
  constructor(
    readonly reference: string,
    readonly reason: string,
  ) {
    super(`waiting for ${reference}: ${reason}`);
  }
}

export interface ProcessDeclaration {
  command: string[];
  env?: Record<string, string>;
  cwd?: string;
}

export type PromiseCheck = { command: string[] } | { http: string } | { tcp: { host: string; port: number } };

/** What a profile run declared; the node applies it after the run returns. */
export interface Declarations {
  services: Map<string, ProcessDeclaration>;
  runs: Map<string, ProcessDeclaration>;
  promises: Map<string, PromiseCheck>;
  published: Record<string, string> | undefined;
  publishedShared: Map<string, Record<string, string>>;
}

export interface SlapContext {
  parameters: Record<string, string>;
  instance: { instanceId: string; treeId: string; reference: string; softwareType: string; releaseUrl: string };
  partition: { computerId: string; partitionId: string; path: string; address: string; ports: { from: number; to: number } };
  software: string;
  sharedInstances: Array<{ instanceId: string; reference: string; parameters: Record<string, string> }>;
  destroying: boolean;
  log: Logger;
  request: (body: RequestBody) => Promise<Answer>;
}

/** The `slap` object a profile module's default export receives (DESIGN.md). */
export interface Slap {
  readonly parameters: Readonly<Record<string, string>>;
  readonly instance: SlapContext["instance"];
  readonly partition: SlapContext["partition"];
  readonly software: string;
  readonly sharedInstances: SlapContext["sharedInstances"];
  readonly destroying: boolean;
  readonly log: Logger;
  write(path: string, content: string | Uint8Array, options?: { mode?: number }): Promise<string>;
  render(template: string, path: string, values: Record<string, string | number>): Promise<string>;
  once(path: string, create: () => string | Uint8Array | Promise<string | Uint8Array>): Promise<string>;
  secret(name: string, options?: { length?: number }): Promise<string>;
  service(name: string, declaration: ProcessDeclaration): void;
  run(name: string, declaration: ProcessDeclaration): void;
  promise(name: string, check: PromiseCheck): void;
  request(
    releaseUrl: string,
    reference: string,
    options?: { parameters?: Record<string, string>; softwareType?: string; sla?: Record<string, string>; shared?: boolean; state?: "started" | "stopped" | "destroyed" },
  ): Promise<Record<string, string>>;
  publish(parameters: Record<string, string | number>): void;
  publishShared(instanceId: string, parameters: Record<string, string | number>): void;
}

const NAME = /^[A-Za-z0-9_.-]{1,128}$/;

function checkName(kind: string, name: string): void {
  if (!NAME.test(name) || name.startsWith(".")) throw new Error(`invalid ${kind} name ${JSON.stringify(name)}: use 1-128 characters of A-Z, a-z, 0-9, _, . or -`);
}

function checkDeclaration(kind: string, name: string, d: ProcessDeclaration): void {
  checkName(kind, name);
  if (!Array.isArray(d.command) || d.command.length === 0 || !d.command.every((a) => typeof a === "string")) {
    throw new Error(`${kind} ${name}: command must be a non-empty argv array of strings (never a shell string)`);
  }
}

function stringMap(values: Record<string, string | number>): Record<string, string> {
  return Object.fromEntries(Object.entries(values).map(([k, v]) => [k, String(v)]));
}

/** Writes `content` unless the file already holds exactly it; sets `mode` when given. */
async function writeIfChanged(file: string, content: string | Uint8Array, mode?: number): Promise<void> {
  const bytes = typeof content === "string" ? Buffer.from(content) : Buffer.from(content);
  const current = await readFile(file).catch(() => undefined);
  if (current === undefined || !current.equals(bytes)) {
    await mkdir(dirname(file), { recursive: true });
    await writeFile(file, bytes, mode === undefined ? {} : { mode });
  }
  if (mode !== undefined) {
    const s = await stat(file);
    if ((s.mode & 0o7777) !== mode) await chmod(file, mode);
  }
}

/**
 * The `slap` object of one processing, its declarations, and `close()`: once the processing is
 * over (done, failed or timed out), every method throws, so a profile still running in the
 * background cannot write into a partition that may belong to someone else by then, nor request
 * as it.
 */
export function createSlap(context: SlapContext): { slap: Slap; declarations: Declarations; close(): void } {
  const root = context.partition.path;
  let closed = false;
  const open = (what: string): void => {
    if (closed) throw new Error(`slap.${what}: this processing of ${context.instance.instanceId} is over (done or timed out); the profile may not act any more`);
  };
  const declarations: Declarations = { services: new Map(), runs: new Map(), promises: new Map(), published: undefined, publishedShared: new Map() };
  const once = async (path: string, create: () => string | Uint8Array | Promise<string | Uint8Array>, mode?: number): Promise<string> => {
    open("once");
    const file = insidePartition(root, path);
    const existing = await readFile(file, "utf8").catch((error: NodeJS.ErrnoException) => {
      if (error.code === "ENOENT") return undefined;
      throw error;
    });
    if (existing !== undefined) return existing;
    const content = await create();
    await mkdir(dirname(file), { recursive: true });
    await writeFile(file, content, { flag: "wx", ...(mode === undefined ? {} : { mode }) });
    return typeof content === "string" ? content : Buffer.from(content).toString("utf8");
  };
  const slap: Slap = {
    parameters: Object.freeze({ ...context.parameters }),
    instance: context.instance,
    partition: context.partition,
    software: context.software,
    sharedInstances: context.sharedInstances,
    destroying: context.destroying,
    log: context.log,
    async write(path, content, options = {}) {
      open("write");
      const file = insidePartition(root, path);
      await writeIfChanged(file, content, options.mode);
      return file;
    },
    async render(template, path, values) {
      open("render");
      const source = insidePartition(context.software, template);
      const text = await readFile(source, "utf8");
      const rendered = text.replace(/\{\{\s*([A-Za-z0-9_.-]+)\s*\}\}/g, (match, name: string) => {
        const value = values[name];
        if (value === undefined) throw new Error(`template ${template}: no value for {{${name}}}`);
        return String(value);
      });
      return slap.write(path, rendered);
    },
    once: (path, create) => once(path, create),
    secret(name, options = {}) {
      open("secret");
      checkName("secret", name);
      const length = options.length ?? 24;
      return once(join("etc", "secrets", name), () => randomBytes(length).toString("base64url").slice(0, length), 0o600);
    },
    service(name, declaration) {
      open("service");
      checkDeclaration("service", name, declaration);
      declarations.services.set(name, declaration);
    },
    run(name, declaration) {
      open("run");
      checkDeclaration("run", name, declaration);
      declarations.runs.set(name, declaration);
    },
    promise(name, check) {
      open("promise");
      checkName("promise", name);
      declarations.promises.set(name, check);
    },
    async request(releaseUrl, reference, options = {}) {
      open("request");
      const answer = await context.request({
        releaseUrl,
        reference,
        ...(options.parameters === undefined ? {} : { parameters: options.parameters }),
        ...(options.softwareType === undefined ? {} : { softwareType: options.softwareType }),
        ...(options.sla === undefined ? {} : { sla: options.sla }),
        ...(options.shared === undefined ? {} : { shared: options.shared }),
        ...(options.state === undefined ? {} : { state: options.state }),
      });
      if (answer.status === "ready") return answer.connection;
      if (answer.status === "destroyed") return {};
      throw new Waiting(reference, answer.reason);
    },
    publish(parameters) {
      open("publish");
      declarations.published = { ...declarations.published, ...stringMap(parameters) };
    },
    publishShared(instanceId, parameters) {
      open("publishShared");
      if (!context.sharedInstances.some((s) => s.instanceId === instanceId)) throw new Error(`${instanceId} is not a shared instance attached to this instance`);
      declarations.publishedShared.set(instanceId, { ...declarations.publishedShared.get(instanceId), ...stringMap(parameters) });
    },
  };
  return {
    slap,
    declarations,
    close() {
      closed = true;
    },
  };
}

/** A profile that did not finish in time: processing ends in error; the run cannot be cancelled. */
export class ProfileTimeout extends Error {
  override name = "ProfileTimeout";
  constructor(
    readonly file: string,
    readonly timeoutMs: number,
  ) {
    super(`profile timed out after ${secondsOf(timeoutMs)} s`);
  }
}

/** Milliseconds as seconds for a message: `600`, `1.5`. */
export function secondsOf(ms: number): string {
  return String(Math.round(ms) / 1000);
}

/** Default of `runProfile`'s `timeoutMs`: 10 min. */
export const PROFILE_TIMEOUT_MS = 600_000;

/**
 * Loads a profile module and runs its default export. The module URL carries the file's
 * modification time, so an edited profile is picked up and an unchanged one is not reloaded.
 * A load and run that take longer than `timeoutMs` (default 10 min) reject with
 * `ProfileTimeout`. The run cannot be cancelled: whatever it still awaits goes on in the
 * background, and a profile that blocks the event loop (a synchronous endless loop) is never
 * timed out at all, since this timer cannot fire (DESIGN.md, "Timeouts").
 */
export async function runProfile(file: string, slap: Slap, timeoutMs = PROFILE_TIMEOUT_MS): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new ProfileTimeout(file, timeoutMs)), timeoutMs);
  });
  const run = async (): Promise<void> => {
    const { mtimeMs } = await stat(file);
    // A module's top-level await that never settles hangs the import: it is under the timeout too.
    const module = (await import(`${pathToFileURL(file).href}?v=${Math.floor(mtimeMs)}`)) as { default?: unknown };
    if (typeof module.default !== "function") throw new Error(`profile ${file} has no default export function`);
    await (module.default as (slap: Slap) => unknown)(slap);
  };
  try {
    await Promise.race([run(), timeout]);
  } finally {
    clearTimeout(timer);
  }
}
