import { chmod, mkdir, stat } from "node:fs/promises";
import type { DesiredPartition, ParameterMap } from "@slap/events";
import type { Logger } from "pino";
import type { ProfileEntry } from "../core/manifest.js";
import { checkParameters } from "@slap/api";
import { insidePartition } from "../core/paths.js";
import { decideProcessing, parametersHash, sameDeployment, type DeployedState, type ProcessDecision } from "../core/state.js";
import { checkPromise } from "./checks.js";
import { applyDeclarations, baseEnv } from "./declarations.js";
import { MasterError, type Answer, type MasterClient, type PromiseReport, type StatusReport } from "./master-client.js";
import { emptyFolder, ensureFolder, inFolder, ownTreeBeneath } from "./beneath.js";
import { clearDeployedState, nodeStateDir, prepareNodeStateDir, readDeployedState, writeDeployedState } from "./partition-state.js";
import { PROFILE_TIMEOUT_MS, Waiting, type Declarations } from "./profile.js";
import type { ProfileHosts } from "./profile-hosts.js";
import { ProfileAborted, runProfileProcess } from "./profile-process.js";
import { ProfileProtocolError, PROTOCOL_VERSION, type ProfileAnswer, type ProfileInput, type RequestAnswer } from "./profile-protocol.js";
import { isInstalled, readManifest, softwareDir } from "./software.js";
import { reapLeftovers, Supervisor, type ServiceExit } from "./supervisor.js";
import { ensureUser, partitionUserName, type PartitionUser } from "./users.js";

export interface PartitionRunnerOptions {
  computerId: string;
  partitionId: string;
  /** The partition's folder. */
  path: string;
  /** The node's folder: installed releases are under it (`softwareDir`). */
  root: string;
  client: MasterClient;
  /** The node's warm hosts of JS profiles (shared by its partitions: it bounds how many are alive). */
  profiles: ProfileHosts;
  /** The partition's entry of the computer's last good desired state: read again at every processing, as it is then. */
  desired: () => PartitionView | undefined;
  /** Whether a release is installed on this computer (an instance upgraded in place waits for its new one). */
  releaseInstalled: (releaseUrl: string) => boolean;
  /** The node's logger; the runner's lines add the partition id. */
  logger: Logger;
  maxPeriodicityMs: number;
  promiseTimeoutMs?: number | undefined;
  /** How often the promises of a deployed instance are checked again between processings (default `PROMISE_INTERVAL_MS`). */
  promiseIntervalMs?: number | undefined;
  profileTimeoutMs?: number | undefined;
  runTimeoutMs?: number | undefined;
  /** Background work (stopping orphaned services, a bang) the node waits for in `idle()` and `stop()`. */
  track: (work: Promise<unknown>) => void;
  /** The next try after the master did not take a processing is due: the node looks at the read model again. */
  onRetryDue: () => void;
  /** The instance's release is gone from the node's folder (deleted under it): the node installs it again. */
  onReleaseMissing: (releaseUrl: string) => void;
}

/** A partition's entry of the computer's desired state. */
export type PartitionView = DesiredPartition;

/** The instance a processing works on: as the desired state it was read from says, with that entry's revision. */
type InstanceView = NonNullable<PartitionView["instance"]> & { revision: number };

/** What the desired state wants of a partition, as the node routes it to the partition's runner. */
export type Desired =
  /** No instance holds the partition (free, or released without this node destroying it): nothing may run. */
  | { kind: "free" }
  /** An instance holds it; `releaseInstalled`: its release is installed here. */
  | { kind: "held"; partition: PartitionView; releaseInstalled: boolean };

/** After a processing the master did not take (unreachable, or a 5xx), the next try is this long later, doubling up to 10 s. */
const MASTER_RETRY_MS = 500;
const MASTER_RETRY_MAX_MS = 10_000;

/** Default of `promiseIntervalMs`: as SlapOS's monitor, every few minutes. */
export const PROMISE_INTERVAL_MS = 300_000;

/** Profile runs in one processing at most: a run is repeated when the master's answers to its requests changed meanwhile. */
const MAX_PROFILE_ROUNDS = 4;

/** The master's answer as a profile sees it. */
function requestAnswer(answer: Answer): RequestAnswer {
  if (answer.status === "ready") return { status: "ready", connection: answer.connection };
  if (answer.status === "destroyed") return { status: "destroyed" };
  return { status: "pending", reason: answer.reason };
}

