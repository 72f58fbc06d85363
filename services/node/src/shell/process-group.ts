import type { ChildProcess } from "node:child_process";

/** After a timeout, a process group gets SIGTERM, then SIGKILL this much later. */
export const KILL_GRACE_MS = 2_000;
/** After the SIGKILL, how long its pipes may stay open (held by a descendant that left the group) before they are let go. */
const PIPES_GRACE_MS = 1_000;

/** Signals the process group of a child spawned `detached` (its pid is the group's id); a group already gone is no error. */
export function signalGroup(child: ChildProcess, signal: NodeJS.Signals): void {
  try {
    if (child.pid !== undefined) process.kill(-child.pid, signal);
  } catch {
    // The group is gone already.
  }
}

/**
 * Ends a detached child with everything it started: SIGTERM to its group now, SIGKILL
 * `KILL_GRACE_MS` later. A descendant that left the group (setsid) may hold the child's pipes
 * open, so its `close` never comes: 1 s after the SIGKILL the pipes are destroyed and `stuck` is
 * called, for the caller to settle without waiting. Answers a function that cancels what is
 * still to come (call it once the child closed).
 */
export function terminateGroup(child: ChildProcess, stuck: () => void): () => void {
  const timers: NodeJS.Timeout[] = [];
  signalGroup(child, "SIGTERM");
  timers.push(
    setTimeout(() => {
      signalGroup(child, "SIGKILL");
      timers.push(
        setTimeout(() => {
          child.stdin?.destroy();
          child.stdout?.destroy();
          child.stderr?.destroy();
          stuck();
        }, PIPES_GRACE_MS),
      );
    }, KILL_GRACE_MS),
  );
  return () => {
    for (const timer of timers) clearTimeout(timer);
  };
}
