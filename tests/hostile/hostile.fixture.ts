/**
 * What the hostile-input tests share: the fuzz seed, a tally of the inputs tried per surface, and
 * a master over an embedded log in a temporary folder, with an in-process Fastify app to
 * `inject` into. Identities are testkit's `as` (bearer tokens) and `tokenFile`.
 */
import { join } from "node:path";
import { Writable } from "node:stream";
import { pino, type Logger } from "pino";
import { streamKeyOf, type InstanceView } from "@slap/events";
import { EmbeddedEventStore } from "@slap/eventstore-embedded";
import { partitionAllocatedEvent } from "@slap/placement";
import { tempDir, tokenFile } from "@slap/testkit";
import { monotonicFactory } from "ulid";
import { DASHBOARD_DIR } from "@slap/dashboard";
import { buildHttpApi, Credentials, readDashboardFolder, runMaster, type RunningMaster } from "@slap/master";

/** `SLAP_FUZZ_SEED` when set (to replay a failure), else a fixed seed: every run tries the same inputs. */
export const FUZZ_SEED: number = (() => {
  const raw = process.env.SLAP_FUZZ_SEED;
  if (raw === undefined || raw === "") return 7_2026;
  const seed = Number(raw);
  if (!Number.isSafeInteger(seed)) throw new Error(`SLAP_FUZZ_SEED must be an integer, got ${JSON.stringify(raw)}`);
  return seed;
})();

/**
 * fast-check parameters: the seed and a bounded number of runs. On a failure fast-check reports
 * the seed, the path to replay and the counterexample, with the assertion's message.
 */
export function runs(numRuns: number): { seed: number; numRuns: number; includeErrorInReport: true } {
  return { seed: FUZZ_SEED, numRuns, includeErrorInReport: true };
}

/** How many inputs each surface was tried with. */
export class Tally {
  private readonly counts = new Map<string, number>();

  add(surface: string, n = 1): void {
    this.counts.set(surface, (this.counts.get(surface) ?? 0) + n);
  }

  get total(): number {
    return [...this.counts.values()].reduce((a, b) => a + b, 0);
  }

  lines(): string[] {
    return [...[...this.counts].map(([surface, n]) => `${surface}: ${n} inputs`), `total: ${this.total} inputs (seed ${FUZZ_SEED})`];
  }
}

// ---------------------------------------------------------------------------------------------
// A master to attack
// ---------------------------------------------------------------------------------------------

/** A logger that keeps only what went wrong: a 5xx is logged at error ("request failed"). */
export function errorLogger(): { logger: Logger; errors: Array<Record<string, unknown>> } {
  const errors: Array<Record<string, unknown>> = [];
  const sink = new Writable({
    write(chunk: Buffer, _encoding, done) {
      for (const line of chunk.toString().split("\n")) {
        if (line === "") continue;
        const record = JSON.parse(line) as Record<string, unknown>;
        if (typeof record.level === "number" && record.level >= 50) errors.push(record);
      }
      done();
    },
  });
  return { logger: pino({ level: "warn" }, sink), errors };
}

export interface HostileMaster {
  dir: string;
  store: EmbeddedEventStore;
  running: RunningMaster;
  /** A second Fastify app over the same master, for `inject` (no socket). */
  app: ReturnType<typeof buildHttpApi>;
  tokens: string;
  /** Error lines the master logged (a 5xx logs one). */
  errors: Array<Record<string, unknown>>;
  /** Places an instance on a partition, as the allocator would (no allocator runs: the log stays quiet between inputs). */
  allocate(instanceId: string, computerId: string, partitionId: string): Promise<void>;
  stop(): Promise<void>;
}

/** A master over an embedded log in a temporary folder, no allocator (nothing appends unless a test does). */
export async function startHostileMaster(identities: { users: readonly string[]; computers: readonly string[] }): Promise<HostileMaster> {
  const dir = await tempDir("slap-hostile-");
  const { logger, errors } = errorLogger();
  const tokens = tokenFile(dir.path, identities);
  const store = await EmbeddedEventStore.open({ dir: join(dir.path, "log"), logger });
  const running = await runMaster({ port: 0, host: "127.0.0.1", data: join(dir.path, "log"), tokens, logLevel: "warn" }, { store, logger });
  // With the dashboard's files, as `slap up` serves them: its paths are public routes too.
  const app = buildHttpApi(running.master, logger, { credentials: await Credentials.load(tokens), dashboard: await readDashboardFolder(DASHBOARD_DIR) });
  await app.ready();
  const newId = monotonicFactory();
  return {
    dir: dir.path,
    store,
    running,
    app,
    tokens,
    errors,
    async allocate(instanceId, computerId, partitionId) {
      const instance: InstanceView | undefined = running.master.instance(instanceId);
      if (instance === undefined) throw new Error(`no instance ${instanceId} to allocate`);
      const event = partitionAllocatedEvent(instance, { computerId, partitionId }, { id: newId(), time: new Date().toISOString() });
      const { version } = await store.readStream(streamKeyOf(event.aggregate));
      const { position } = await store.append([event], { expectedVersion: version });
      await running.master.settled(position);
    },
    async stop() {
      await app.close();
      await running.stop();
      await store.close();
      await dir.dispose();
    },
  };
}

/** Rejects with a clear message when `promise` takes longer than `ms`: a hang is a failure, not a stuck test. */
export async function within<T>(ms: number, what: string, promise: Promise<T>): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`no answer within ${ms} ms (a hang?): ${what}`)), ms);
  });
  try {
    return await Promise.race([promise, deadline]);
  } finally {
    clearTimeout(timer);
  }
}
