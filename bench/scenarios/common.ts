import { jetstreamManager } from "@nats-io/jetstream";
import { connect } from "@nats-io/transport-node";
import { rebuild, type DomainEvent, type EventOf, type EventStore, type InstancesView, type Projection } from "@slap/events";
import { fixtures } from "@slap/testkit";
import { perSecond, timed } from "../stats.js";
import type { ScenarioContext } from "./types.js";

/**
 * The bench payload: InstanceRequested events with five parameters, each on its own instance
 * (so its own stream: `expectedVersion: 0` holds for every append). ~700 bytes of JSON each.
 */
export function instanceRequests(count: number, tag: string): Array<EventOf<"InstanceRequested">> {
  return Array.from({ length: count }, (_, i) =>
    fixtures.instanceRequested(`${tag}-${i}`, {
      reference: `bench instance ${i}`,
      releaseUrl: "https://lab.example.net/software/kvdb/software.cfg",
      parameters: {
        "memory-mb": String(512 + (i % 8) * 256),
        "cpu-count": String(1 + (i % 4)),
        "listen-port": String(20_000 + (i % 1_000)),
        "admin-email": `owner-${i % 97}@example.org`,
        "tls-enabled": i % 2 === 0 ? "true" : "false",
      },
    }),
  );
}

/** Runs `fn` on every item with at most `window` calls in flight. */
export async function pipelined<T>(items: readonly T[], window: number, fn: (item: T) => Promise<unknown>): Promise<void> {
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < items.length) {
      const item = items[next++]!;
      await fn(item);
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, Math.min(window, items.length)) }, worker));
}

/** Runs `fn` on every item, one after the other. */
export async function serially<T>(items: readonly T[], fn: (item: T) => Promise<unknown>): Promise<void> {
  for (const item of items) await fn(item);
}

/** Appends every event as its own commit (stream version 0 expected): serially, then pipelined; answers both rates. */
export async function appendBoth(
  ctx: ScenarioContext,
  store: EventStore,
  serial: readonly DomainEvent[],
  piped: readonly DomainEvent[],
): Promise<{ serial: number; pipelined: number }> {
  const append = (event: DomainEvent) => store.append([event], { expectedVersion: 0 });
  await ctx.settle();
  const one = await timed(() => serially(serial, append));
  await ctx.settle();
  const many = await timed(() => pipelined(piped, ctx.sizes.window, append));
  return { serial: perSecond(serial.length, one.ms), pipelined: perSecond(piped.length, many.ms) };
}

/** A trivial read model: counts events and commits. Measures the replay path, not a fold. */
export const countingProjection: Projection<{ events: number; lastPosition: number }> = {
  name: "bench-counting",
  version: 1,
  initial: () => ({ events: 0, lastPosition: 0 }),
  evolve(state, _event, position) {
    state.events++;
    state.lastPosition = position;
    return state;
  },
};

/** Iterates `readAll()` counting events; answers events/s and checks the count. */
export async function readAllRate(ctx: ScenarioContext, store: EventStore, expected: number): Promise<number> {
  await ctx.settle();
  const { result: seen, ms } = await timed(async () => {
    let n = 0;
    for await (const commit of store.readAll()) n += commit.events.length;
    return n;
  });
  if (seen !== expected) throw new Error(`readAll saw ${seen} events, ${expected} were appended`);
  return perSecond(seen, ms);
}

/** `rebuild(store, projection)`; answers events/s. `check` validates the final state. */
export async function rebuildRate<S>(
  ctx: ScenarioContext,
  store: EventStore,
  projection: Projection<S>,
  events: number,
  check?: (state: S) => void,
): Promise<number> {
  await ctx.settle();
  const { result, ms } = await timed(() => rebuild(store, projection));
  check?.(result.state);
  return perSecond(events, ms);
}

export function expectCount(expected: number): (state: { events: number }) => void {
  return (state) => {
    if (state.events !== expected) throw new Error(`rebuild folded ${state.events} events, ${expected} were appended`);
  };
}

/** Checks that a rebuilt instances read model holds every requested instance. */
export function expectInstances(expected: number): (state: InstancesView) => void {
  return (state) => {
    const n = Object.keys(state.instances).length;
    if (n !== expected) throw new Error(`instancesProjection holds ${n} instances, ${expected} were requested`);
  };
}

/** Deletes a stream (if it exists) so the bench's nats-server store does not grow run after run. */
export async function deleteStream(url: string, name: string): Promise<void> {
  const nc = await connect({ servers: url });
  try {
    const jsm = await jetstreamManager(nc);
    await jsm.streams.delete(name).catch(() => false);
  } finally {
    await nc.close();
  }
}
