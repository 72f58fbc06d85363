import { spawn } from "node:child_process";
import { fileURLToPath } from "node:url";
import type { Logger } from "pino";
import { PROFILE_ANSWER_MAX_BYTES, parseAnswer, ProfileProtocolError, type ProfileAnswer, type ProfileInput } from "./profile-protocol.js";
import { terminateGroup } from "./process-group.js";
import { ProfileTimeout } from "./profile.js";
import type { PartitionUser } from "./users.js";

/** The JS profile runner the node spawns for a `profile.mjs` (plain JS: no loader needed). */
export const PROFILE_RUNNER = fileURLToPath(new URL("./profile-runner.mjs", import.meta.url));

/** The last bytes of a profile's stderr kept for an error message. */
const STDERR_KEEP = 2_000;

export interface ProfileProcessOptions {
  cwd: string;
  env: Record<string, string>;
  /** Runs as this user (partition users on). */
  owner: PartitionUser | undefined;
  timeoutMs: number;
  /** Bound on stdout (default 1 MiB): past it the process is killed and the processing fails. */
  maxAnswerBytes?: number | undefined;
  /** The profile's stderr lines go there (JSON lines of `slap.log` are logged as they are). */
  log: Logger;
  /** Aborted (the node stops): the process group is killed as at the timeout, and the run rejects with `ProfileAborted`. */
  signal?: AbortSignal | undefined;
}

/** A profile process killed because the node stops: nothing of it is applied, nothing recorded. */
export class ProfileAborted extends Error {
  override name = "ProfileAborted";
  readonly retryable = true;
}

/**
 * A profile process's stderr: each line logged (as `profileOutput`, on the logger of the run it
 * belongs to) and the last `STDERR_KEEP` bytes kept for an error message.
 */
export class ProfileStderr {
  private kept = "";
  private partial = "";

  constructor(private readonly log: () => Logger) {}

  push(chunk: Buffer): void {
    const lines = (this.partial + chunk.toString("utf8")).split("\n");
    this.partial = (lines.pop() ?? "").slice(-STDERR_KEEP);
    for (const line of lines) {
      if (line.trim() === "") continue;
      this.kept = `${this.kept}${line}\n`.slice(-STDERR_KEEP);
      this.log().info({ profileOutput: line.slice(0, STDERR_KEEP) }, "profile output");
    }
  }

  /** The kept lines as the end of an error message ("" when there are none); forgets them. */
  said(): string {
    const tail = (this.kept + this.partial).trim();
    this.kept = "";
    this.partial = "";
    return tail === "" ? "" : `\n--- last lines of its stderr ---\n${tail}`;
  }
}

/**
 * Runs one profile process (DESIGN.md, "Profile processes"): `command` in a process group of its
 * own, as `owner`, with `input` as JSON on stdin, and parses its answer. Rejects with
 * `ProfileTimeout` past `timeoutMs` (the group gets SIGTERM, then SIGKILL 2 s later; rejected
 * once the process is gone, or 1 s after the SIGKILL when something it started still holds its
 * pipes: `terminateGroup`), or `ProfileProtocolError` for an answer too large, not JSON, given
 * twice or not valid, an exit before answering, or a non-zero exit. An answer with `error` resolves.
 */
export function runProfileProcess(command: readonly string[], input: ProfileInput, options: ProfileProcessOptions): Promise<ProfileAnswer> {
  const [file, ...args] = command as [string, ...string[]];
  const maxBytes = options.maxAnswerBytes ?? PROFILE_ANSWER_MAX_BYTES;
  return new Promise((resolve, reject) => {
    const child = spawn(file, args, {
      cwd: options.cwd,
      env: options.env,
      stdio: ["pipe", "pipe", "pipe"],
      detached: true,
      ...(options.owner === undefined ? {} : { uid: options.owner.uid, gid: options.owner.gid }),
    });
    const chunks: Buffer[] = [];
    let size = 0;
    let failure: Error | undefined;
    let settled = false;
    let cancelKill = (): void => undefined;
    const settle = (): boolean => {
      if (settled) return false;
      settled = true;
      clearTimeout(timer);
      cancelKill();
      options.signal?.removeEventListener("abort", abort);
      return true;
    };
    const kill = (error: Error): void => {
      if (failure !== undefined) return;
      failure = error;
      // A descendant that left the group and holds the pipes must not hold the processing: it ends in its error anyway.
      cancelKill = terminateGroup(child, () => {
        if (settle()) reject(error);
      });
    };
    const timer = setTimeout(() => kill(new ProfileTimeout(command.join(" "), options.timeoutMs)), options.timeoutMs);
    const abort = (): void => kill(new ProfileAborted("the node stopped: the profile process was killed"));
    if (options.signal?.aborted === true) abort();
    options.signal?.addEventListener("abort", abort, { once: true });
    child.stdout.on("data", (chunk: Buffer) => {
      if (failure !== undefined) return;
      size += chunk.length;
      if (size > maxBytes) kill(new ProfileProtocolError(`profile sent more than ${maxBytes} bytes on stdout (its answer is bounded)`));
      else chunks.push(chunk);
    });
    const stderr = new ProfileStderr(() => options.log);
    child.stderr.on("data", (chunk: Buffer) => stderr.push(chunk));
    // A process that exits without reading its input: the pipe breaks, which is its answer's problem, not the node's.
    child.stdin.on("error", () => undefined);
    child.stdin.end(JSON.stringify(input));
    child.on("error", (error) => {
      if (settle()) reject(new ProfileProtocolError(`profile ${file} could not start: ${error.message}`, { cause: error }));
    });
    child.on("close", (code, signal) => {
      if (!settle()) return;
      if (failure !== undefined) return reject(failure);
      const said = stderr.said();
      let answer: ProfileAnswer;
      try {
        answer = parseAnswer(Buffer.concat(chunks).toString("utf8"));
      } catch (error) {
        if (code !== 0 && error instanceof ProfileProtocolError && chunks.length === 0) {
          const how = code === null ? `was killed by ${signal ?? "a signal"}` : `exited with code ${code}`;
          return reject(new ProfileProtocolError(`profile ${how} before answering${said}`));
        }
        return reject(new ProfileProtocolError(`${error instanceof Error ? error.message : String(error)}${said}`));
      }
      if (answer.error !== undefined) return resolve(answer);
      if (code !== 0) return reject(new ProfileProtocolError(`profile answered, then exited with code ${code ?? signal}${said}`));
      resolve(answer);
    });
  });
}
