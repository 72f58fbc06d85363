import { chmod, mkdir, rm } from "node:fs/promises";
import { join } from "node:path";
import type { Logger } from "pino";
import { DesiredWatch } from "./desired-watch.js";
import { checkLayout, checkRootReachable } from "./layout.js";
import { MasterClient, type DesiredState } from "./master-client.js";
import { PartitionRunner } from "./partition-runner.js";
import { ProfileHosts, WARM_PROFILES } from "./profile-hosts.js";
import { checkPortBlocks } from "./ports.js";
import { install, InstallError, isInstalled, readManifest, softwareDir } from "./software.js";
import { markedServices } from "./supervisor.js";
import { makeReadable, partitionUsersEnabled, type PartitionUser, type PartitionUsersOption } from "./users.js";

export { STATE_FILE } from "./partition-state.js";

export interface NodeOptions {
  /** The master's base URL: the node reads its computer's desired state there and writes through its HTTP API. */
  masterUrl: string;
  /** For an https:// master: the CA certificates (PEM) its certificate must chain to, instead of the system's. */
  masterCa?: string;
  /** This node's API token (the master's token file lists it with role node for this computer). */
  token: string;
  computerId: string;
  /** How many partitions to format: `slappart0` … `slappart<N-1>`. */
  partitions: number;
  /** The node's folder: partitions and installed software live here. */
  root: string;
  /** The address every partition listens on (default 127.0.0.1). */
  address?: string;
  /** Partition N gets ports `portBase + N*portsPerPartition` … `+ portsPerPartition - 1` (defaults 20000, 100). */
  portBase?: number;
  portsPerPartition?: number;
  /** Process every instance at least this often even if nothing changed (default one day). */
  maxPeriodicityMs?: number;
  /** How long a promise may take to hold (default 20 s); a command still running then is killed. */
  promiseTimeoutMs?: number;
  /**
   * How often a deployed instance's promises are checked again between processings (default 5
   * min, as SlapOS's monitor); a status is reported only when a result changes.
   */
  promiseIntervalMs?: number;
  /**
   * How long a profile's `deploy(slap)` (or a destroy hook) may take (default 10 min): then
   * processing ends in error, "profile timed out after N s", and the instance is processed again
   * at its next trigger (a change, a bang, the error retry, periodicity). See DESIGN.md, "Timeouts".
   */
  profileTimeoutMs?: number;
  /**
   * Warm hosts of JS profiles kept alive at once (default 8; 0: a fresh process per processing).
   * A warm host saves a processing the start of a Node process (DESIGN.md, "Warm profile hosts").
   */
  warmProfiles?: number;
  /** How long a one-shot (`slap.run`) may run (default 10 min): then it is killed and processing ends in error. */
  runTimeoutMs?: number;
  /**
   * How often the node tells the master it is alive (default 10 s). The master shows a computer
   * it has not heard from for a while (3 heartbeats by default) as unresponsive.
   */
  heartbeatMs?: number;
  /** How long one blocking query on the desired state waits for a change (default 30 s). */
  desiredWaitMs?: number;
  /** Where relative release paths resolve from (default the process's working directory). */
  cwd?: string;
  /**
   * `"auto"` (default): when the node runs as root, each partition gets its own unix user
   * (`slap-<hash8>-<N>`) that owns the partition and runs its processes. `"off"`: everything runs
   * as the node's user.
   */
  partitionUsers?: PartitionUsersOption;
  logger: Logger;
}

type SoftwareState = "installing" | "installed" | "failed" | "removing";

/** Default of `NodeOptions.heartbeatMs`. */
export const DEFAULT_HEARTBEAT_MS = 10_000;

/**
 * The node agent of one computer: formats its partitions, installs supplied releases, processes
 * the instances placed on it, supervises their services. Reads its computer's desired state from
 * the master and writes through the master's HTTP API, over HTTP only: it never reads the log.
 * See DESIGN.md and README.md.
 *
 * The node keeps what is the computer's (registration, software, heartbeats, the desired state);
 * each partition's work is its `PartitionRunner`'s, to which `scan` routes its partition's entry.
 */
