import { spawn, type ChildProcess } from "node:child_process";
import type { Logger } from "pino";
import { PROFILE_ANSWER_MAX_BYTES, parseAnswer, ProfileProtocolError, type ProfileAnswer, type ProfileInput } from "./profile-protocol.js";
import { PROFILE_RUNNER, ProfileAborted, ProfileStderr, runProfileProcess } from "./profile-process.js";
import { terminateGroup } from "./process-group.js";
import { ProfileTimeout } from "./profile.js";
import type { PartitionUser } from "./users.js";

/** A warm host idle this long is stopped: it holds memory (a Node process) for nothing. */
export const PROFILE_HOST_IDLE_MS = 60_000;
/**
 * Processings one host runs before it is replaced: each evaluates the profile module again, and
 * V8 keeps every module it evaluated for the life of the process.
 */
export const PROFILE_HOST_MAX_RUNS = 200;
/** Default of the node's `warmProfiles`: hosts kept alive at once, the least recently used stopped first. */
export const WARM_PROFILES = 8;

/** How the processes of a partition start: in its folder, with its environment, as its user. */
export interface PartitionProcessSpec {
  cwd: string;
  env: Record<string, string>;
  owner: PartitionUser | undefined;
}

/** One processing's bounds. */
export interface ProfileRunOptions {
  timeoutMs: number;
  /** Where the run's stderr lines go. */
  log: Logger;
  signal?: AbortSignal | undefined;
  maxAnswerBytes?: number | undefined;
}

interface Pending {
  resolve: (answer: ProfileAnswer) => void;
  reject: (error: Error) => void;
  options: ProfileRunOptions;
  timer: NodeJS.Timeout;
  abort: () => void;
}

/**
 * One warm host: `node profile-runner.mjs --serve`, as the partition's user, in a process group
 * of its own, running one processing at a time (a request line in, an answer line out). Anything
 * wrong — a timeout, an abort, an answer too large or not valid, output while idle, an exit — ends
 * the host with its whole group; the next processing starts a new one.
 */
class ProfileHost {
  private readonly child: ChildProcess;
  private readonly stderr: ProfileStderr;
  private pending: Pending | undefined;
  private stdout = "";
  private failure: Error | undefined;
  private cancelKill = (): void => undefined;
  private idleTimer: NodeJS.Timeout | undefined;
  private closed = false;
  runs = 0;

  constructor(
    /** What the host was started for (the instance and its release): another one gets another host. */
    readonly tag: string,
    spec: PartitionProcessSpec,
    private readonly logger: Logger,
    private readonly onGone: (host: ProfileHost) => void,
  ) {
    this.child = spawn(process.execPath, [PROFILE_RUNNER, "--serve"], {
      cwd: spec.cwd,
      env: spec.env,
      stdio: ["pipe", "pipe", "pipe"],
      detached: true,
      ...(spec.owner === undefined ? {} : { uid: spec.owner.uid, gid: spec.owner.gid }),
    });
    this.stderr = new ProfileStderr(() => this.pending?.options.log ?? this.logger);
    this.child.stdout!.on("data", (chunk: Buffer) => this.onStdout(chunk));
    this.child.stderr!.on("data", (chunk: Buffer) => this.stderr.push(chunk));
    this.child.stdin!.on("error", () => undefined);
    this.child.on("error", (error) => this.end(new ProfileProtocolError(`the profile host could not start: ${error.message}`, { cause: error })));
    this.child.on("close", (code, signal) => {
      const how = code === null ? `was killed by ${signal ?? "a signal"}` : `exited with code ${code}`;
      this.end(new ProfileProtocolError(`profile ${how} before answering${this.stderr.said()}`));
    });
  }

  get busy(): boolean {
    return this.pending !== undefined;
  }

  get alive(): boolean {
    return !this.closed && this.failure === undefined;
  }