/** Whether two answers differ for a profile (a pending one and none at all do not). */
function sameForProfile(a: RequestAnswer | undefined, b: RequestAnswer | undefined): boolean {
  const key = (x: RequestAnswer | undefined): string => (x?.status === "ready" ? JSON.stringify(x.connection) : x?.status === "destroyed" ? "destroyed" : "pending");
  return key(a) === key(b);
}

/** The master is down or failing: trying again can help (a refusal, 4xx, cannot). */
function masterDown(error: unknown): boolean {
  return error instanceof MasterError && error.retryable;
}

/**
 * One partition's work (Nomad's alloc runner): it owns what was deployed there (the state file),
 * the processing in flight (one at a time; a change meanwhile runs one more after it), the retry
 * timer when the master did not take a processing, and the supervisor of the partition's
 * services. The node formats it (`prepare`), routes the read model's wishes to it (`update`), and
 * stops it (`halt`, `settled`, `close`); nothing outside changes its state.
 */
export class PartitionRunner {
  readonly partitionId: string;
  readonly path: string;
  private readonly client: MasterClient;
  private readonly logger: Logger;
  private readonly supervisor: Supervisor;
  /** The processing in flight, and whether another one was asked for meanwhile. */
  private busy: Promise<void> | undefined;
  private dirty = false;
  private state: DeployedState | undefined;
  private stateLoaded = false;
  /** Processed at least once since this node started (its services are back). */
  private adopted = false;
  private lastProcessedAt: number | undefined;
  /** The instance last processed here: service exits are banged on it. */
  private instanceId: string | undefined;
  /** The partition's unix user (partition users on), set by `prepare`. */
  private user: PartitionUser | undefined;
  /** Processings in a row the master did not take, and the timer of the next try (see `retryLater`). */
  private masterFailures = 0;
  private retryTimer: NodeJS.Timeout | undefined;
  /**
   * The bang of a service exit not yet followed by a processing: later exits are not banged until
   * a processing that started after it ended — at most one pending bang per instance, so a
   * crash-looping service adds no bang a processing would not answer.
   */
  private bang: "none" | "pending" = "none";
  /** The master's answers to the requests the profile declared at its last run: given to the next run. */
  private requestAnswers: Record<string, RequestAnswer> = {};
  /** The desired-state revision of the processing in flight, or of the last one. */
  private working: number | undefined;
  /**
   * The promises of the last processing that ran them, checked again every `promiseIntervalMs`
   * until the next processing: a change of any result (ok or not) is reported, nothing else.
   */
  private watch: { instance: InstanceView; partition: PartitionView; promises: Declarations["promises"]; results: PromiseReport[]; timer: NodeJS.Timeout | undefined } | undefined;
  /** Aborted by `halt`: no work starts any more, and a profile process in flight is killed. */
  private readonly halted = new AbortController();

  constructor(private readonly options: PartitionRunnerOptions) {
    this.partitionId = options.partitionId;
    this.path = options.path;
    this.client = options.client;
    this.logger = options.logger;
    this.supervisor = new Supervisor(options.path, options.logger.child({ partitionId: options.partitionId }), (exit) => this.onServiceExit(exit));
  }

  /** The partition's unix user (undefined: partition users off). A copy. */
  get partitionUser(): PartitionUser | undefined {
    return this.user === undefined ? undefined : { ...this.user };
  }

  /** The pid of a running service. */
  servicePid(name: string): number | undefined {
    return this.supervisor.pid(name);
  }

  /** The desired-state revision the partition's writes answer: the processing's in flight, else the last one's. */
  get revision(): number | undefined {
    return this.working ?? this.state?.revision;
  }

  /** The processing in flight, if any. */
  get processing(): Promise<void> | undefined {
    return this.busy;
  }

  /**
   * Formats the partition: its folder (0750), its own unix user owning it when `users`, and no
   * service left behind by a killed run of the node (`leftovers`: those found by their mark).
   */
  async prepare(users: boolean, leftovers: ReadonlyArray<{ pid: number; name: string }> | undefined): Promise<void> {
    if (users) {
      this.user = await ensureUser(partitionUserName(this.options.computerId, this.partitionId));
      this.supervisor.setOwner(this.user);
    }
    await this.formatFolders();
    await reapLeftovers(this.path, this.logger.child({ partitionId: this.partitionId }), leftovers, this.user);
  }

