import { spawn, type ChildProcess } from "node:child_process";
import { renameSync, rmSync, writeFileSync } from "node:fs";
import { open, readdir, readFile, rm, stat } from "node:fs/promises";
import { join } from "node:path";
import type { Logger } from "pino";
import { nextRestart } from "../core/backoff.js";
import { openPartitionLog, readTailBeneath, tailOf } from "./beneath.js";
import type { ProcessReport } from "./master-client.js";
import { pidFileOf, runDirOf } from "./partition-state.js";
import type { PartitionUser } from "./users.js";

/** A declared long-running process (`etc/service/<name>.json`). */
export interface ServiceSpec {
  command: string[];
  env: Record<string, string>;
  cwd: string;
}

/** What the supervisor tells its owner when a service exits on its own. */
export interface ServiceExit {
  name: string;
  code: number | null;
  signal: string | null;
  logTail: string;
  restartInMs: number;
}

interface Service {
  name: string;
  key: string;
  spec: ServiceSpec;
  child: ChildProcess | undefined;
  state: ProcessReport["state"];
  exitCode: number | undefined;
  startedAt: number;
  failures: number;
  /** Set once the supervisor stops it: a launch in flight must not spawn. */
  stopped: boolean;
  timer: NodeJS.Timeout | undefined;
  exited: Promise<void>;
}

const KILL_AFTER_MS = 5_000;

/**
 * The environment variable every service is started with: `<partition folder>#<service name>`.
 * A node killed between starting a service and recording its pid leaves a process no pid file
 * names; its restart finds it by this mark (`markedServices`) and stops it.
 */
export const SERVICE_MARK = "SLAP_SERVICE";

/**
 * Keeps one partition's services running: `apply(declared)` stops the ones no longer declared,
 * (re)starts new or changed ones, leaves unchanged ones alone. An exit not caused by the
 * supervisor is reported (`onExit`) and the service restarted with back-off (core/backoff.ts).
 */
export class Supervisor {
  private readonly services = new Map<string, Service>();
  private closed = false;
  /** The partition's unix user: services run as it, their logs belong to it (undefined: the node's user). */
  private owner: PartitionUser | undefined;

  constructor(
    private readonly partitionPath: string,
    private readonly logger: Logger,
    private readonly onExit: (exit: ServiceExit) => void,
  ) {}

  /** Set at format time, before any service starts. */
  setOwner(owner: PartitionUser | undefined): void {
    this.owner = owner;
  }

  async apply(declared: Map<string, ServiceSpec>): Promise<void> {
    for (const [name, service] of [...this.services]) {
      const wanted = declared.get(name);
      if (wanted === undefined || JSON.stringify(wanted) !== service.key) {
        await this.stopOne(service);
        this.services.delete(name);
      }
    }
    for (const [name, spec] of declared) {
      if (this.services.has(name)) continue;
      const service: Service = {
        name,
        key: JSON.stringify(spec),
        spec,
        child: undefined,
        state: "stopped",
        exitCode: undefined,
        startedAt: 0,
        failures: 0,
        stopped: false,
        timer: undefined,
        exited: Promise.resolve(),
      };
      this.services.set(name, service);
      await this.launch(service);
    }
  }

  /** Stops every service (SIGTERM, then SIGKILL after 5 s). */
  async stopAll(): Promise<void> {
    await Promise.all([...this.services.values()].map((s) => this.stopOne(s)));
    this.services.clear();
  }

  /** Stops every service and refuses to start new ones. */
  async close(): Promise<void> {
    this.closed = true;
    await this.stopAll();
  }

  processes(): ProcessReport[] {
    return [...this.services.values()].map((s) => ({
      name: s.name,
      state: s.state,
      ...(s.child?.pid !== undefined && s.state === "running" ? { pid: s.child.pid } : {}),
      ...(s.exitCode === undefined ? {} : { exitCode: s.exitCode }),
    }));
  }

  pid(name: string): number | undefined {
    const s = this.services.get(name);
    return s?.state === "running" ? s.child?.pid : undefined;
  }

