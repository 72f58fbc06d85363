import { chmod, mkdir, readFile, readdir, rm, writeFile } from "node:fs/promises";
import { dirname, isAbsolute, join } from "node:path";
import { cloudProjection, type CloudView } from "@slap/events";
import { ProjectionRunner, type EventStore, type InstanceView, type PartitionView } from "@slap/events";
import type { Logger } from "pino";
import { checkParameters } from "../core/parameters.js";
import { insidePartition } from "../core/paths.js";
import { DeployedState, decideProcessing, parametersHash, sameDeployment, type ProcessDecision } from "../core/state.js";
import { checkPromise, RUN_TIMEOUT_MS, runOnce } from "./checks.js";
import { MasterClient, MasterError, type PromiseReport, type StatusReport } from "./master-client.js";
import { createSlap, PROFILE_TIMEOUT_MS, runProfile, Waiting, type Declarations, type ProcessDeclaration } from "./profile.js";
import { install, InstallError, isInstalled, readManifest, softwareDir } from "./software.js";
import { markedServices, reapLeftovers, Supervisor, type ServiceExit, type ServiceSpec } from "./supervisor.js";
import { ensureUser, makeReadable, ownTree, partitionUserName, partitionUsersEnabled, type PartitionUser, type PartitionUsersOption } from "./users.js";

export interface NodeOptions {
  /** The event log the node follows (read side). */
  store: EventStore;
  /** The master's base URL: every write goes through its HTTP API. */
  masterUrl: string;
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
   * How long a profile's `deploy(slap)` (or a destroy hook) may take (default 10 min): then
   * processing ends in error, "profile timed out after N s", and the instance is processed again
   * at its next trigger (a change, a bang, the error retry, periodicity). See DESIGN.md, "Timeouts".
   */
  profileTimeoutMs?: number;
  /** How long a one-shot (`slap.run`) may run (default 10 min): then it is killed and processing ends in error. */
  runTimeoutMs?: number;
  /**
   * How often the node tells the master it is alive (default 10 s). The master shows a computer
   * it has not heard from for a while (3 heartbeats by default) as unresponsive.
   */
  heartbeatMs?: number;
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

export const STATE_FILE = ".slap-state.json";

/** What stays the node's (root's) in a partition owned by its user. */
const NODE_OWNED = new Set([STATE_FILE, "var/run"]);

interface Slot {
  partitionId: string;
  path: string;
  supervisor: Supervisor;
  busy: Promise<void> | undefined;
  dirty: boolean;
  state: DeployedState | undefined;
  stateLoaded: boolean;
  /** Processed at least once since this node started (its services are back). */
  adopted: boolean;
  lastProcessedAt: number | undefined;
  instanceId: string | undefined;
  /** The partition's unix user (partition users on), set at format time. */
  user: PartitionUser | undefined;
  /** Processings in a row the master did not take, and the timer of the next try (see `retryLater`). */
  masterFailures: number;
  retryTimer: NodeJS.Timeout | undefined;
}

/** After a processing the master did not take (unreachable, or a 5xx), the next try is this long later, doubling up to 10 s. */
const MASTER_RETRY_MS = 500;
const MASTER_RETRY_MAX_MS = 10_000;

/** The master is down or failing: trying again can help (a refusal, 4xx, cannot). */
function masterDown(error: unknown): boolean {
  return error instanceof MasterError && error.retryable;
}

type SoftwareState = "installing" | "installed" | "failed" | "removing";

/** Default of `NodeOptions.heartbeatMs`. */
export const DEFAULT_HEARTBEAT_MS = 10_000;

/**
 * The node agent of one computer: formats its partitions, installs supplied releases, processes
 * the instances placed on it, supervises their services. Reads the log, writes through the
 * master's HTTP API. See DESIGN.md and README.md.
 */
export class Node {
  private readonly runner: ProjectionRunner<CloudView>;
  private readonly client: MasterClient;
  private readonly slots = new Map<string, Slot>();
  private readonly software = new Map<string, SoftwareState>();
  private readonly pendingWork = new Set<Promise<unknown>>();
  private readonly logger: Logger;
  private unsubscribe: (() => void) | undefined;
  private timer: NodeJS.Timeout | undefined;
  private heartbeatTimer: NodeJS.Timeout | undefined;
  /** A heartbeat in flight (never two at once), and whether the last one failed (logged once per outage). */
  private heartbeating: Promise<void> | undefined;
  private heartbeatFailing = false;
  private stopping = false;
  private readonly maxPeriodicityMs: number;