  /** What the read model wants now: starts a processing if one is due (cheap when nothing changed). */
  update(desired: Desired): void {
    if (this.halted.signal.aborted) return;
    if (desired.kind === "free") {
      if (this.busy === undefined && this.supervisor.processes().length > 0) this.options.track(this.supervisor.stopAll());
      if (this.busy === undefined) this.options.profiles.drop(this.partitionId);
      return;
    }
    const instance = desired.partition.instance;
    if (instance === null || instance.destroyed) return;
    if (instance.requestedState !== "destroyed" && !desired.releaseInstalled) return;
    if (this.retryTimer !== undefined) return; // the master did not take its last processing: tried again when the timer fires
    if (this.busy === undefined && this.stateLoaded && !this.decide({ ...instance, revision: desired.partition.revision }).process) return;
    this.schedule();
  }

  /** Processes the instance again at the next update, as after a restart (the no-change path). */
  reprocess(): void {
    this.adopted = false;
  }

  /** Stops starting work and kills a profile process in flight (its processing ends, recording nothing: `settled`). */
  halt(): void {
    clearTimeout(this.retryTimer);
    this.unwatch();
    this.halted.abort();
  }

  /** Resolves once no processing is in flight. */
  async settled(): Promise<void> {
    await this.busy?.catch(() => undefined);
  }

  /** Stops every service of the partition (SIGTERM, then SIGKILL after 5 s). */
  async close(): Promise<void> {
    await this.supervisor.close();
  }

  private schedule(): void {
    if (this.busy !== undefined) {
      this.dirty = true;
      return;
    }
    this.busy = (async () => {
      do {
        this.dirty = false;
        try {
          await this.maybeProcess();
        } catch (error) {
          this.logger.error({ err: error, partitionId: this.partitionId }, "processing failed");
        }
      } while (this.dirty && !this.halted.signal.aborted);
    })().finally(() => {
      this.busy = undefined;
    });
  }

  private async loadState(): Promise<void> {
    if (this.stateLoaded) return;
    this.stateLoaded = true;
    this.state = await readDeployedState(this.path);
  }

  private async saveState(instance: InstanceView, outcome: DeployedState["outcome"]): Promise<void> {
    const next: DeployedState = {
      instanceId: instance.instanceId,
      serial: instance.serial,
      revision: instance.revision,
      requestedState: instance.requestedState,
      parametersHash: parametersHash(instance.parameters),
      outcome,
      processedAt: new Date().toISOString(),
    };
    this.lastProcessedAt = Date.now();
    this.adopted = true;
    this.masterFailures = 0;
    if (sameDeployment(this.state, next)) return;
    this.state = next;
    if (outcome === "destroyed") await clearDeployedState(this.path);
    else await writeDeployedState(this.path, next);
  }

  private decide(instance: InstanceView): ProcessDecision {
    return decideProcessing(this.state, instance, {
      now: Date.now(),
      lastProcessedAt: this.lastProcessedAt,
      maxPeriodicityMs: this.options.maxPeriodicityMs,
      adopted: this.adopted,
    });
  }

  private async maybeProcess(): Promise<void> {
    if (this.halted.signal.aborted) return;
    const partition = this.options.desired();
    const held = partition?.instance;
    if (partition === undefined || held == null || held.destroyed) return;
    // The revision this processing works from, recorded with its outcome: a change meanwhile has a newer one and runs again.
    const instance: InstanceView = { ...held, revision: partition.revision };
    const { instanceId } = instance;
    this.working = instance.revision;
    // Checked again here: the desired state may have changed the release (an upgrade) since `update`.
    if (instance.requestedState !== "destroyed" && !this.options.releaseInstalled(instance.releaseUrl)) return;
    await this.loadState();
    const decision = this.decide(instance);
    if (!decision.process) return;
    const log = this.logger.child({ partitionId: this.partitionId, instanceId, treeId: instance.treeId });
    log.info({ reason: decision.reason, revision: instance.revision, serial: instance.serial, requestedState: instance.requestedState }, "processing instance");
    if (this.instanceId !== instanceId) this.bang = "none";
    this.unwatch();
    this.instanceId = instanceId;
    // The bang's commit may reach this node before the master's answer does: a processing that
    // starts while one is in flight answers it too.
    const answersBang = this.bang !== "none";
    const started = Date.now();
    try {
      await this.ensureFormatted(log);
      if (instance.requestedState === "destroyed") await this.destroy(instance, partition, log);
      else if (instance.requestedState === "stopped") {
        await this.supervisor.stopAll();
        await this.saveState(instance, "stopped");
        await this.report(instance, { status: "stopped", processes: [] }, log);
      } else await this.deploy(instance, partition, log);
    } catch (error) {
      // What the processing did not expect (the node's folder deleted under it, a full disk): the
      // instance says so, and is tried again like any processing in error; it never stays `processing`.
      log.error({ err: error }, "processing failed");
      const message = `processing failed on the node: ${error instanceof Error ? error.message : String(error)}`;
      await this.saveState(instance, "error").catch((failure: unknown) => log.error({ err: failure }, "could not record the failed processing"));
      await this.report(instance, { status: "error", message, processes: this.supervisor.processes() }, log);
    } finally {
      if (answersBang) this.bang = "none";
    }
    log.info({ durationMs: Date.now() - started, outcome: this.state?.outcome }, "instance processed");
  }

