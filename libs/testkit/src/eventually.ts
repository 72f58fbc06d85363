import assert from "node:assert/strict";

/**
 * Polls `probe` until it answers something other than undefined, then returns it; fails the
 * test after `timeoutMs` naming `what` and the probe's last error. Tests wait with this, never
 * with fixed sleeps.
 */
export async function eventually<T>(what: string, probe: () => Promise<T | undefined>, timeoutMs = 20_000, intervalMs = 50): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const value = await probe();
      if (value !== undefined) return value;
    } catch (error) {
      last = error;
    }
    if (Date.now() > deadline) assert.fail(`timed out waiting for ${what}${last === undefined ? "" : `: ${last instanceof Error ? last.message : JSON.stringify(last)}`}`);
    await new Promise((r) => setTimeout(r, intervalMs));
  }
}
