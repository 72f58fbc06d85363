/**
 * One task at a time, taken from the callers in turn (round robin), at most `perCaller` waiting
 * or running for one caller: a caller with many queued tasks delays another caller's by one task
 * at most, never by its whole queue. The as-of reads' folds go through one (shell/master.ts).
 */
export class FairQueue {
  /** Each caller's tasks, in order; the map's order is the turn (a caller goes to the back once served). */
  private readonly queues = new Map<string, Array<() => void>>();
  private readonly counts = new Map<string, number>();
  private running = false;
  /** The caller served last: it goes behind the others that wait, even when it had nothing waiting when it was served. */
  private lastServed: string | undefined;

  constructor(readonly perCaller: number) {}

  /** Tasks of `caller` waiting or running. */
  pending(caller: string): number {
    return this.counts.get(caller) ?? 0;
  }

  /**
   * Runs `task` in its turn. Undefined (and `task` never runs) when `caller` has `perCaller`
   * tasks waiting or running already: the caller is told to come back.
   */
  run<T>(caller: string, task: () => Promise<T>): Promise<T> | undefined {
    const count = this.pending(caller);
    if (count >= this.perCaller) return undefined;
    this.counts.set(caller, count + 1);
    return new Promise<T>((resolve, reject) => {
      // Counted out before the caller hears of the end: it may queue its next task at once.
      const end = (): void => {
        const left = this.pending(caller) - 1;
        if (left === 0) this.counts.delete(caller);
        else this.counts.set(caller, left);
        this.running = false;
      };
      const start = (): void => {
        Promise.resolve()
          .then(task)
          .then(
            (value) => {
              end();
              resolve(value);
              this.next();
            },
            (error: unknown) => {
              end();
              reject(error instanceof Error ? error : new Error(String(error)));
              this.next();
            },
          );
      };
      const queue = this.queues.get(caller);
      if (queue === undefined) this.queues.set(caller, [start]);
      else queue.push(start);
      this.next();
    });
  }

  private next(): void {
    if (this.running) return;
    let first = this.queues.entries().next();
    if (first.done === true) return;
    if (first.value[0] === this.lastServed && this.queues.size > 1) {
      this.queues.delete(first.value[0]);
      this.queues.set(first.value[0], first.value[1]);
      first = this.queues.entries().next();
      if (first.done === true) return;
    }
    const [caller, queue] = first.value;
    const start = queue.shift()!;
    // Served: to the back of the turn, or out of it with nothing left.
    this.queues.delete(caller);
    if (queue.length > 0) this.queues.set(caller, queue);
    this.lastServed = caller;
    this.running = true;
    start();
  }
}
