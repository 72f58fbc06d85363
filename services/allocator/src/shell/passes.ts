import type { Logger } from "pino";

/**
 * Coalesces allocation passes: at most one runs at a time; asking during one runs another after
 * it (if there is still work), on a later turn of the event loop; none runs before the hold a
 * standby replica starts with, nor before `open` or after `close`.
 */
export class PassScheduler {
  private scheduled = false;
  private opened = false;
  /** No pass before this time (epoch ms). */
  private holdUntil = 0;
  private holdTimer: NodeJS.Timeout | undefined;
  private running: Promise<void> | undefined;

  constructor(
    private readonly options: {
      /** One pass over the work queued. */
      run: () => Promise<void>;
      /** Whether work is queued (then a pass follows the one that ends). */
      pending: () => boolean;
      logger: Logger;
    },
  ) {}

  /** Passes may run from now on, but not before `holdMs` from now. */
  open(holdMs: number): void {
    this.opened = true;
    this.holdUntil = Date.now() + holdMs;
  }

  /** Asks for a pass (a no-op when one is already scheduled). */
  request(): void {
    if (this.scheduled || !this.opened) return;
    const hold = this.holdUntil - Date.now();
    if (hold > 0) {
      this.holdTimer ??= setTimeout(() => {
        this.holdTimer = undefined;
        this.request();
      }, hold);
      return;
    }
    this.scheduled = true;
    setImmediate(() => {
      this.scheduled = false;
      if (this.running !== undefined || !this.opened) return;
      this.running = this.options
        .run()
        .catch((error: unknown) => this.options.logger.error({ err: error }, "allocation pass failed; the next commit or tick retries"))
        .finally(() => {
          this.running = undefined;
          if (this.options.pending()) this.request();
        });
    });
  }

  /** No more passes; resolves once the one running (if any) has ended. */
  async close(): Promise<void> {
    this.opened = false;
    if (this.holdTimer !== undefined) clearTimeout(this.holdTimer);
    await this.running;
  }
}
