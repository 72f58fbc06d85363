/** Restart policy of a supervised service: see README.md. */
export const BACKOFF = { initialMs: 1_000, maxMs: 30_000, resetAfterMs: 60_000 } as const;

/**
 * The delay before restarting a service that exited, given how many times in a row it failed
 * and how long it was up this time: 1 s, 2 s, 4 s … capped at 30 s; a run of 60 s or more
 * resets the count. Returns the delay and the new count.
 */
export function nextRestart(failures: number, upMs: number): { delayMs: number; failures: number } {
  const count = upMs >= BACKOFF.resetAfterMs ? 1 : failures + 1;
  return { delayMs: Math.min(BACKOFF.maxMs, BACKOFF.initialMs * 2 ** (count - 1)), failures: count };
}
