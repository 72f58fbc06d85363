import type { Logger } from "pino";
import { natsConnectOptions } from "./credentials.js";
import { JetStreamEventStore } from "./store.js";

/** What a service's configuration says of its log on JetStream (see `natsConfigFields`). */
export interface ServiceLogConfig {
  /** NATS server URL(s), comma-separated. */
  nats: string;
  streamName?: string | undefined;
  natsUser?: string | undefined;
  natsPassword?: string | undefined;
  replicas?: 1 | 3 | 5 | undefined;
  /** TLS to NATS: the CA file (PEM) of the server's certificate; a client certificate and key for a server that verifies clients. */
  natsCa?: string | undefined;
  natsCert?: string | undefined;
  natsKey?: string | undefined;
}

/** The TLS options of the NATS connection, when the configuration names any file. */
function tlsOf(config: ServiceLogConfig): { tls?: { caFile?: string; certFile?: string; keyFile?: string } } {
  const tls = {
    ...(config.natsCa === undefined ? {} : { caFile: config.natsCa }),
    ...(config.natsCert === undefined ? {} : { certFile: config.natsCert }),
    ...(config.natsKey === undefined ? {} : { keyFile: config.natsKey }),
  };
  return Object.keys(tls).length === 0 ? {} : { tls };
}

/**
 * Opens a service's event log from its configuration: the servers of `nats`, its stream, its NATS
 * user, TLS (`natsCa`, `natsCert`, `natsKey`) and the replicas of the stream when it is created. `deadLetters: false` for a reader that
 * may not publish (a node).
 */
export function connectServiceLog(config: ServiceLogConfig, logger: Logger, options: { deadLetters?: boolean } = {}): Promise<JetStreamEventStore> {
  return JetStreamEventStore.connect({
    servers: config.nats.split(",").map((s) => s.trim()),
    ...(config.streamName === undefined ? {} : { streamName: config.streamName }),
    ...natsConnectOptions(config),
    ...tlsOf(config),
    ...(options.deadLetters === undefined ? {} : { deadLetters: options.deadLetters }),
    logger,
  });
}