export class Node {
  private readonly watch: DesiredWatch;
  private readonly client: MasterClient;
  private readonly profiles: ProfileHosts;
  /** The last good desired state's partitions, by id. */
  private partitionsById = new Map<string, DesiredState["partitions"][number]>();
  /** One runner per partition, by partition id: each owns its partition's state. */
  private readonly runners = new Map<string, PartitionRunner>();
  private readonly software = new Map<string, SoftwareState>();
  private readonly pendingWork = new Set<Promise<unknown>>();
  private readonly logger: Logger;
  private timer: NodeJS.Timeout | undefined;
  private heartbeatTimer: NodeJS.Timeout | undefined;
  /** A heartbeat in flight (never two at once), and whether the last one failed (logged once per outage). */
  private heartbeating: Promise<void> | undefined;
  private heartbeatFailing = false;
  private stopping = false;
  private readonly maxPeriodicityMs: number;

  constructor(private readonly options: NodeOptions) {
    this.logger = options.logger.child({ computerId: options.computerId });
    this.client = new MasterClient(options.masterUrl, options.computerId, options.token,
      (partitionId) => (partitionId === undefined ? this.watch.current?.revision : this.runners.get(partitionId)?.revision),
      options.masterCa,
    );
    this.watch = new DesiredWatch(
      this.client,
      this.logger,
      (desired) => {
        this.partitionsById = new Map(desired.partitions.map((p) => [p.partitionId, p]));
        this.scan();
      },
      options.desiredWaitMs,
    );
    this.maxPeriodicityMs = options.maxPeriodicityMs ?? 86_400_000;
    this.profiles = new ProfileHosts(options.warmProfiles ?? WARM_PROFILES, this.logger);
    for (let n = 0; n < options.partitions; n++) {
      const partitionId = `slappart${n}`;
      this.runners.set(
        partitionId,
        new PartitionRunner({
          computerId: options.computerId,
          partitionId,
          path: join(options.root, partitionId),
          root: options.root,
          client: this.client,
          profiles: this.profiles,
          desired: () => this.partitionsById.get(partitionId),
          releaseInstalled: (url) => this.software.get(url) === "installed",
          logger: this.logger,
          maxPeriodicityMs: this.maxPeriodicityMs,
          promiseTimeoutMs: options.promiseTimeoutMs,
          promiseIntervalMs: options.promiseIntervalMs,
          profileTimeoutMs: options.profileTimeoutMs,
          runTimeoutMs: options.runTimeoutMs,
          track: (work) => this.track(work),
          onRetryDue: () => this.scan(),
          onReleaseMissing: (url) => this.releaseMissing(url),
        }),
      );
    }
  }

  /** The computer's desired state as last read from the master (undefined before the first read). */
  get desired(): DesiredState | undefined {
    return this.watch.current;
  }

  /** The pid of a running service, for tests and diagnostics. */
  servicePid(partitionId: string, name: string): number | undefined {
    return this.runners.get(partitionId)?.servicePid(name);
  }

  /** The unix user a partition's processes run as (undefined: partition users off). */
  partitionUser(partitionId: string): PartitionUser | undefined {
    return this.runners.get(partitionId)?.partitionUser;
  }

  /** Whether each partition runs as its own unix user (`partitionUsers` "auto" and the node runs as root). */
  get partitionUsers(): boolean {
    return partitionUsersEnabled(this.options.partitionUsers);
  }

