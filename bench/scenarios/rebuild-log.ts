import type { DomainEvent, EventOf, EventStore } from "@slap/events";
import { fixtures } from "@slap/testkit";
import { z } from "zod";
import { pipelined } from "./common.js";

const RELEASE = "https://lab.example.net/software/kvdb/software.cfg";
const PARTITIONS = 100;
/** Events per instance in the written log (see `instanceStory`). */
export const EVENTS_PER_INSTANCE = 10;
/** Events per computer: registered, release supplied, release available. */
const EVENTS_PER_COMPUTER = 3;

export interface WrittenLog {
  instances: number;
  computers: number;
  events: number;
}

/**
 * Writes a log of about `events` events shaped like a busy deployment: computers of 100
 * partitions with the release available, and instances that each live a full story — requested,
 * allocated, processing, connection published, started with promises and processes, banged,
 * reprocessed, re-published, started — one event per commit, as the services append them.
 */
export async function writeLog(store: EventStore, events: number, window: number, tag: string): Promise<WrittenLog> {
  const instances = Math.max(1, Math.floor(events / EVENTS_PER_INSTANCE));
  const computers = Math.ceil(instances / PARTITIONS);
  const computerIds = Array.from({ length: computers }, (_, c) => `${tag}C${c}`);
  await pipelined(computerIds, window, async (id) => {
    for (const event of [fixtures.computerRegistered(id, PARTITIONS), fixtures.softwareSupplied(id, RELEASE), fixtures.softwareStatus(id, RELEASE, "available")]) {
      await store.append([event], { expectedVersion: "any" });
    }
  });
  const CHUNK = 1_000;
  for (let from = 0; from < instances; from += CHUNK) {
    const stories = Array.from({ length: Math.min(CHUNK, instances - from) }, (_, k) => instanceStory(tag, from + k));
    // Each instance's commits in order, instances in parallel.
    await pipelined(stories, Math.max(1, Math.floor(window / 4)), async (story) => {
      for (const event of story) await store.append([event], { expectedVersion: "any" });
    });
  }
  return { instances, computers, events: instances * EVENTS_PER_INSTANCE + computers * EVENTS_PER_COMPUTER };
}

/** The ten events of instance `i`, on partition `i % 100` of computer `i / 100`. */
function instanceStory(tag: string, i: number): DomainEvent[] {
  const instanceId = `${tag}i${i}`;
  const computerId = `${tag}C${Math.floor(i / PARTITIONS)}`;
  const partitionId = `slappart${i % PARTITIONS}`;
  const where = { computerId, partitionId };
  const requested = fixtures.instanceRequested(instanceId, {
    releaseUrl: RELEASE,
    reference: `instance ${i}`,
    parameters: { "memory-mb": String(512 + (i % 8) * 256), "cpu-count": String(1 + (i % 4)), "admin-email": `owner-${i % 97}@example.org` },
  });
  const allocated = fixtures.partitionAllocated(computerId, partitionId, instanceId);
  const status = (state: "processing" | "started"): EventOf<"InstanceStatusReported"> => ({
    ...fixtures.instanceBanged(instanceId),
    type: "InstanceStatusReported",
    data: {
      status: state,
      ...where,
      ...(state === "started"
        ? {
            promises: [
              { name: "http", ok: true, message: "200 OK", durationMs: 3 },
              { name: "disk", ok: true, message: "12% used", durationMs: 1 },
            ],
            processes: [
              { name: "server", state: "running", pid: 1000 + (i % 30_000) },
              { name: "backup", state: "running", pid: 2000 + (i % 30_000) },
            ],
          }
        : {}),
    },
  });
  const connection = (n: number) =>
    fixtures.connectionPublished(instanceId, { url: `http://10.0.${i % 250}.${n}:8080/`, "password": `s3cret-${i}-${n}`, "instance-id": instanceId }, where);
  return [
    requested,
    allocated,
    status("processing"),
    connection(1),
    status("started"),
    fixtures.instanceBanged(instanceId),
    status("processing"),
    status("started"),
    connection(2),
    status("started"),
  ];
}

/** What `rebuild-child.ts` rebuilds (its one argument, JSON). */
export const RebuildTarget = z.discriminatedUnion("store", [
  z.object({ store: z.literal("embedded"), dir: z.string().min(1), instances: z.number().int().positive() }),
  z.object({
    store: z.literal("jetstream"),
    servers: z.string().min(1),
    streamName: z.string().min(1),
    subjectPrefix: z.string().min(1),
    instances: z.number().int().positive(),
  }),
]);
export type RebuildTarget = z.infer<typeof RebuildTarget>;

export const RebuildResult = z.object({
  events: z.number().int().nonnegative(),
  ms: z.number().positive(),
  maxRssMb: z.number().positive(),
  heapUsedMb: z.number().positive(),
  instances: z.number().int().nonnegative(),
});
export type RebuildResult = z.infer<typeof RebuildResult>;

