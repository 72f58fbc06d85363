/** Small statistics helpers for benchmark samples. Every function ignores nothing: pass finite numbers. */

function sorted(samples: readonly number[]): number[] {
  if (samples.length === 0) throw new Error("no samples");
  return [...samples].sort((a, b) => a - b);
}

/**
 * The p-th percentile (0–100) with linear interpolation between closest ranks
 * (the same definition as numpy's default), so percentile(x, 50) is the median.
 */
export function percentile(samples: readonly number[], p: number): number {
  if (!(p >= 0 && p <= 100)) throw new RangeError(`percentile must be within 0..100, got ${p}`);
  const s = sorted(samples);
  const rank = (p / 100) * (s.length - 1);
  const lo = Math.floor(rank);
  const hi = Math.ceil(rank);
  const a = s[lo]!;
  const b = s[hi]!;
  return a + (b - a) * (rank - lo);
}

export function median(samples: readonly number[]): number {
  return percentile(samples, 50);
}

export function min(samples: readonly number[]): number {
  return sorted(samples)[0]!;
}

export function max(samples: readonly number[]): number {
  const s = sorted(samples);
  return s[s.length - 1]!;
}

export interface Summary {
  median: number;
  min: number;
  max: number;
}

export function summarize(samples: readonly number[]): Summary {
  return { median: median(samples), min: min(samples), max: max(samples) };
}

/** Operations per second from a count and a duration in milliseconds. */
export function perSecond(count: number, elapsedMs: number): number {
  return count / (Math.max(elapsedMs, 1e-6) / 1_000);
}

/** Times `fn` with the monotonic clock; answers its result and the elapsed milliseconds. */
export async function timed<T>(fn: () => Promise<T>): Promise<{ result: T; ms: number }> {
  const start = process.hrtime.bigint();
  const result = await fn();
  return { result, ms: Number(process.hrtime.bigint() - start) / 1e6 };
}
