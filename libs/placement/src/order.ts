/**
 * Orders used by placement. Both are total and deterministic, so every replica (and the
 * master explaining a pending request) ranks the same view the same way.
 */

const isDigit = (code: number): boolean => code >= 48 && code <= 57;

/**
 * Natural order: digit runs compare as numbers (`slappart2` < `slappart10`), everything else by
 * UTF-16 code unit. Ties left by numeric equality (`a01` vs `a1`) fall back to plain order, so
 * the order is total. Much cheaper than `localeCompare` with `numeric`, which matters when
 * ranking thousands of computers per placement.
 */
export function naturalCompare(a: string, b: string): number {
  let i = 0;
  let j = 0;
  while (i < a.length && j < b.length) {
    const ca = a.charCodeAt(i);
    const cb = b.charCodeAt(j);
    if (isDigit(ca) && isDigit(cb)) {
      let endA = i;
      while (endA < a.length && isDigit(a.charCodeAt(endA))) endA++;
      let endB = j;
      while (endB < b.length && isDigit(b.charCodeAt(endB))) endB++;
      let startA = i;
      while (startA < endA - 1 && a.charCodeAt(startA) === 48) startA++;
      let startB = j;
      while (startB < endB - 1 && b.charCodeAt(startB) === 48) startB++;
      const lengthA = endA - startA;
      const lengthB = endB - startB;
      if (lengthA !== lengthB) return lengthA - lengthB;
      for (let k = 0; k < lengthA; k++) {
        const d = a.charCodeAt(startA + k) - b.charCodeAt(startB + k);
        if (d !== 0) return d;
      }
      i = endA;
      j = endB;
      continue;
    }
    if (ca !== cb) return ca - cb;
    i++;
    j++;
  }
  const rest = a.length - i - (b.length - j);
  if (rest !== 0) return rest;
  return a < b ? -1 : a > b ? 1 : 0;
}

const GOLDEN = (Math.sqrt(5) - 1) / 2;

/**
 * Where replica `rotation` starts in a ring of `size` items: ⌊frac(rotation · φ) · size⌋
 * (φ = 0.618…). Rotation 0 starts at the beginning; 1, 2, 3… land at 61.8 %, 23.6 %, 85.4 %,
 * 47.2 %… of the ring: well apart for any number of replicas, without knowing how many run.
 */
export function ringOffset(rotation: number, size: number): number {
  if (size <= 0) return 0;
  const fraction = (Math.abs(Math.trunc(rotation)) * GOLDEN) % 1;
  return Math.min(size - 1, Math.floor(fraction * size));
}

/** Index of the first element of `sorted` not less than `key` (sorted.length when none). */
export function lowerBound<T>(sorted: readonly T[], key: string, keyOf: (item: T) => string): number {
  let lo = 0;
  let hi = sorted.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (naturalCompare(keyOf(sorted[mid]!), key) < 0) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

/**
 * A replica rotation from a replica name: the trailing number when there is one
 * (`allocator-2` → 2, so numbered replicas are guaranteed distinct rotations), else an FNV-1a
 * hash of the name. No name: 0.
 */
export function rotationOf(replica: string | undefined): number {
  if (replica === undefined || replica === "") return 0;
  const trailing = /(\d{1,9})$/.exec(replica);
  if (trailing !== null) return Number(trailing[1]);
  let hash = 0x811c9dc5;
  for (let i = 0; i < replica.length; i++) {
    hash ^= replica.charCodeAt(i);
    hash = Math.imul(hash, 0x01000193) >>> 0;
  }
  return hash & 0xffff;
}