  /** The partition's folders are there (made again, as at format, when they were deleted under the node). */
  private async ensureFormatted(log: Logger): Promise<void> {
    const present = await stat(this.path).then(
      (s) => s.isDirectory(),
      () => false,
    );
    if (present && (await stat(nodeStateDir(this.path)).then(() => true, () => false))) return;
    log.warn({ path: this.path }, "the partition's folder is gone: formatting it again");
    await this.formatFolders();
  }

  /** The partition's folder (0750, everything in it its user's) and the node's folder of it. */
  private async formatFolders(): Promise<void> {
    await mkdir(this.path, { recursive: true, mode: 0o750 });
    await prepareNodeStateDir(this.path);
    if (this.user !== undefined) await ownTreeBeneath(this.path, this.user);
    await chmod(this.path, 0o750);
  }

  /**
   * The master did not take this processing's writes (unreachable, or a 5xx): the processing is
   * not finished, so nothing is recorded and it runs again shortly, with back-off, instead of
   * ending in error and waiting `RETRY_ERROR_AFTER_MS` (a master restart would otherwise leave the
   * instances it interrupted without their connection parameters or status for a minute or two).
   */
  private retryLater(error: unknown, log: Logger): void {
    // A processing that fails while the node stops must not leave a timer that keeps the process alive.
    if (this.halted.signal.aborted) return;
    const delayMs = Math.min(MASTER_RETRY_MAX_MS, MASTER_RETRY_MS * 2 ** Math.min(this.masterFailures, 10));
    this.masterFailures++;
    log.warn({ err: error, retryInMs: delayMs }, "the master did not take the processing; processing again later");
    clearTimeout(this.retryTimer);
    this.retryTimer = setTimeout(() => {
      this.retryTimer = undefined;
      this.options.onRetryDue();
    }, delayMs);
  }

  /** A service exited: the instance is banged with the service's last log lines, unless a bang is pending already. */
  private onServiceExit(exit: ServiceExit): void {
    const instanceId = this.instanceId;
    if (instanceId === undefined || this.halted.signal.aborted) return;
    const how = exit.code === null ? `was killed by ${exit.signal ?? "a signal"}` : `exited with code ${exit.code}`;
    if (this.bang !== "none") {
      this.logger.info({ partitionId: this.partitionId, instanceId, service: exit.name, restartInMs: exit.restartInMs }, `service ${how}; not banged: a bang is pending`);
      return;
    }
    this.bang = "pending";
    const message = `service ${exit.name} ${how} (restarting in ${exit.restartInMs} ms)\n--- last lines of var/log/${exit.name}.log ---\n${exit.logTail}`;
    this.options.track(
      this.client
        .bang(this.partitionId, instanceId, message, {
          service: exit.name,
          logTail: exit.logTail,
          ...(exit.code === null ? {} : { exitCode: exit.code }),
          ...(exit.signal === null || exit.signal === undefined ? {} : { signal: exit.signal }),
        })
        .catch((error: unknown) => {
          this.bang = "none";
          this.logger.error({ err: error, partitionId: this.partitionId, instanceId }, "could not bang");
        }),
    );
  }

