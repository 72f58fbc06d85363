/**
 * Restart policy of a supervised service: see README.md. The delay keeps growing to an hour while
 * the service keeps failing, so a crash-looping service costs the log a few events an hour, not
 * one bang every 30 s for ever (issue 16).
 */
export const BACKOFF = { initialMs: 1_000, maxMs: 3_600_000, resetAfterMs: 60_000 } as const;

/**
 * The delay before restarting a service that exited, given how many times in a row it failed
 * and how long it was up this time: 1 s, 2 s, 4 s … capped at an hour; a run of 60 s or more
 * resets the count. Returns the delay and the new count.
 */
export function nextRestart(failures: number, upMs: number): { delayMs: number; failures: number } {
  const count = upMs >= BACKOFF.resetAfterMs ? 1 : failures + 1;
  return { delayMs: Math.min(BACKOFF.maxMs, BACKOFF.initialMs * 2 ** Math.min(count - 1, 32)), failures: count };
}

/** How many times a service that fails at once is restarted within `windowMs` of its first exit (the back-off's schedule). */
export function restartsWithin(windowMs: number): number {
  let failures = 0;
  let at = 0;
  let restarts = 0;
  for (;;) {
    const next = nextRestart(failures, 0);
    failures = next.failures;
    at += next.delayMs;
    if (at > windowMs) return restarts;
    restarts++;
  }
}