  private async launch(service: Service): Promise<void> {
    if (this.closed || this.services.get(service.name) !== service) return;
    service.timer = undefined;
    const owner = this.owner;
    // Opened through the partition's descriptors, no link followed: a log the tenant swapped for a link stays where it points.
    const logFile = await openPartitionLog(this.partitionPath, service.name, owner);
    if (this.closed || service.stopped) {
      await logFile.close();
      return;
    }
    const [file, ...args] = service.spec.command as [string, ...string[]];
    let child: ChildProcess;
    try {
      child = spawn(file, args, {
        cwd: service.spec.cwd,
        env: { ...service.spec.env, [SERVICE_MARK]: `${this.partitionPath}#${service.name}` },
        stdio: ["ignore", logFile.fd, logFile.fd],
        ...(owner === undefined ? {} : { uid: owner.uid, gid: owner.gid }),
      });
    } finally {
      await logFile.close();
    }
    service.child = child;
    const pidFile = pidFileOf(this.partitionPath, service.name);
    if (child.pid !== undefined) {
      // Written whole or not at all (a node killed mid-write must not leave half a pid file).
      writeFileSync(`${pidFile}.tmp`, `${JSON.stringify({ pid: child.pid, command: service.spec.command })}\n`);
      renameSync(`${pidFile}.tmp`, pidFile);
    }
    service.state = "running";
    service.startedAt = Date.now();
    service.exitCode = undefined;
    let resolveExit: () => void = () => undefined;
    service.exited = new Promise((r) => (resolveExit = r));
    const log = this.logger.child({ serviceName: service.name });
    let ended = false;
    const onEnd = (code: number | null, signal: NodeJS.Signals | null): void => {
      if (ended) return;
      ended = true;
      rmSync(pidFile, { force: true });
      resolveExit();
      if (service.child !== child) return;
      service.child = undefined;
      if (service.stopped || this.closed || this.services.get(service.name) !== service) return;
      const { delayMs, failures } = nextRestart(service.failures, Date.now() - service.startedAt);
      service.failures = failures;
      service.state = "backoff";
      service.exitCode = code ?? undefined;
      log.warn({ code, signal, restartInMs: delayMs }, "service exited; restarting after back-off");
      service.timer = setTimeout(() => {
        this.launch(service).catch((error: unknown) => log.error({ err: error }, "service restart failed"));
      }, delayMs);
      void this.tail(service.name).then((logTail) => this.onExit({ name: service.name, code, signal, logTail, restartInMs: delayMs }));
    };
    child.once("error", (error) => {
      log.error({ err: error }, "service could not start");
      onEnd(127, null);
    });
    child.once("close", onEnd);
    log.info({ pid: child.pid, command: service.spec.command }, "service started");
  }

  private async stopOne(service: Service): Promise<void> {
    service.state = "stopped";
    service.stopped = true;
    clearTimeout(service.timer);
    service.timer = undefined;
    const child = service.child;
    if (child === undefined || child.exitCode !== null || child.signalCode !== null) return;
    child.kill("SIGTERM");
    const killer = setTimeout(() => child.kill("SIGKILL"), KILL_AFTER_MS);
    await service.exited;
    clearTimeout(killer);
    this.logger.info({ serviceName: service.name }, "service stopped");
  }

  private tail(name: string, bytes = 2_048): Promise<string> {
    return readTailBeneath(this.partitionPath, `var/log/${name}.log`, bytes).then((text) => text ?? "");
  }
}

/** The last `bytes` of a file (a process's log), or undefined when it cannot be read. */
export function readTail(path: string, bytes: number): Promise<string | undefined> {
  return tailOf(() => open(path, "r"), bytes);
}

/**
 * The processes started as services of a node (by `SERVICE_MARK` in their environment, read in
 * /proc), by partition folder: pid and service name. Read once when a node starts, so that
 * `reapLeftovers` also stops a service whose pid was never recorded.
 */
