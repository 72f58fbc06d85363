import { MasterClient as ApiClient, MasterError, type Answer, type CallOptions, type RequestInstance } from "@slap/api";
import type { ParametersSchema } from "@slap/events";
import type { z } from "zod";

export { MasterError };
export type { Answer };

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
 */
export class MasterClient {
  private readonly api: ApiClient;

  /**
   * @param seen the log position the node has seen: sent as `x-slap-seen`, so the master answers
   *   from read models that include it (the node acts on an allocation the moment it sees it,
   *   which may be before the master's own read model has it).
   */
  constructor(
    baseUrl: string,
    private readonly computerId: string,
    token: string,
    private readonly seen?: () => number,
  ) {
    this.api = new ApiClient({ master: baseUrl, token });
  }

  /** The options of a call: as the node itself, or as one of its partitions; with `x-slap-seen` unless told not to. */
  private as(partitionId?: string, options: { timeoutMs?: number; seen?: boolean } = {}): CallOptions {
    return {
      headers: {
        ...(partitionId === undefined ? {} : { "x-slap-partition": `${this.computerId}/${partitionId}` }),
        ...(this.seen === undefined || options.seen === false ? {} : { "x-slap-seen": String(this.seen()) }),
      },
      ...(options.timeoutMs === undefined ? {} : { timeoutMs: options.timeoutMs }),
    };
  }

  register(partitions: Array<{ partitionId: string; address: string; ports: { from: number; to: number } }>): Promise<{ position: number }> {
    return this.api.call("registerComputer", { body: { computerId: this.computerId, partitions } }, this.as());
  }

  /**
   * The node's sign of life (the master shows its computer unresponsive when it has not heard
   * from it for a while). Sent without `x-slap-seen`: it must not wait for the master's read models.
   */
  heartbeat(timeoutMs: number): Promise<{ computerId: string }> {
    return this.api.call("heartbeat", { params: { computerId: this.computerId } }, this.as(undefined, { timeoutMs, seen: false }));
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