  /** Reports the instance's status; answers the error when the master did not take it. */
  private async report(instance: InstanceView, report: StatusReport, log: Logger): Promise<unknown> {
    try {
      await this.client.reportStatus(this.partitionId, instance.instanceId, report);
      return undefined;
    } catch (error) {
      log.error({ err: error, status: report.status }, "could not report the instance status");
      return error;
    }
  }

  private async deploy(instance: InstanceView, partition: PartitionView, log: Logger): Promise<void> {
    const fail = async (message: string): Promise<void> => {
      log.warn({ message }, "processing failed");
      await this.saveState(instance, "error");
      await this.report(instance, { status: "error", message, processes: this.supervisor.processes() }, log);
    };
    await this.report(instance, { status: "processing" }, log);
    const software = softwareDir(this.options.root, instance.releaseUrl);
    if (!(await isInstalled(software))) {
      // Deleted under the node: installed again, and this instance processed once it is (`adopted` false, after the error is recorded).
      await fail(`release ${instance.releaseUrl} is missing from this node (its folder was removed): installing it again`);
      this.adopted = false;
      this.options.onReleaseMissing(instance.releaseUrl);
      return;
    }
    let declarations: Declarations;
    // Read with the profile's input: those requested destroyed later are left to the next run.
    const sharedGone = this.sharedToDestroy(instance);
    try {
      const manifest = await readManifest(software);
      // Own keys only: a software type named like a property of every object (constructor) is not a profile.
      const profile = Object.hasOwn(manifest.profiles, instance.softwareType) ? manifest.profiles[instance.softwareType] : undefined;
      if (profile === undefined) return await fail(`the release has no profile for software type ${instance.softwareType}`);
      const checked = checkParameters(instance.parameters, manifest.parameters);
      if (!checked.ok) return await fail(`bad parameter ${checked.parameter}: ${checked.message}`);
      declarations = await this.runDeployProfile(profile, this.profileInput(instance, partition, software, checked.parameters, false), log);
    } catch (error) {
      // The node stops: nothing is recorded, the instance is processed again at the next start.
      if (error instanceof ProfileAborted) return log.info("processing interrupted: the node stops");
      if (error instanceof Waiting) {
        log.info({ waitingFor: error.reference }, "waiting for a requested instance");
        await this.saveState(instance, "waiting");
        await this.report(instance, { status: "waiting", message: error.message, waitingFor: [error.reference] }, log);
        return;
      }
      if (masterDown(error)) return this.retryLater(error, log);
      return fail(error instanceof Error ? error.message : String(error));
    }
    try {
      await applyDeclarations({ path: this.path, user: this.user, supervisor: this.supervisor }, declarations, this.options.runTimeoutMs);
    } catch (error) {
      return fail(error instanceof Error ? error.message : String(error));
    }
    // Promises first, so that a requester sees the connection parameters once the services answer.
    const promises = await this.checkPromises(declarations.promises, partition);
    this.watchPromises(instance, partition, declarations.promises, promises);
    try {
      if (declarations.published !== undefined) await this.client.publish(this.partitionId, instance.instanceId, declarations.published);
      for (const [sharedId, parameters] of declarations.publishedShared) await this.client.publish(this.partitionId, sharedId, parameters);
      // The profile ran without the shared instances requested destroyed: they are gone from this host.
      for (const sharedId of sharedGone) await this.client.destroyed(this.partitionId, sharedId);
    } catch (error) {
      if (masterDown(error)) return this.retryLater(error, log);
      return fail(`could not publish connection parameters: ${error instanceof Error ? error.message : String(error)}`);
    }
    const failed = promises.filter((p) => !p.ok);
    if (failed.length > 0) {
      await this.saveState(instance, "error");
      await this.report(instance, { status: "error", message: promisesMessage(failed), promises, processes: this.supervisor.processes() }, log);
      return;
    }
    const refused = await this.report(instance, { status: "started", promises, processes: this.supervisor.processes() }, log);
    if (masterDown(refused)) return this.retryLater(refused, log);
    await this.saveState(instance, "started");
  }

  private checkPromises(declared: Declarations["promises"], partition: PartitionView): Promise<PromiseReport[]> {
    const env = baseEnv(this.path);
    const timeoutMs = this.options.promiseTimeoutMs ?? 20_000;
    return Promise.all([...declared].map(([name, check]) => checkPromise(name, check, { cwd: this.path, env, timeoutMs, owner: this.user, partition: { path: this.path, ...partition } })));
  }