  constructor(private readonly options: NodeOptions) {
    this.logger = options.logger.child({ computerId: options.computerId });
    this.runner = new ProjectionRunner(options.store, cloudProjection, { logger: this.logger });
    this.client = new MasterClient(options.masterUrl, options.computerId, options.token, () => this.runner.position);
    this.maxPeriodicityMs = options.maxPeriodicityMs ?? 86_400_000;
    for (let n = 0; n < options.partitions; n++) {
      const partitionId = `slappart${n}`;
      const path = join(options.root, partitionId);
      const slot: Slot = {
        partitionId,
        path,
        supervisor: new Supervisor(path, this.logger.child({ partitionId }), (exit) => this.onServiceExit(slot, exit)),
        busy: undefined,
        dirty: false,
        state: undefined,
        stateLoaded: false,
        adopted: false,
        lastProcessedAt: undefined,
        instanceId: undefined,
        user: undefined,
        masterFailures: 0,
        retryTimer: undefined,
      };
      this.slots.set(partitionId, slot);
    }
  }

  /** The read model the node follows (computers and instances). */
  get view(): CloudView {
    return this.runner.state;
  }

  /** The pid of a running service, for tests and diagnostics. */
  servicePid(partitionId: string, name: string): number | undefined {
    return this.slots.get(partitionId)?.supervisor.pid(name);
  }

  /** The unix user a partition's processes run as (undefined: partition users off). */
  partitionUser(partitionId: string): PartitionUser | undefined {
    const user = this.slots.get(partitionId)?.user;
    return user === undefined ? undefined : { ...user };
  }

  /** Whether each partition runs as its own unix user (`partitionUsers` "auto" and the node runs as root). */
  get partitionUsers(): boolean {
    return partitionUsersEnabled(this.options.partitionUsers);
  }

  /** Formats the partitions, registers the computer, catches up with the log and starts processing. */
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
    for (const [n, slot] of [...this.slots.values()].entries()) {
      await mkdir(slot.path, { recursive: true, mode: 0o750 });
      if (users) {
        slot.user = await ensureUser(partitionUserName(this.options.computerId, slot.partitionId));
        slot.supervisor.setOwner(slot.user);
        await ownTree(slot.path, slot.user, NODE_OWNED);
      }
      await chmod(slot.path, 0o750);
      await reapLeftovers(slot.path, this.logger.child({ partitionId: slot.partitionId }), marked.get(slot.path));
      specs.push({ partitionId: slot.partitionId, address, ports: { from: base + n * per, to: base + n * per + per - 1 } });
    }
    await this.runner.start();
    const { position } = await this.client.register(specs);
    await this.runner.waitFor(position);
    this.logger.info({ partitions: specs.length, root }, "computer formatted and registered");
    this.unsubscribe = this.runner.onCommit(() => this.scan());
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
    for (const slot of this.slots.values()) clearTimeout(slot.retryTimer);
    this.unsubscribe?.();
    await this.runner.stop();
    await Promise.allSettled([...this.slots.values()].flatMap((s) => (s.busy === undefined ? [] : [s.busy])));
    await Promise.allSettled([...this.pendingWork]);
    await this.heartbeating;
    await Promise.all([...this.slots.values()].map((s) => s.supervisor.close()));
    this.logger.info("node stopped");
  }