  /**
   * Formats the partitions, registers the computer, reads its desired state and starts processing.
   * Refuses to register (DESIGN.md, "Ports belong to their partition"):
   * @throws LayoutError when partition users are on and a parent of the root is not traversable
   *   by them, or a folder of the node is writable by them.
   * @throws PortsTakenError when a port of a partition's block is held by a process that is not
   *   that partition's own (checked after a previous run's leftovers were stopped).
   */
  async start(): Promise<void> {
    const { root } = this.options;
    await mkdir(join(root, "software"), { recursive: true });
    const users = this.partitionUsers;
    if (users) {
      // Partition users must reach their partition and the installed releases (a mkdtemp root is 0700).
      await chmod(root, 0o755);
      await chmod(join(root, "software"), 0o755);
    }
    const address = this.options.address ?? "127.0.0.1";
    const base = this.options.portBase ?? 20_000;
    const per = this.options.portsPerPartition ?? 100;
    const specs = [];
    // Services a killed run of this node left behind, found by their mark (see reapLeftovers).
    const marked = await markedServices();
    const runners = [...this.runners.values()];
    for (const [n, runner] of runners.entries()) {
      await runner.prepare(users, marked.get(runner.path));
      specs.push({ partitionId: runner.partitionId, address, ports: { from: base + n * per, to: base + n * per + per - 1 } });
    }
    if (users) {
      const partitions = runners.map((r) => ({ path: r.path, user: r.partitionUser! }));
      await checkRootReachable(root, partitions.map((p) => p.user));
      await checkLayout(root, join(root, "software"), partitions);
    }
    // Every partition's leftovers are stopped by now (one partition's may have held another's
    // ports): what still holds a port is someone else's, or a process of the partition itself.
    await checkPortBlocks(specs.map((spec, n) => ({ ...spec, path: runners[n]!.path, user: runners[n]!.partitionUser })));
    await this.client.register(specs);
    this.logger.info({ partitions: specs.length, root }, "computer formatted and registered");
    await this.watch.start();
    const every = Math.max(250, Math.min(this.maxPeriodicityMs / 4, 60_000));
    this.timer = setInterval(() => this.scan(), every);
    // Registering was a sign of life; from now on one every heartbeatMs.
    this.heartbeatTimer = setInterval(() => this.heartbeat(), this.options.heartbeatMs ?? DEFAULT_HEARTBEAT_MS);
    this.scan();
  }

  /** Tells the master this node is alive; a failure is logged once until one succeeds again. */
  private heartbeat(): void {
    if (this.stopping || this.heartbeating !== undefined) return;
    const timeoutMs = Math.max(1_000, this.options.heartbeatMs ?? DEFAULT_HEARTBEAT_MS);
    this.heartbeating = this.client
      .heartbeat(timeoutMs)
      .then(
        () => {
          if (this.heartbeatFailing) this.logger.info("heartbeat: the master hears this node again");
          this.heartbeatFailing = false;
        },
        (error: unknown) => {
          if (!this.heartbeatFailing) this.logger.warn({ err: error }, "heartbeat failed: the master may show this computer unresponsive");
          this.heartbeatFailing = true;
        },
      )
      .finally(() => {
        this.heartbeating = undefined;
      });
  }

  /** Stops processing and every service (SIGTERM, then SIGKILL after 5 s); leaves partitions as they are. */
  async stop(): Promise<void> {
    if (this.stopping) return;
    this.stopping = true;
    clearInterval(this.timer);
    clearInterval(this.heartbeatTimer);
    for (const runner of this.runners.values()) runner.halt();
    await this.watch.stop();
    await Promise.allSettled([...this.runners.values()].map((r) => r.settled()));
    this.profiles.close();
    await Promise.allSettled([...this.pendingWork]);
    await this.heartbeating;
    await Promise.all([...this.runners.values()].map((r) => r.close()));
    this.logger.info("node stopped");
  }

  /** Resolves once no partition is being processed and no install is running (tests, benchmarks). */
  async idle(): Promise<void> {
    for (;;) {
      const busy = [...this.runners.values()].map((r) => r.processing).filter((b) => b !== undefined);
      const work = [...this.pendingWork];
      if (busy.length === 0 && work.length === 0) return;
      await Promise.allSettled([...busy, ...work]);
    }
  }

  /**
   * Processes every instance again now, as after a restart (the no-change path: nothing in the
   * partitions should change). For tests, benchmarks and an operator's "reprocess" command.
   */
  reprocessAll(): void {
    for (const runner of this.runners.values()) runner.reprocess();
    this.scan();
  }