  /** Runs `profile` with `input`; one run at a time. Rejects as `runProfileProcess` does. */
  run(profile: string, input: ProfileInput, options: ProfileRunOptions): Promise<ProfileAnswer> {
    clearTimeout(this.idleTimer);
    this.runs++;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => this.kill(new ProfileTimeout(profile, options.timeoutMs)), options.timeoutMs);
      const abort = (): void => this.kill(new ProfileAborted("the node stopped: the profile process was killed"));
      this.pending = { resolve, reject, options, timer, abort };
      if (options.signal?.aborted === true) return abort();
      options.signal?.addEventListener("abort", abort, { once: true });
      this.child.stdin!.write(`${JSON.stringify({ profile, input })}\n`);
    });
  }

  /** Stops the host after `ms` without a run. */
  idleFor(ms: number): void {
    clearTimeout(this.idleTimer);
    this.idleTimer = setTimeout(() => this.stop(), ms);
    this.idleTimer.unref();
  }

  /** Ends the host and everything it started (SIGTERM to its group, SIGKILL 2 s later). */
  stop(): void {
    this.kill(new ProfileAborted("the profile host was stopped"));
  }

  private onStdout(chunk: Buffer): void {
    if (this.failure !== undefined) return;
    this.stdout += chunk.toString("utf8");
    const newline = this.stdout.indexOf("\n");
    const pending = this.pending;
    const maxBytes = pending?.options.maxAnswerBytes ?? PROFILE_ANSWER_MAX_BYTES;
    if (pending === undefined) return this.kill(new ProfileProtocolError("the profile host wrote on stdout while no processing ran"));
    if (newline === -1) {
      if (Buffer.byteLength(this.stdout) > maxBytes) this.kill(new ProfileProtocolError(`profile sent more than ${maxBytes} bytes on stdout (its answer is bounded)`));
      return;
    }
    const line = this.stdout.slice(0, newline);
    const rest = this.stdout.slice(newline + 1);
    this.stdout = "";
    let answer: ProfileAnswer;
    try {
      if (Buffer.byteLength(line) > maxBytes) throw new ProfileProtocolError(`profile sent more than ${maxBytes} bytes on stdout (its answer is bounded)`);
      answer = parseAnswer(line);
    } catch (error) {
      return this.kill(error instanceof Error ? error : new Error(String(error)));
    }
    this.settle()?.resolve(answer);
    this.stderr.said();
    // What came after the answer is not the runner's: the host is not to be trusted with another run.
    if (rest !== "") this.kill(new ProfileProtocolError("the profile host wrote on stdout after its answer"));
  }

  /** The pending run, taken (its timer and abort listener removed). */
  private settle(): Pending | undefined {
    const pending = this.pending;
    if (pending === undefined) return undefined;
    this.pending = undefined;
    clearTimeout(pending.timer);
    pending.options.signal?.removeEventListener("abort", pending.abort);
    return pending;
  }

  /** Kills the group; the pending run rejects with `error` once the host is gone. */
  private kill(error: Error): void {
    if (this.failure !== undefined || this.closed) return;
    this.failure = error;
    clearTimeout(this.idleTimer);
    this.onGone(this);
    this.cancelKill = terminateGroup(this.child, () => this.end(error));
  }

  /** The host is gone (closed, or stuck past the SIGKILL): the pending run, if any, rejects. */
  private end(error: Error): void {
    if (this.closed) return;
    this.closed = true;
    clearTimeout(this.idleTimer);
    this.cancelKill();
    this.onGone(this);
    this.settle()?.reject(this.failure ?? error);
  }
}

/**
 * The node's warm profile hosts (DESIGN.md, "Warm profile hosts"): at most `warm` alive at once,
 * one per partition, each for one instance and release; a host idle `PROFILE_HOST_IDLE_MS` is
 * stopped, and so is the least recently used one when a new one would exceed `warm`. With
 * `warm` 0 every processing starts a process of its own (`runProfileProcess`).
 */
export class ProfileHosts {
  /** By partition, the least recently used first. */
  private readonly hosts = new Map<string, ProfileHost>();

  constructor(
    private readonly warm: number,
    private readonly logger: Logger,
  ) {}

  /** Runs the JS profile `profile` for `partition` (a host of `tag`, started if none is warm). */
  async run(partition: string, tag: string, spec: PartitionProcessSpec, profile: string, input: ProfileInput, options: ProfileRunOptions): Promise<ProfileAnswer> {
    if (this.warm === 0) return runProfileProcess([process.execPath, PROFILE_RUNNER, profile], input, { ...spec, ...options });
    let host = this.hosts.get(partition);
    if (host !== undefined && (host.tag !== tag || host.runs >= PROFILE_HOST_MAX_RUNS || !host.alive)) {
      this.drop(partition);
      host = undefined;
    }
    this.hosts.delete(partition);
    host ??= new ProfileHost(tag, spec, this.logger.child({ partition, profileHost: true }), (gone) => {
      if (this.hosts.get(partition) === gone) this.hosts.delete(partition);
    });
    this.hosts.set(partition, host);
    this.trim(partition);
    try {
      return await host.run(profile, input, options);
    } finally {
      if (host.alive) host.idleFor(PROFILE_HOST_IDLE_MS);
    }
  }

  /** Stops the partition's host, if one is warm (its instance was destroyed, the node stops). */
  drop(partition: string): void {
    const host = this.hosts.get(partition);
    this.hosts.delete(partition);
    host?.stop();
  }

  /** Stops every host. */
  close(): void {
    for (const partition of [...this.hosts.keys()]) this.drop(partition);
  }

  /** Stops idle hosts but `keep`'s, the least recently used first, until at most `warm` are alive. */
  private trim(keep: string): void {
    for (const [partition, host] of this.hosts) {
      if (this.hosts.size <= this.warm) return;
      if (partition !== keep && !host.busy) this.drop(partition);
    }
  }
}
