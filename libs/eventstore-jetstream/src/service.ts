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
}

/**
 * Opens a service's event log from its configuration: the servers of `nats`, its stream, its NATS
 * user and the replicas of the stream when it is created. `deadLetters: false` for a reader that
 * may not publish (a node).
 */
export function connectServiceLog(config: ServiceLogConfig, logger: Logger, options: { deadLetters?: boolean } = {}): Promise<JetStreamEventStore> {
  return JetStreamEventStore.connect({
    servers: config.nats.split(",").map((s) => s.trim()),
    ...(config.streamName === undefined ? {} : { streamName: config.streamName }),
    ...natsConnectOptions(config),
    ...(options.deadLetters === undefined ? {} : { deadLetters: options.deadLetters }),
    logger,
  });
}
