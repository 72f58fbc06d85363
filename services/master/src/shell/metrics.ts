import { Counter, Gauge, Histogram, Registry } from "prom-client";
import { READINESS, readinessOf } from "@slap/events";
import type { Master } from "./master.js";

/** The liveness states a node can be in (core/liveness.ts), each a label of `slap_nodes` even when none is in it. */
const LIVENESS_STATES = ["responsive", "unresponsive", "unknown"] as const;

/** How long a scrape waits for the event store's head before it leaves the head and the lag out. */
const HEAD_TIMEOUT_MS = 2_000;

/**
 * The master's Prometheus metrics (`GET /metrics`, prom-client), one registry per HTTP API (a
 * process may run several masters: tests). Request counts and latencies are recorded as requests
 * end; everything else is read from the master when scraped, so a scrape always shows now.
 */
export class MasterMetrics {
  readonly registry = new Registry();
  private readonly requests: Counter<"method" | "route" | "status">;
  private readonly latency: Histogram<"method" | "route">;

  constructor(master: Master) {
    const registers = [this.registry];
    this.requests = new Counter({ name: "slap_http_requests_total", help: "HTTP requests answered, by route (its pattern) and status", labelNames: ["method", "route", "status"], registers });
    this.latency = new Histogram({
      name: "slap_http_request_duration_seconds",
      help: "Time from a request's arrival to its answer, by route (a stream: until it ends)",
      labelNames: ["method", "route"],
      buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60],
      registers,
    });
    new Gauge({
      name: "slap_read_model_position",
      help: "The log position the master's read models are at",
      registers,
      collect() {
        this.set(master.position);
      },
    });
    new Gauge({
      name: "slap_log_head",
      help: "The event log's last position, as its store answers now (absent when it does not answer)",
      registers,
      async collect() {
        const head = await headWithin(master, HEAD_TIMEOUT_MS);
        if (head === undefined) this.reset();
        else this.set(head);
      },
    });
    new Gauge({
      name: "slap_read_model_lag",
      help: "Commits of the log not yet in the read models (head − position; absent when the store does not answer)",
      registers,
      async collect() {
        const head = await headWithin(master, HEAD_TIMEOUT_MS);
        if (head === undefined) this.reset();
        else this.set(Math.max(0, head - master.position));
      },
    });
    new Gauge({
      name: "slap_instances",
      help: "Instances by status (the STATUS of slap instances): ready, pending, error, destroying, destroyed",
      labelNames: ["status"],
      registers,
      collect() {
        const counts = new Map<string, number>(READINESS.map((r) => [r, 0]));
        for (const instance of Object.values(master.instances.instances)) counts.set(readinessOf(instance), (counts.get(readinessOf(instance)) ?? 0) + 1);
        for (const [status, count] of counts) this.set({ status }, count);
      },
    });
    new Gauge({
      name: "slap_allocations",
      help: "Partitions holding an instance (allocations in force)",
      registers,
      collect() {
        this.set(Object.keys(master.computers.bindings).length);
      },
    });
    new Gauge({
      name: "slap_partitions",
      help: "Partitions of every registered computer, by whether one holds an instance",
      labelNames: ["state"],
      registers,
      collect() {
        let used = 0;
        let free = 0;
        for (const computer of Object.values(master.computers.computers)) {
          for (const partition of Object.values(computer.partitions)) {
            if (partition.instanceId === null) free++;
            else used++;
          }
        }
        this.set({ state: "used" }, used);
        this.set({ state: "free" }, free);
      },
    });
    new Gauge({
      name: "slap_nodes",
      help: "Registered computers by their node's liveness, as this master saw it (responsive, unresponsive, unknown)",
      labelNames: ["liveness"],
      registers,
      collect() {
        const counts = new Map<string, number>(LIVENESS_STATES.map((s) => [s, 0]));
        for (const computerId of Object.keys(master.computers.computers)) {
          const state = master.liveness(computerId).state;
          counts.set(state, (counts.get(state) ?? 0) + 1);
        }
        for (const [liveness, count] of counts) this.set({ liveness }, count);
      },
    });
  }

  /** One request answered: `route` is its pattern (`/v1/instances/:instanceId`), or `(none)` for a path no route has. */
  observe(method: string, route: string, status: number, seconds: number): void {
    this.requests.inc({ method, route, status: String(status) });
    this.latency.observe({ method, route }, seconds);
  }

  /** The text exposition format, and its content type. */
  async scrape(): Promise<{ contentType: string; text: string }> {
    return { contentType: this.registry.contentType, text: await this.registry.metrics() };
  }
}

/** The store's head, or undefined if it does not answer within `ms`. */
export async function headWithin(master: Master, ms: number): Promise<number | undefined> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<undefined>((resolve) => (timer = setTimeout(() => resolve(undefined), ms)));
  try {
    return await Promise.race([master.store.head(), timeout]);
  } catch {
    return undefined;
  } finally {
    clearTimeout(timer);
  }
}
