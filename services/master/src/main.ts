import { join } from "node:path";
import { z } from "zod";
import { pino, type Logger } from "pino";
import type { EventStore, Startable } from "@slap/events";
import { explainUnplaced } from "@slap/placement";
import { EmbeddedEventStore } from "@slap/eventstore-embedded";
import { connectServiceLog, natsConfigFields } from "@slap/eventstore-jetstream";
import type { ExplainUnplaced } from "./core/answer.js";
import { openOrCreateTokenFile, type Credentials } from "./shell/auth.js";
import { readDashboardFolder } from "./shell/dashboard.js";
import { buildHttpApi } from "./shell/http/server.js";
import { Master } from "./shell/master.js";

/** Configuration of a master process; every field has an environment fallback in `configFromEnv`. */
export const MasterConfig = z.object({
  /** NATS URL: JetStream is the event log. Without it, the embedded log in `data`. */
  nats: z.string().min(1).optional(),
  /** NATS user and password, and the replicas of the stream when the master creates it. */
  ...natsConfigFields,
  streamName: z.string().regex(/^[A-Za-z0-9_-]{1,64}$/).optional(),
  data: z.string().min(1).default("./data"),
  port: z.coerce.number().int().min(0).max(65_535).default(8080),
  host: z.string().min(1).default("127.0.0.1"),
  logLevel: z.enum(["fatal", "error", "warn", "info", "debug", "trace", "silent"]).default("info"),
  /**
   * The token file (see `TokenFile` in shell/auth.ts): who may call the HTTP API. Default
   * `<data>/tokens.json`, created at first start with one admin token in `<data>/admin.token`.
   */
  tokens: z.string().min(1).optional(),
  /**
   * A computer whose node the master has not heard from (heartbeat or any other call) for longer
   * than this is shown `unresponsive` (default 30 s: 3 × the nodes' default heartbeat of 10 s).
   */
  /** A folder of the dashboard's static files, served under `/` and `/dashboard` (`slap up` gives `@slap/dashboard`'s); none without it. */
  dashboard: z.string().min(1).optional(),
  staleAfterMs: z.coerce.number().int().min(1).max(86_400_000).optional(),
});
export type MasterConfig = z.input<typeof MasterConfig>;

export interface RunningMaster {
  url: string;
  master: Master;
  stop(): Promise<void>;
}

export interface MasterDependencies {
  logger?: Logger;
  /** An event store to use instead of opening one from the config (one-process mode, tests). */
  store?: EventStore;
  /** Why an instance is not placed yet; by default placement's own explanation (`explainUnplaced`). */
  explain?: ExplainUnplaced;
  /**
   * Services that share the master's store and life (one-process mode: an allocator on the
   * embedded log, which one process owns): started after the master, stopped before it.
   */
  alongside?: (store: EventStore, logger: Logger) => Startable;
  /** The time of the master's decisions (default: the system clock); tests pass their own to control event times. */
  clock?: () => Date;
  /** The accepted tokens, instead of reading the token file (one-process mode adds its node's token; tests). */
  credentials?: Credentials;
}

/** Opens the event store, catches the read models up, and serves the HTTP API. */
export async function runMaster(config: MasterConfig, dependencies: MasterDependencies = {}): Promise<RunningMaster> {
  const parsed = MasterConfig.parse(config);
  const logger = dependencies.logger ?? pino({ level: parsed.logLevel, base: { service: "master" } });
  // Read before anything is opened: a bad token file stops the start with nothing to close.
  const credentials = dependencies.credentials ?? (await loadCredentials(parsed.tokens ?? join(parsed.data, "tokens.json"), logger));
  const dashboard = parsed.dashboard === undefined ? undefined : await readDashboardFolder(parsed.dashboard);
  const ownStore = dependencies.store === undefined;
  const store =
    dependencies.store ??
    (parsed.nats === undefined
      ? await EmbeddedEventStore.open({ dir: parsed.data, logger })
      : await connectServiceLog({ ...parsed, nats: parsed.nats }, logger));
  const explain = dependencies.explain ?? explainUnplaced;
  const master = new Master(store, logger, explain, {
    ...(dependencies.clock === undefined ? {} : { clock: dependencies.clock }),
    ...(parsed.staleAfterMs === undefined ? {} : { staleAfterMs: parsed.staleAfterMs }),
  });
  const companion = dependencies.alongside?.(store, logger);
  const app = buildHttpApi(master, logger, { credentials, ...(dashboard === undefined ? {} : { dashboard }) });
  let address: string;
  try {
    await master.start();
    await companion?.start();
    address = await app.listen({ port: parsed.port, host: parsed.host });
  } catch (error) {
    // Close what was opened, so a failed start (a port in use) does not keep the process alive.
    await app.close().catch(() => undefined);
    await companion?.stop().catch(() => undefined);
    await master.stop().catch(() => undefined);
    if (ownStore) await store.close().catch(() => undefined);
    throw error;
  }
  logger.info(
    { url: address, store: parsed.nats === undefined ? `embedded ${parsed.data}` : parsed.nats, alongside: companion !== undefined },
    "master listening",
  );
  return {
    url: address,
    master,
    async stop() {
      await app.close();
      await companion?.stop();
      await master.stop();
      if (ownStore) await store.close();
    },
  };
}

/** The token file, created with an admin token when missing. */
async function loadCredentials(path: string, logger: Logger): Promise<Credentials> {
  const { credentials, created } = await openOrCreateTokenFile(path);
  if (created !== undefined) logger.info({ tokens: path, adminToken: created.adminTokenFile }, "created the token file with one admin token");
  else logger.info({ tokens: path, count: credentials.size }, "token file loaded");
  return credentials;
}