  /** Resolves once no partition is being processed and no install is running (tests, benchmarks). */
  async idle(): Promise<void> {
    for (;;) {
      const busy = [...this.slots.values()].map((s) => s.busy).filter((b) => b !== undefined);
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
    for (const slot of this.slots.values()) slot.adopted = false;
    this.scan();
  }

  /** Looks at the read model and starts what must be done: installs, removals, processings. Cheap when nothing changed. */
  scan(): void {
    if (this.stopping) return;
    const computer = this.view.computers.computers[this.options.computerId];
    if (computer === undefined) return;
    for (const [url, software] of Object.entries(computer.software)) {
      const local = this.software.get(url);
      if (software.supplied && local === undefined) this.track(this.installSoftware(url, software.status));
      else if (!software.supplied && software.status !== "destroyed" && local !== "removing") this.track(this.removeSoftware(url));
    }
    for (const slot of this.slots.values()) {
      const partition = computer.partitions[slot.partitionId];
      if (partition?.instanceId == null) {
        // Released without this node destroying it (e.g. by an operator): nothing may keep running.
        if (slot.busy === undefined && slot.supervisor.processes().length > 0) this.track(slot.supervisor.stopAll());
        continue;
      }
      const instance = this.view.instances.instances[partition.instanceId];
      if (instance === undefined || instance.destroyed) continue;
      if (instance.requestedState !== "destroyed" && this.software.get(instance.releaseUrl) !== "installed") continue;
      if (slot.retryTimer !== undefined) continue; // the master did not take its last processing: tried again when the timer fires
      if (slot.busy === undefined && slot.stateLoaded && !this.decide(slot, instance).process) continue;
      this.schedule(slot);
    }
  }

  private track(work: Promise<unknown>): void {
    const tracked = work.catch((error: unknown) => this.logger.error({ err: error }, "node task failed"));
    this.pendingWork.add(tracked);
    void tracked.finally(() => this.pendingWork.delete(tracked));
  }

  private schedule(slot: Slot): void {
    if (slot.busy !== undefined) {
      slot.dirty = true;
      return;
    }
    slot.busy = (async () => {
      do {
        slot.dirty = false;
        try {
          await this.maybeProcess(slot);
        } catch (error) {
          this.logger.error({ err: error, partitionId: slot.partitionId }, "processing failed");
        }
      } while (slot.dirty && !this.stopping);
    })().finally(() => {
      slot.busy = undefined;
    });
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
      if (reported !== "available") await this.client.reportSoftware(url, "available");
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
    await this.client.reportSoftware(url, "available");
    this.scan();
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

  private async removeSoftware(url: string): Promise<void> {
    this.software.set(url, "removing");
    await rm(softwareDir(this.options.root, url), { recursive: true, force: true });
    await this.client.reportSoftware(url, "destroyed");
    this.software.delete(url);
    this.logger.info({ releaseUrl: url }, "release removed");
  }

  // -------------------------------------------------------------------------------------------
  // Instances
  // -------------------------------------------------------------------------------------------

  private async loadState(slot: Slot): Promise<void> {
    if (slot.stateLoaded) return;
    slot.stateLoaded = true;
    try {
      const parsed = DeployedState.safeParse(JSON.parse(await readFile(join(slot.path, STATE_FILE), "utf8")));
      slot.state = parsed.success ? parsed.data : undefined;
    } catch {
      slot.state = undefined;
    }
  }

  private async saveState(slot: Slot, instance: InstanceView, outcome: DeployedState["outcome"]): Promise<void> {
    const next: DeployedState = {
      instanceId: instance.instanceId,
      serial: instance.serial,
      requestedState: instance.requestedState,
      parametersHash: parametersHash(instance.parameters),
      outcome,
      processedAt: new Date().toISOString(),
    };
    slot.lastProcessedAt = Date.now();
    slot.adopted = true;
    slot.masterFailures = 0;
    if (sameDeployment(slot.state, next)) return;
    slot.state = next;
    if (outcome !== "destroyed") await writeFile(join(slot.path, STATE_FILE), `${JSON.stringify(next, null, 2)}\n`);
  }

  private decide(slot: Slot, instance: InstanceView): ProcessDecision {
    return decideProcessing(slot.state, instance, {
      now: Date.now(),
      lastProcessedAt: slot.lastProcessedAt,
      maxPeriodicityMs: this.maxPeriodicityMs,
      adopted: slot.adopted,
    });
  }

  private async maybeProcess(slot: Slot): Promise<void> {
    if (this.stopping) return;
    const partition = this.view.computers.computers[this.options.computerId]?.partitions[slot.partitionId];
    const instanceId = partition?.instanceId;
    if (partition === undefined || instanceId == null) return;
    const instance = this.view.instances.instances[instanceId];
    if (instance === undefined || instance.destroyed) return;
    await this.loadState(slot);
    const decision = this.decide(slot, instance);
    if (!decision.process) return;
    const log = this.logger.child({ partitionId: slot.partitionId, instanceId, treeId: instance.treeId });
    log.info({ reason: decision.reason, serial: instance.serial, requestedState: instance.requestedState }, "processing instance");
    slot.instanceId = instanceId;
    const started = Date.now();
    if (instance.requestedState === "destroyed") await this.destroy(slot, instance, partition, log);
    else if (instance.requestedState === "stopped") {
      await slot.supervisor.stopAll();
      await this.saveState(slot, instance, "stopped");
      await this.report(slot, instance, { status: "stopped", processes: [] }, log);
    } else await this.deploy(slot, instance, partition, log);
    log.info({ durationMs: Date.now() - started, outcome: slot.state?.outcome }, "instance processed");
  }

  /** Reports the instance's status; answers the error when the master did not take it. */
  private async report(slot: Slot, instance: InstanceView, report: StatusReport, log: Logger): Promise<unknown> {
    try {
      await this.client.reportStatus(slot.partitionId, instance.instanceId, report);
      return undefined;
    } catch (error) {
      log.error({ err: error, status: report.status }, "could not report the instance status");
      return error;
    }
  }

  /**
   * The master did not take this processing's writes (unreachable, or a 5xx): the processing is
   * not finished, so nothing is recorded and it runs again shortly, with back-off, instead of
   * ending in error and waiting `RETRY_ERROR_AFTER_MS` (a master restart would otherwise leave the
   * instances it interrupted without their connection parameters or status for a minute or two).
   */
  private retryLater(slot: Slot, error: unknown, log: Logger): void {
    // A processing that fails while the node stops must not leave a timer that keeps the process alive.
    if (this.stopping) return;
    const delayMs = Math.min(MASTER_RETRY_MAX_MS, MASTER_RETRY_MS * 2 ** Math.min(slot.masterFailures, 10));
    slot.masterFailures++;
    log.warn({ err: error, retryInMs: delayMs }, "the master did not take the processing; processing again later");
    clearTimeout(slot.retryTimer);
    slot.retryTimer = setTimeout(() => {
      slot.retryTimer = undefined;
      this.scan();
    }, delayMs);
  }

  private async deploy(slot: Slot, instance: InstanceView, partition: PartitionView, log: Logger): Promise<void> {
    const fail = async (message: string): Promise<void> => {
      log.warn({ message }, "processing failed");
      await this.saveState(slot, instance, "error");
      await this.report(slot, instance, { status: "error", message, processes: slot.supervisor.processes() }, log);
    };
    await this.report(slot, instance, { status: "processing" }, log);
    const software = softwareDir(this.options.root, instance.releaseUrl);
    let declarations: Declarations;
    let manifestProfile: string;
    try {
      const manifest = await readManifest(software);
      // Own keys only: a software type named like a property of every object (constructor) is not a profile.
      const profile = Object.hasOwn(manifest.profiles, instance.softwareType) ? manifest.profiles[instance.softwareType] : undefined;
      if (profile === undefined) return await fail(`the release has no profile for software type ${instance.softwareType}`);
      manifestProfile = profile;
      const checked = checkParameters(instance.parameters, manifest.parameters);
      if (!checked.ok) return await fail(`bad parameter ${checked.parameter}: ${checked.message}`);
      const built = this.buildSlap(slot, instance, partition, software, checked.parameters, log, false);
      declarations = built.declarations;
      try {
        await runProfile(insidePartition(software, manifestProfile), built.slap, this.options.profileTimeoutMs ?? PROFILE_TIMEOUT_MS);
      } finally {
        built.close();
      }
    } catch (error) {
      if (error instanceof Waiting) {
        log.info({ waitingFor: error.reference }, "waiting for a requested instance");
        await this.saveState(slot, instance, "waiting");
        await this.report(slot, instance, { status: "waiting", message: error.message, waitingFor: [error.reference] }, log);
        return;
      }
      if (masterDown(error)) return this.retryLater(slot, error, log);
      return fail(error instanceof Error ? error.message : String(error));
    }
    try {
      await this.applyDeclarations(slot, declarations);
    } catch (error) {
      return fail(error instanceof Error ? error.message : String(error));
    }
    // Promises first, so that a requester sees the connection parameters once the services answer.
    const env = this.baseEnv(slot);
    const promises: PromiseReport[] = await Promise.all(
      [...declarations.promises].map(([name, check]) => checkPromise(name, check, { cwd: slot.path, env, timeoutMs: this.options.promiseTimeoutMs ?? 20_000, owner: slot.user })),
    );
    try {
      if (declarations.published !== undefined) await this.client.publish(slot.partitionId, instance.instanceId, declarations.published);
      for (const [sharedId, parameters] of declarations.publishedShared) await this.client.publish(slot.partitionId, sharedId, parameters);
    } catch (error) {
      if (masterDown(error)) return this.retryLater(slot, error, log);
      return fail(`could not publish connection parameters: ${error instanceof Error ? error.message : String(error)}`);
    }
    const failed = promises.filter((p) => !p.ok);
    if (failed.length > 0) {
      await this.saveState(slot, instance, "error");
      const message = failed.map((p) => `promise ${p.name} failed: ${p.message}`).join("\n");
      await this.report(slot, instance, { status: "error", message, promises, processes: slot.supervisor.processes() }, log);
      return;
    }
    const refused = await this.report(slot, instance, { status: "started", promises, processes: slot.supervisor.processes() }, log);
    if (masterDown(refused)) return this.retryLater(slot, refused, log);
    await this.saveState(slot, instance, "started");
  }

  private buildSlap(slot: Slot, instance: InstanceView, partition: PartitionView, software: string, parameters: Record<string, string>, log: Logger, destroying: boolean) {
    const sharedInstances = Object.values(this.view.instances.instances)
      .filter((i) => i.host?.instanceId === instance.instanceId && !i.destroyed && i.requestedState !== "destroyed")
      .map((i) => ({ instanceId: i.instanceId, reference: i.reference, parameters: { ...i.parameters } }));
    return createSlap({
      parameters,
      instance: {
        instanceId: instance.instanceId,
        treeId: instance.treeId,
        reference: instance.reference,
        softwareType: instance.softwareType,
        releaseUrl: instance.releaseUrl,
      },
      partition: {
        computerId: this.options.computerId,
        partitionId: slot.partitionId,
        path: slot.path,
        address: partition.address,
        ports: { from: partition.ports.from, to: partition.ports.to },
      },
      software,
      sharedInstances,
      destroying,
      log: log.child({ profile: instance.softwareType }),
      request: (body) => this.client.request(slot.partitionId, body),
    });
  }

  private baseEnv(slot: Slot): Record<string, string> {
    const path = [dirname(process.execPath), process.env.PATH ?? "/usr/local/bin:/usr/bin:/bin"].join(":");
    return { PATH: path, HOME: slot.path, TMPDIR: join(slot.path, "tmp"), LANG: "C.UTF-8" };
  }

  private spec(slot: Slot, declaration: ProcessDeclaration): ServiceSpec {
    const cwd = declaration.cwd === undefined ? slot.path : isAbsolute(declaration.cwd) ? declaration.cwd : insidePartition(slot.path, declaration.cwd);
    return { command: [...declaration.command], env: { ...this.baseEnv(slot), ...(declaration.env ?? {}) }, cwd };
  }

  /** Writes etc/service, etc/run, etc/promise; runs the one-shots; starts/stops services. */
  private async applyDeclarations(slot: Slot, declarations: Declarations): Promise<void> {
    await mkdir(join(slot.path, "tmp"), { recursive: true });
    const services = new Map([...declarations.services].map(([name, d]) => [name, this.spec(slot, d)]));
    const runs = new Map([...declarations.runs].map(([name, d]) => [name, this.spec(slot, d)]));
    await syncFolder(join(slot.path, "etc", "service"), services);
    await syncFolder(join(slot.path, "etc", "run"), runs);
    await syncFolder(join(slot.path, "etc", "promise"), declarations.promises);
    // What the profile (run by the node) wrote in the partition becomes its user's, before any of its processes start.
    if (slot.user !== undefined) await ownTree(slot.path, slot.user, NODE_OWNED);
    for (const [name, spec] of runs) await runOnce(slot.path, name, spec, slot.user, this.options.runTimeoutMs ?? RUN_TIMEOUT_MS);
    await slot.supervisor.apply(services);
  }

  private async destroy(slot: Slot, instance: InstanceView, partition: PartitionView, log: Logger): Promise<void> {
    await slot.supervisor.stopAll();
    const software = softwareDir(this.options.root, instance.releaseUrl);
    try {
      if (await isInstalled(software)) {
        const manifest = await readManifest(software);
        if (manifest.destroy !== undefined) {
          const checked = checkParameters(instance.parameters, manifest.parameters);
          const built = this.buildSlap(slot, instance, partition, software, checked.ok ? checked.parameters : instance.parameters, log, true);
          try {
            await runProfile(insidePartition(software, manifest.destroy), built.slap, this.options.profileTimeoutMs ?? PROFILE_TIMEOUT_MS);
          } finally {
            built.close();
          }
        }
      }
    } catch (error) {
      log.error({ err: error }, "the destroy hook failed; wiping the partition anyway");
    }
    for (const entry of await readdir(slot.path)) await rm(join(slot.path, entry), { recursive: true, force: true });
    try {
      await this.client.destroyed(slot.partitionId, instance.instanceId);
      await this.saveState(slot, instance, "destroyed");
      log.info("instance destroyed, partition wiped and released");
    } catch (error) {
      // Tried again a minute later (outcome error), or at the next start.
      await this.saveState(slot, instance, "error");
      log.error({ err: error }, "could not report the instance destroyed");
    }
  }

  private onServiceExit(slot: Slot, exit: ServiceExit): void {
    const instanceId = slot.instanceId;
    if (instanceId === undefined || this.stopping) return;
    const how = exit.code === null ? `was killed by ${exit.signal ?? "a signal"}` : `exited with code ${exit.code}`;
    const message = `service ${exit.name} ${how} (restarting in ${exit.restartInMs} ms)\n--- last lines of var/log/${exit.name}.log ---\n${exit.logTail}`;
    this.track(
      this.client
        .bang(slot.partitionId, instanceId, message, {
          service: exit.name,
          logTail: exit.logTail,
          ...(exit.code === null ? {} : { exitCode: exit.code }),
          ...(exit.signal === null || exit.signal === undefined ? {} : { signal: exit.signal }),
        })
        .catch((error: unknown) => {
        this.logger.error({ err: error, partitionId: slot.partitionId, instanceId }, "could not bang");
      }),
    );
  }
}

/** Makes `<dir>/<name>.json` hold exactly the declared entries: changed files rewritten, stale ones removed. */
async function syncFolder(dir: string, entries: Map<string, unknown>): Promise<void> {
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