  /** Looks at the desired state and starts what must be done: installs, removals, processings. Cheap when nothing changed. */
  scan(): void {
    if (this.stopping) return;
    const desired = this.watch.current;
    if (desired === undefined) return;
    for (const software of desired.software) {
      const url = software.releaseUrl;
      const local = this.software.get(url);
      if (software.supplied && local === undefined) this.track(this.installSoftware(url, software.status));
      else if (!software.supplied && software.status !== "destroyed" && local !== "removing") this.track(this.removeSoftware(url));
    }
    for (const runner of this.runners.values()) {
      const entry = this.partitionsById.get(runner.partitionId);
      const instance = entry?.instance;
      if (entry === undefined || instance == null) {
        // Released without this node destroying it (e.g. by an operator): nothing may keep running.
        runner.update({ kind: "free" });
        continue;
      }
      runner.update({ kind: "held", partition: entry, releaseInstalled: this.software.get(instance.releaseUrl) === "installed" });
    }
  }

  private track(work: Promise<unknown>): void {
    const tracked = work.catch((error: unknown) => this.logger.error({ err: error }, "node task failed"));
    this.pendingWork.add(tracked);
    void tracked.finally(() => this.pendingWork.delete(tracked));
  }

  // -------------------------------------------------------------------------------------------
  // Software
  // -------------------------------------------------------------------------------------------

  private async installSoftware(url: string, reported: string): Promise<void> {
    this.software.set(url, "installing");
    const dir = softwareDir(this.options.root, url);
    const log = this.logger.child({ releaseUrl: url, dir });
    if (await isInstalled(dir)) {
      await this.shareRelease(dir, log);
      // Reported again at every start: the master learns the schema of a release installed before it knew schemas.
      await this.reportAvailable(url, dir, reported === "available");
      this.software.set(url, "installed");
      this.scan();
      return;
    }
    await this.client.reportSoftware(url, "building");
    log.info("installing release");
    try {
      await install(url, dir, { ...(this.options.cwd === undefined ? {} : { cwd: this.options.cwd }) });
    } catch (error) {
      this.software.set(url, "failed");
      const message = error instanceof Error ? error.message : String(error);
      log.error({ err: error }, "release install failed");
      await this.client.reportSoftware(url, "error", error instanceof InstallError ? error.log : message);
      return;
    }
    await this.shareRelease(dir, log);
    this.software.set(url, "installed");
    log.info("release installed");
    await this.reportAvailable(url, dir, false);
    this.scan();
  }

  /** Reports a release available with its parameters schema (the master skips the report when nothing changed). */
  private async reportAvailable(url: string, dir: string, known: boolean): Promise<void> {
    const schema = await readManifest(dir).then(
      (manifest) => manifest.parameters,
      () => undefined,
    );
    if (known && schema === undefined) return;
    await this.client.reportSoftware(url, "available", undefined, schema);
  }

  /** Partition users on: the installed release readable (and its folders traversable) by every user (`chmod -R a+rX`). */
  private async shareRelease(dir: string, log: Logger): Promise<void> {
    if (!this.partitionUsers) return;
    try {
      await makeReadable(dir);
    } catch (error) {
      log.warn({ err: error }, "could not make the installed release readable by the partition users");
    }
  }

  /** A release the node had installed is gone from its folder: forgotten, so that the next scan installs it again. */
  private releaseMissing(url: string): void {
    if (this.software.get(url) !== "installed") return;
    this.logger.warn({ releaseUrl: url }, "an installed release is gone from the node's folder: installing it again");
    this.software.delete(url);
    queueMicrotask(() => this.scan());
  }

  private async removeSoftware(url: string): Promise<void> {
    this.software.set(url, "removing");
    await rm(softwareDir(this.options.root, url), { recursive: true, force: true });
    await this.client.reportSoftware(url, "destroyed");
    this.software.delete(url);
    this.logger.info({ releaseUrl: url }, "release removed");
  }
}