  /** Checks the promises again every `promiseIntervalMs` until the next processing (none declared: nothing to watch). */
  private watchPromises(instance: InstanceView, partition: PartitionView, promises: Declarations["promises"], results: PromiseReport[]): void {
    this.unwatch();
    if (promises.size === 0 || this.halted.signal.aborted) return;
    this.watch = { instance, partition, promises, results, timer: undefined };
    this.rewatch();
  }

  private rewatch(): void {
    const watch = this.watch;
    if (watch === undefined) return;
    watch.timer = setTimeout(() => {
      if (this.watch !== watch || this.busy !== undefined) return this.rewatch();
      this.options.track(this.recheck(watch));
    }, this.options.promiseIntervalMs ?? PROMISE_INTERVAL_MS);
  }

  private unwatch(): void {
    clearTimeout(this.watch?.timer);
    this.watch = undefined;
  }

  /** One periodic check: reported (one event) only when a result changed since the last report. */
  private async recheck(watch: NonNullable<PartitionRunner["watch"]>): Promise<void> {
    const results = await this.checkPromises(watch.promises, watch.partition);
    if (this.watch !== watch) return;
    const changed = results.length !== watch.results.length || results.some((r, n) => r.name !== watch.results[n]?.name || r.ok !== watch.results[n]?.ok);
    if (changed) {
      const failed = results.filter((p) => !p.ok);
      const log = this.logger.child({ partitionId: this.partitionId, instanceId: watch.instance.instanceId, treeId: watch.instance.treeId });
      log.info({ failing: failed.map((p) => p.name) }, "promise results changed");
      const report: StatusReport = failed.length > 0 ? { status: "error", message: promisesMessage(failed), promises: results, processes: this.supervisor.processes() } : { status: "started", promises: results, processes: this.supervisor.processes() };
      if ((await this.report(watch.instance, report, log)) === undefined) watch.results = results;
    }
    this.rewatch();
  }

  /** The shared instances attached to this host that are requested destroyed and not yet reported so. */
  private sharedToDestroy(host: InstanceView): string[] {
    return host.sharedInstances.filter((i) => i.requestedState === "destroyed").map((i) => i.instanceId);
  }

