import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { pino, type Logger } from "pino";
import { parseConfig, type EventStore, type Startable } from "@slap/events";
import { explainUnplaced } from "@slap/placement";
import { EmbeddedEventStore } from "@slap/eventstore-embedded";
import { connectServiceLog } from "@slap/eventstore-jetstream";
import { MASTER_CONFIG, type MasterConfig } from "./config.js";
import type { ExplainUnplaced } from "./core/answer.js";
import { TokenFileWatch, openOrCreateTokenFile, type Credentials, type TokenEntry } from "./shell/auth.js";
import { checkDashboardFiles, type DashboardFiles } from "./shell/dashboard.js";
import { buildHttpApi } from "./shell/http/server.js";
import { Master } from "./shell/master.js";

/** An invalid configuration: says which setting and why, never a stack trace. */
export class MasterConfigError extends Error {
  override name = "MasterConfigError";
}

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
  /** The accepted tokens, instead of reading the token file (tests): fixed, never reloaded, not listed. */
  credentials?: Credentials;
  /** Tokens accepted besides the token file's, as long as this process lives (one-process mode: its node's). */
  extraTokens?: readonly TokenEntry[];
  /** The dashboard's files, served under `/` and `/dashboard` (`slap up` gives `@slap/dashboard`'s); none without them. */
  dashboard?: DashboardFiles;
}

/** Opens the event store, catches the read models up, and serves the HTTP API. */
export async function runMaster(config: MasterConfig, dependencies: MasterDependencies = {}): Promise<RunningMaster> {
  const result = parseConfig(MASTER_CONFIG, config);
  if (!result.ok) throw new MasterConfigError(`invalid master configuration: ${result.issues.join("; ")}`);
  const parsed = result.config;
  const logger = dependencies.logger ?? pino({ level: parsed.logLevel, base: { service: "master" } });
  // Read before anything is opened: a bad token file, certificate or key stops the start with nothing to close.
  const https = await tlsOf(parsed.tlsCert, parsed.tlsKey);
  const tokenFile = dependencies.credentials === undefined ? await loadCredentials(parsed.tokens ?? join(parsed.data, "tokens.json"), logger, dependencies.extraTokens ?? []) : undefined;
  const credentials = tokenFile ?? dependencies.credentials!;
  const dashboard = dependencies.dashboard === undefined ? undefined : checkDashboardFiles(dependencies.dashboard);
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
  if (companion === undefined && ownStore && parsed.nats === undefined) {
    // Only this process may open the embedded log: without an allocator beside it, nothing is ever placed.
    logger.warn({ data: parsed.data }, "no allocator runs on this master's embedded log: requests stay pending (slap master and slap up run one)");
  }
  const app = buildHttpApi(master, logger, {
    credentials,
    ...(tokenFile === undefined ? {} : { tokenFile }),
    ...(dashboard === undefined ? {} : { dashboard }),
    ...(https === undefined ? {} : { https }),
    limits: {
      writeBytesPerSecond: parsed.writeBytesPerSecond,
      writeBytesBurst: parsed.writeBytesBurst,
      writesPerSecond: parsed.writesPerSecond,
      writesBurst: parsed.writesBurst,
      heldPerCaller: parsed.heldPerCaller,
      heldTotal: parsed.heldTotal,
    },
  });
  let address: string;
  try {
    await master.start();
    await companion?.start();
    address = await app.listen({ port: parsed.port, host: parsed.host });
  } catch (error) {
    // Close what was opened, so a failed start (a port in use) does not keep the process alive.
    tokenFile?.close();
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
      tokenFile?.close();
      await app.close();
      await companion?.stop();
      await master.stop();
      if (ownStore) await store.close();
    },
  };
}

/** The token file, created with an admin token when missing, and watched: a change is read again without a restart. */
async function loadCredentials(path: string, logger: Logger, extra: readonly TokenEntry[]): Promise<TokenFileWatch> {
  const { credentials, created } = await openOrCreateTokenFile(path);
  if (created !== undefined) logger.info({ tokens: path, adminToken: created.adminTokenFile }, "created the token file with one admin token");
  else logger.info({ tokens: path, count: credentials.size }, "token file loaded");
  return TokenFileWatch.open(path, logger, extra);
}

/** The certificate and key to serve HTTPS with (PEM files), both or neither (the configuration's rule checks it). */
async function tlsOf(cert: string | undefined, key: string | undefined): Promise<{ cert: Buffer; key: Buffer } | undefined> {
  if (cert === undefined || key === undefined) return undefined;
  const read = async (path: string, what: string): Promise<Buffer> => {
    try {
      return await readFile(path);
    } catch (error) {
      throw new MasterConfigError(`cannot read the TLS ${what} ${path}: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}`);
    }
  };
  return { cert: await read(cert, "certificate (--tls-cert)"), key: await read(key, "key (--tls-key)") };
}
