interface Deferral {
  position: number;
  deadline: number;
  run: () => void;
}

/**
 * Work to run once the read model has reached a log position, or after a deadline at the
 * latest (a position the read model never reports, such as a malformed commit it skipped
 * at the end of the log, must not block the work forever). A binary min-heap on position.
 */
export class Deferrals {
  private heap: Deferral[] = [];

  get size(): number {
    return this.heap.length;
  }

  add(position: number, deadline: number, run: () => void): void {
    this.heap.push({ position, deadline, run });
    this.up(this.heap.length - 1);
  }

  /** Removes and answers the work due at `position` (or whose deadline is at or before `now`). */
  due(position: number, now: number): Array<() => void> {
    const out: Array<() => void> = [];
    while (this.heap.length > 0 && this.heap[0]!.position <= position) {
      out.push(this.pop().run);
    }
    if (this.heap.some((d) => d.deadline <= now)) {
      const keep: Deferral[] = [];
      for (const d of this.heap) {
        if (d.deadline <= now) out.push(d.run);
        else keep.push(d);
      }
      this.heap = keep;
      for (let i = (this.heap.length >> 1) - 1; i >= 0; i--) this.down(i);
    }
    return out;
  }

  clear(): void {
    this.heap = [];
  }

  private pop(): Deferral {
    const top = this.heap[0]!;
    const last = this.heap.pop()!;
    if (this.heap.length > 0) {
      this.heap[0] = last;
      this.down(0);
    }
    return top;
  }

  private up(i: number): void {
    const h = this.heap;
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if (h[parent]!.position <= h[i]!.position) break;
      [h[parent], h[i]] = [h[i]!, h[parent]!];
      i = parent;
    }
  }

  private down(i: number): void {
    const h = this.heap;
    for (;;) {
      const l = 2 * i + 1;
      const r = l + 1;
      let m = i;
      if (l < h.length && h[l]!.position < h[m]!.position) m = l;
      if (r < h.length && h[r]!.position < h[m]!.position) m = r;
      if (m === i) return;
      [h[m], h[i]] = [h[i]!, h[m]!];
      i = m;
    }
  }
}