  /** What a profile process of this partition gets on stdin, but the answers to its requests. */
  private profileInput(instance: InstanceView, partition: PartitionView, software: string, parameters: ParameterMap, destroying: boolean): Omit<ProfileInput, "requests"> {
    const sharedInstances = instance.sharedInstances
      .filter((i) => i.requestedState !== "destroyed")
      .map((i) => ({ instanceId: i.instanceId, reference: i.reference, parameters: { ...i.parameters } }));
    return {
      protocol: PROTOCOL_VERSION,
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
        partitionId: this.partitionId,
        path: this.path,
        address: partition.address,
        ports: { from: partition.ports.from, to: partition.ports.to },
      },
      software,
      sharedInstances,
      destroying,
    };
  }

  /**
   * Runs a profile in a process of its own (DESIGN.md, "Profile processes"): as the partition's
   * user, in its own process group, with the partition's environment and nothing of the node's.
   */
  private async runProfileOnce(entry: ProfileEntry, input: ProfileInput, log: Logger): Promise<ProfileAnswer> {
    await ensureFolder(this.path, "tmp", this.user);
    const spec = { cwd: this.path, env: baseEnv(this.path), owner: this.user };
    const run = { timeoutMs: this.options.profileTimeoutMs ?? PROFILE_TIMEOUT_MS, log: log.child({ profile: instanceProfileName(entry) }), signal: this.halted.signal };
    if (typeof entry !== "string") return runProfileProcess([insidePartition(input.software, entry.command[0]), ...entry.command.slice(1)], input, { ...spec, ...run });
    // A warm host serves one instance of one release: another one (a new tenant of the partition) gets a fresh process.
    return this.options.profiles.run(this.partitionId, `${input.instance.instanceId} ${input.software}`, spec, insidePartition(input.software, entry), input, run);
  }

  /** Refuses an answer that acts outside its partition, naming what it asked; nothing of it is applied then. */
  private checkAnswer(answer: ProfileAnswer, input: ProfileInput): void {
    for (const file of answer.files) {
      try {
        insidePartition(this.path, file.path);
      } catch (error) {
        throw new ProfileProtocolError(`profile declared a file outside its partition: ${error instanceof Error ? error.message : String(error)}`, { cause: error });
      }
    }
    for (const request of answer.requests) {
      if (request.partitionId !== undefined && request.partitionId !== this.partitionId) {
        throw new ProfileProtocolError(`profile asked to request ${request.reference} as partition ${request.partitionId}: it requests only as its own partition ${this.partitionId}`);
      }
    }
    for (const sharedId of Object.keys(answer.publishShared)) {
      if (!input.sharedInstances.some((s) => s.instanceId === sharedId)) throw new ProfileProtocolError(`profile asked to publish for ${sharedId}, which is not a shared instance attached to this instance`);
    }
  }

  /**
   * The deploy profile's declarations. The profile process only declares; the node then makes
   * the requests it declared, as this partition, and gives their answers to the next run. When
   * an answer changed (an instance became ready), the profile is run again with it (at most
   * `MAX_PROFILE_ROUNDS` runs). Throws `Waiting` when the last run stopped at a request that is
   * not ready, an `Error` naming what went wrong otherwise.
   */
  private async runDeployProfile(entry: ProfileEntry, base: Omit<ProfileInput, "requests">, log: Logger): Promise<Declarations> {
    for (let round = 1; ; round++) {
      const input: ProfileInput = { ...base, requests: this.requestAnswers };
      const answer = await this.runProfileOnce(entry, input, log);
      if (answer.error !== undefined) throw new Error(answer.error);
      this.checkAnswer(answer, input);
      const fresh: Record<string, RequestAnswer> = {};
      for (const { partitionId: _, ...body } of answer.requests) fresh[body.reference] = requestAnswer(await this.client.request(this.partitionId, body));
      const changed = answer.requests.some((r) => !sameForProfile(fresh[r.reference], input.requests[r.reference]));
      this.requestAnswers = fresh;
      if (changed && round < MAX_PROFILE_ROUNDS) continue;
      if (answer.waiting !== undefined) {
        const now = fresh[answer.waiting.reference];
        throw new Waiting(answer.waiting.reference, now?.status === "pending" ? now.reason : answer.waiting.reason);
      }
      return {
        files: answer.files,
        services: new Map(Object.entries(answer.services)),
        runs: new Map(Object.entries(answer.runs)),
        promises: new Map(Object.entries(answer.promises)),
        published: answer.publish,
        publishedShared: new Map(Object.entries(answer.publishShared)),
      };
    }
  }

  private async destroy(instance: InstanceView, partition: PartitionView, log: Logger): Promise<void> {
    await this.supervisor.stopAll();
    const software = softwareDir(this.options.root, instance.releaseUrl);
    try {
      if (await isInstalled(software)) {
        const manifest = await readManifest(software);
        if (manifest.destroy !== undefined) {
          const checked = checkParameters(instance.parameters, manifest.parameters);
          const input = this.profileInput(instance, partition, software, checked.ok ? checked.parameters : instance.parameters, true);
          const answer = await this.runProfileOnce(manifest.destroy, { ...input, requests: this.requestAnswers }, log);
          if (answer.error !== undefined) throw new Error(answer.error);
        }
      }
    } catch (error) {
      // The node stops: the partition is destroyed at the next start.
      if (error instanceof ProfileAborted) return log.info("destroy interrupted: the node stops");
      log.error({ err: error }, "the destroy hook failed; wiping the partition anyway");
    }
    this.options.profiles.drop(this.partitionId);
    // Through the partition's descriptor, never following a link its user may have planted.
    await inFolder(this.path, "", (dir) => emptyFolder(dir));
    this.requestAnswers = {};
    try {
      await this.client.destroyed(this.partitionId, instance.instanceId);
      await this.saveState(instance, "destroyed");
      log.info("instance destroyed, partition wiped and released");
    } catch (error) {
      // Tried again a minute later (outcome error), or at the next start.
      await this.saveState(instance, "error");
      log.error({ err: error }, "could not report the instance destroyed");
    }
  }

}

/** How a profile entry is named in the logs: its module or executable. */
function instanceProfileName(entry: ProfileEntry): string {
  return typeof entry === "string" ? entry : entry.command[0];
}

/** What failed promises say, one line each. */
function promisesMessage(failed: readonly PromiseReport[]): string {
  return failed.map((p) => `promise ${p.name} failed: ${p.message}`).join("\n");
}
