import { MasterClient as ApiClient, MasterError, type Answer, type CallOptions, type DesiredState, type RequestInstance } from "@slap/api";
import type { ParametersSchema } from "@slap/events";
import type { z } from "zod";

export { MasterError };
export type { Answer, DesiredState };

/** Margin over a blocking query's `wait` before the call counts as lost. */
const WATCH_MARGIN_MS = 15_000;

export interface ProcessReport {
  name: string;
  state: "running" | "exited" | "stopped" | "backoff";
  pid?: number;
  exitCode?: number;
}

export interface PromiseReport {
  name: string;
  ok: boolean;
  message: string;
  durationMs: number;
}

export interface StatusReport {
  status: "processing" | "started" | "stopped" | "error" | "waiting";
  message?: string;
  waitingFor?: string[];
  promises?: PromiseReport[];
  processes?: ProcessReport[];
}

export type RequestBody = z.input<typeof RequestInstance>;

/**
 * The master's API as the node uses it: the calls of `@slap/api`'s `MasterClient` (the route
 * table's, every answer parsed, every failure a `MasterError` saying whether a retry may help)
 * with the node's token, for its own computer or one of its partitions. A call for a partition
 * adds `x-slap-partition`, which the master accepts only for a partition of the token's own computer.
 * The node reads only its computer's desired state (`desired`); every write says, in
 * `x-slap-revision`, the revision of that state it answers. The master never waits for it: what
 * the node saw is what the master served.
 */
export class MasterClient {
  private readonly api: ApiClient;

  /**
   * @param revisionOf the desired-state revision a write answers: the computer's (no partition),
   *   or the one the partition's processing works from. Undefined: none sent.
   */
  constructor(
    baseUrl: string,
    private readonly computerId: string,
    token: string,
    private readonly revisionOf?: (partitionId?: string) => number | undefined,
    ca?: string,
    fetchImpl?: typeof fetch,
  ) {
    this.api = new ApiClient({ master: baseUrl, token, ca, ...(fetchImpl === undefined ? {} : { fetch: fetchImpl }) });
  }

  /** The options of a call: as the node itself, or as one of its partitions; with the revision it answers. */
  private as(partitionId?: string, options: { timeoutMs?: number; signal?: AbortSignal } = {}): CallOptions {
    const revision = this.revisionOf?.(partitionId);
    return {
      headers: {
        ...(partitionId === undefined ? {} : { "x-slap-partition": `${this.computerId}/${partitionId}` }),
        ...(revision === undefined ? {} : { "x-slap-revision": String(revision) }),
      },
      ...(options.timeoutMs === undefined ? {} : { timeoutMs: options.timeoutMs }),
      ...(options.signal === undefined ? {} : { signal: options.signal }),
    };
  }

  /**
   * The computer's desired state: at once without `index`; else once its revision is past
   * `index`, or as it is after `waitMs` (a blocking query). The answer is parsed: one that does
   * not parse is an `UnexpectedAnswer` naming the field.
   */
  desired(index: number | undefined, waitMs: number, signal: AbortSignal): Promise<DesiredState> {
    const query = index === undefined ? {} : { index: String(index), wait: String(waitMs) };
    return this.api.call("getDesiredState", { params: { computerId: this.computerId }, query }, { timeoutMs: waitMs + WATCH_MARGIN_MS, signal });
  }

  register(partitions: Array<{ partitionId: string; address: string; ports: { from: number; to: number } }>): Promise<{ position: number }> {
    return this.api.call("registerComputer", { body: { computerId: this.computerId, partitions } }, this.as());
  }

  /** The node's sign of life (the master shows its computer unresponsive when it has not heard from it for a while). */
  heartbeat(timeoutMs: number): Promise<{ computerId: string }> {
    return this.api.call("heartbeat", { params: { computerId: this.computerId } }, this.as(undefined, { timeoutMs }));
  }

  /** With `available`, the release's parameters schema (`parametersSchema`), so the master can check requests against it. */
  reportSoftware(releaseUrl: string, status: "building" | "available" | "error" | "destroyed", log?: string, parametersSchema?: ParametersSchema): Promise<{ position: number }> {
    const body = { releaseUrl, status, ...(log === undefined ? {} : { log: log.slice(-60_000) }), ...(parametersSchema === undefined ? {} : { parametersSchema }) };
    return this.api.call("reportSoftware", { params: { computerId: this.computerId }, body }, this.as());
  }

  reportStatus(partitionId: string, instanceId: string, report: StatusReport): Promise<{ position: number }> {
    const body = { ...report, ...(report.message === undefined ? {} : { message: report.message.slice(0, 60_000) }) };
    return this.api.call("reportInstanceStatus", { params: { instanceId }, body }, this.as(partitionId));
  }

  publish(partitionId: string, instanceId: string, parameters: Record<string, string>): Promise<{ position: number }> {
    return this.api.call("publishConnection", { params: { instanceId }, body: { parameters } }, this.as(partitionId));
  }

  bang(
    partitionId: string,
    instanceId: string,
    message: string,
    details: { service?: string; exitCode?: number; signal?: string; logTail?: string } = {},
  ): Promise<{ position: number }> {
    const body = { ...details, ...(details.logTail === undefined ? {} : { logTail: details.logTail.slice(-60_000) }), message: message.slice(0, 60_000) };
    return this.api.call("bang", { params: { instanceId }, body }, this.as(partitionId));
  }

  destroyed(partitionId: string, instanceId: string): Promise<{ position: number }> {
    return this.api.call("reportDestroyed", { params: { instanceId }, body: {} }, this.as(partitionId));
  }

  request(partitionId: string, body: RequestBody): Promise<Answer> {
    return this.api.call("requestInstance", { body }, this.as(partitionId));
  }
}