export async function markedServices(): Promise<Map<string, Array<{ pid: number; name: string }>>> {
  const found = new Map<string, Array<{ pid: number; name: string }>>();
  const entries = await readdir("/proc").catch(() => [] as string[]);
  for (const entry of entries) {
    if (!/^\d+$/.test(entry)) continue;
    const mark = await serviceMarkOf(entry);
    if (mark === undefined) continue;
    const list = found.get(mark.partition) ?? [];
    list.push({ pid: Number(entry), name: mark.name });
    found.set(mark.partition, list);
  }
  return found;
}

/** The service mark (`SERVICE_MARK=<partition folder>#<service>`) of a running process, read from /proc; undefined for an unmarked or gone one. */
export async function serviceMarkOf(pid: number | string): Promise<{ partition: string; name: string } | undefined> {
  const environ = await readFile(`/proc/${pid}/environ`, "utf8").catch(() => "");
  const entry = environ.split("\0").find((e) => e.startsWith(`${SERVICE_MARK}=`));
  if (entry === undefined) return undefined;
  const value = entry.slice(SERVICE_MARK.length + 1);
  const at = value.lastIndexOf("#");
  return at < 0 ? undefined : { partition: value.slice(0, at), name: value.slice(at + 1) };
}

/** SIGTERM, then SIGKILL after 5 s while `runs()` still holds (a zombie, never reaped here, counts as gone). */
async function stopProcess(pid: number, runs: () => Promise<boolean>): Promise<void> {
  try {
    process.kill(pid, "SIGTERM");
  } catch {
    return;
  }
  const deadline = Date.now() + KILL_AFTER_MS;
  while (Date.now() < deadline && (await runs())) await new Promise((r) => setTimeout(r, 50));
  if (await runs()) process.kill(pid, "SIGKILL");
}

/** The uid a process runs as (the owner of its /proc folder), undefined once it is gone. */
async function uidOf(pid: number): Promise<number | undefined> {
  return (await stat(`/proc/${pid}`).catch(() => undefined))?.uid;
}

/**
 * Whether `pid` is a service of the partition at `partitionPath` by what the process itself
 * shows, never by a file's word: it carries the partition's mark (its environment, which no
 * other process can change) and, partition users on, runs as the partition's user.
 */
async function isPartitionService(pid: number, partitionPath: string, owner: PartitionUser | undefined): Promise<boolean> {
  if ((await serviceMarkOf(pid))?.partition !== partitionPath) return false;
  return owner === undefined || (await uidOf(pid)) === owner.uid;
}

/**
 * Stops the services a previous run of the node left behind (the node was killed and its
 * children survived): each pid the node recorded (`pidFileOf`, in the node's own folder) and
 * each process `marked` as a service of this partition (its pid never recorded), provided the
 * process is one (`isPartitionService`: its mark and its uid) — SIGTERM, then SIGKILL after 5 s.
 */
export async function reapLeftovers(
  partitionPath: string,
  logger: Logger,
  marked: ReadonlyArray<{ pid: number; name: string }> = [],
  owner?: PartitionUser,
): Promise<number> {
  const dir = runDirOf(partitionPath);
  const files = await readdir(dir).catch(() => [] as string[]);
  const candidates = new Map(marked.map(({ pid, name }) => [pid, name]));
  for (const file of files.filter((f) => f.endsWith(".pid"))) {
    const path = join(dir, file);
    try {
      const { pid } = JSON.parse(await readFile(path, "utf8")) as { pid: unknown };
      if (Number.isInteger(pid) && (pid as number) > 1) candidates.set(pid as number, file.slice(0, -4));
    } catch (error) {
      logger.warn({ err: error, file: path }, "could not read a leftover pid file");
    }
    await rm(path, { force: true });
  }
  let reaped = 0;
  for (const [pid, name] of candidates) {
    const still = (): Promise<boolean> => isPartitionService(pid, partitionPath, owner);
    if (!(await still())) continue;
    logger.warn({ pid, serviceName: name }, "stopping a service left running by a previous run of the node");
    await stopProcess(pid, still);
    reaped++;
  }
  return reaped;
}
