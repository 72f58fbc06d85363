/** Seed used by fault-injection tests when `SLAP_FAULT_SEED` is not set. */
export const DEFAULT_FAULT_SEED = 20_240_607;

/**
 * The seed for a fault-injection test: `SLAP_FAULT_SEED` when set (an unsigned 32-bit integer),
 * else `DEFAULT_FAULT_SEED`. Print it in every failure message so a failure can be replayed.
 */
export function faultSeed(): number {
  const raw = process.env.SLAP_FAULT_SEED;
  if (raw === undefined || raw === "") return DEFAULT_FAULT_SEED;
  const seed = Number(raw);
  if (!Number.isInteger(seed) || seed < 0 || seed > 0xffff_ffff) {
    throw new Error(`SLAP_FAULT_SEED must be an unsigned 32-bit integer, not ${JSON.stringify(raw)}`);
  }
  return seed;
}

/** A small deterministic random source: the same seed gives the same sequence. */
export interface SeededRandom {
  readonly seed: number;
  /** Uniform in [0, 1). */
  next(): number;
  /** Uniform integer in [min, max], both included. */
  int(min: number, max: number): number;
  /** True with probability `p`. */
  chance(p: number): boolean;
  pick<T>(items: readonly T[]): T;
  /** `length` random bytes. */
  bytes(length: number): Buffer;
}

/** mulberry32: 32 bits of state, good enough to choose fault moments, not for anything secret. */
export function seededRandom(seed: number): SeededRandom {
  let state = seed >>> 0;
  const next = (): number => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4_294_967_296;
  };
  const int = (min: number, max: number): number => min + Math.floor(next() * (max - min + 1));
  return {
    seed,
    next,
    int,
    chance: (p) => next() < p,
    pick: <T>(items: readonly T[]): T => {
      if (items.length === 0) throw new Error("pick from an empty list");
      return items[int(0, items.length - 1)]!;
    },
    bytes: (length) => {
      const out = Buffer.allocUnsafe(length);
      for (let i = 0; i < length; i++) out[i] = int(0, 255);
      return out;
    },
  };
}
