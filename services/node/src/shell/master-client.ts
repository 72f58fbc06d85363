import { z } from "zod";
import { Answer } from "@slap/api";

export { Answer };

/** The master answered with an error (4xx/5xx) or something that is not the expected shape. */
export class MasterError extends Error {
  override name = "MasterError";
  constructor(
    message: string,
    readonly status: number,
    readonly retryable: boolean,
    options?: ErrorOptions,
  ) {
    super(message, options);
  }
}

const Position = z.object({ position: z.number().int().nonnegative() });
const Heartbeat = z.looseObject({ computerId: z.string() });
const ErrorBody = z.object({ error: z.object({ code: z.string(), message: z.string() }) });


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

export interface RequestBody {
  releaseUrl: string;
  reference: string;
  softwareType?: string;
  parameters?: Record<string, string>;
  sla?: Record<string, string>;
  shared?: boolean;
  state?: "started" | "stopped" | "destroyed";
}

/**
 * The master's HTTP API as the node uses it: every answer parsed with zod. Every call carries
 * the node's token; a call for a partition adds `x-slap-partition`, which the master accepts only
 * for a partition of the token's own computer.
 */
export class MasterClient {
  /**
   * @param seen the log position the node has seen: sent as `x-slap-seen`, so the master answers
   *   from read models that include it (the node acts on an allocation the moment it sees it,
   *   which may be before the master's own read model has it).
   */
  constructor(
    private readonly baseUrl: string,
    private readonly computerId: string,
    private readonly token: string,
    private readonly seen?: () => number,
  ) {}

  private async call<T>(
    schema: z.ZodType<T>,
    method: string,
    path: string,
    headers: Record<string, string>,
    body?: unknown,
    options: { timeoutMs?: number; seen?: boolean } = {},
  ): Promise<T> {
    let response: Response;
    try {
      response = await fetch(new URL(path, this.baseUrl), {
        method,
        headers: {
          ...headers,
          authorization: `Bearer ${this.token}`,
          ...(body === undefined ? {} : { "content-type": "application/json" }),
          ...(this.seen === undefined || options.seen === false ? {} : { "x-slap-seen": String(this.seen()) }),
        },
        ...(body === undefined ? {} : { body: JSON.stringify(body) }),
        signal: AbortSignal.timeout(options.timeoutMs ?? 30_000),
      });
    } catch (error) {
      throw new MasterError(`master unreachable (${method} ${path}): ${error instanceof Error ? error.message : String(error)}`, 0, true, { cause: error });
    }
    const text = await response.text();
    let json: unknown;
    try {
      json = JSON.parse(text);
    } catch (error) {
      throw new MasterError(`master answered ${response.status} with non-JSON to ${method} ${path}`, response.status, response.status >= 500, { cause: error });
    }
    if (!response.ok) {
      const parsed = ErrorBody.safeParse(json);
      const message = parsed.success ? `${parsed.data.error.code}: ${parsed.data.error.message}` : text.slice(0, 500);
      throw new MasterError(`master refused ${method} ${path}: ${message}`, response.status, response.status >= 500);
    }
    const parsed = schema.safeParse(json);
    if (!parsed.success) throw new MasterError(`unexpected answer to ${method} ${path}: ${z.prettifyError(parsed.error)}`, response.status, false);
    return parsed.data;
  }

  /** The node's token alone names it: the agent of its computer. */
  private readonly asNode: Record<string, string> = {};

  private asPartition(partitionId: string): Record<string, string> {
    return { "x-slap-partition": `${this.computerId}/${partitionId}` };
  }

  register(partitions: Array<{ partitionId: string; address: string; ports: { from: number; to: number } }>): Promise<{ position: number }> {
    return this.call(Position, "POST", "/v1/computers", this.asNode, { computerId: this.computerId, partitions });
  }

  /**
   * The node's sign of life (the master shows its computer unresponsive when it has not heard
   * from it for a while). Sent without `x-slap-seen`: it must not wait for the master's read models.
   */
  heartbeat(timeoutMs: number): Promise<{ computerId: string }> {
    return this.call(Heartbeat, "POST", `/v1/computers/${encodeURIComponent(this.computerId)}/heartbeat`, this.asNode, undefined, { timeoutMs, seen: false });
  }

  reportSoftware(releaseUrl: string, status: "building" | "available" | "error" | "destroyed", log?: string): Promise<{ position: number }> {
    return this.call(Position, "POST", `/v1/computers/${encodeURIComponent(this.computerId)}/software`, this.asNode, {
      releaseUrl,
      status,
      ...(log === undefined ? {} : { log: log.slice(-60_000) }),
    });
  }

  reportStatus(partitionId: string, instanceId: string, report: StatusReport): Promise<{ position: number }> {
    const body = { ...report, ...(report.message === undefined ? {} : { message: report.message.slice(0, 60_000) }) };
    return this.call(Position, "POST", `/v1/instances/${encodeURIComponent(instanceId)}/status`, this.asPartition(partitionId), body);
  }

  publish(partitionId: string, instanceId: string, parameters: Record<string, string>): Promise<{ position: number }> {
    return this.call(Position, "POST", `/v1/instances/${encodeURIComponent(instanceId)}/connection`, this.asPartition(partitionId), { parameters });
  }

  bang(
    partitionId: string,
    instanceId: string,
    message: string,
    details: { service?: string; exitCode?: number; signal?: string; logTail?: string } = {},
  ): Promise<{ position: number }> {
    return this.call(Position, "POST", `/v1/instances/${encodeURIComponent(instanceId)}/bang`, this.asPartition(partitionId), {
      ...details,
      ...(details.logTail === undefined ? {} : { logTail: details.logTail.slice(-60_000) }),
      message: message.slice(0, 60_000),
    });
  }

  destroyed(partitionId: string, instanceId: string): Promise<{ position: number }> {
    return this.call(Position, "POST", `/v1/instances/${encodeURIComponent(instanceId)}/destroyed`, this.asPartition(partitionId), {});
  }

  request(partitionId: string, body: RequestBody): Promise<Answer> {
    return this.call(Answer, "POST", "/v1/requests", this.asPartition(partitionId), body);
  }
}
