import type { Logger } from "pino";
import { MasterError, type DesiredState, type MasterClient } from "./master-client.js";

/** How long one blocking query waits for a newer revision before the master answers the current one. */
export const DESIRED_WAIT_MS = 30_000;
/** After a failed query, the next one is this long later, doubling up to 10 s. */
const RETRY_MS = 250;
const RETRY_MAX_MS = 10_000;

/**
 * Follows the computer's desired state on the master (a kubelet's watch of its pods, a Nomad
 * client's blocking query on its allocations): one query at a time, each asking for a revision
 * newer than the last one seen, so a node that falls behind gets the latest state and never the
 * ones between. The node reads nothing else of the master.
 *
 * While the master does not answer, the last good state stays (services keep running); when it
 * answers again, the state then is handed on, and what did not change is not processed again. A
 * state that does not parse is refused with a log line naming the field, and the last good one
 * stays too.
 */
export class DesiredWatch {
  private state: DesiredState | undefined;
  private readonly stopped = new AbortController();
  private loop: Promise<void> | undefined;
  /** Logged once per outage or refusal, not at every try. */
  private failing: string | undefined;

  constructor(
    private readonly client: MasterClient,
    private readonly logger: Logger,
    private readonly onChange: (state: DesiredState) => void,
    private readonly waitMs = DESIRED_WAIT_MS,
  ) {}

  /** The last good desired state (undefined before the first). */
  get current(): DesiredState | undefined {
    return this.state;
  }

  /**
   * Reads the desired state once, then follows it in the background.
   * @throws MasterError when the first read fails (the master refuses, does not answer, or answers a state that does not parse).
   */
  async start(): Promise<void> {
    this.accept(await this.client.desired(undefined, 0, this.stopped.signal));
    this.loop = this.follow();
  }

  async stop(): Promise<void> {
    this.stopped.abort();
    await this.loop;
  }

  private accept(next: DesiredState): void {
    if (this.failing !== undefined) this.logger.info({ revision: next.revision }, "desired state: the master answers again");
    this.failing = undefined;
    if (this.state !== undefined && this.state.revision === next.revision) return;
    this.state = next;
    this.onChange(next);
  }

  private async follow(): Promise<void> {
    const signal = this.stopped.signal;
    for (let failures = 0; !signal.aborted; ) {
      try {
        this.accept(await this.client.desired(this.state?.revision ?? 0, this.waitMs, signal));
        failures = 0;
      } catch (error) {
        if (signal.aborted) return;
        this.report(error);
        const delay = Math.min(RETRY_MAX_MS, RETRY_MS * 2 ** Math.min(failures++, 10));
        await new Promise<void>((resolve) => {
          const timer = setTimeout(resolve, delay);
          signal.addEventListener("abort", () => (clearTimeout(timer), resolve()), { once: true });
        });
      }
    }
  }

  private report(error: unknown): void {
    const refused = error instanceof MasterError && error.code === "UnexpectedAnswer" && error.status === 200;
    const kind = refused ? error.message : error instanceof MasterError ? error.code : "error";
    if (this.failing === kind) return;
    this.failing = kind;
    if (refused) {
      // The message names the field that does not parse (`partitions.0.instance.parameters: …`).
      this.logger.error({ err: error, revision: this.state?.revision }, `desired state refused, the last good one is kept: ${error.message}`);
    } else this.logger.warn({ err: error, revision: this.state?.revision }, "desired state: the master does not answer; the last good state is kept");
  }
}
