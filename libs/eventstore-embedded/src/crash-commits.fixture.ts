// Commits for the kill -9 tests, shared by the test and its child: varied sizes, several
// streams, and a content hash that survives decoding (keys sorted, so schema key order is moot).
import { createHash } from "node:crypto";
import { streamKeyOf, type DomainEvent } from "@slap/events";
import { fixtures, type SeededRandom } from "@slap/testkit";

export interface Generated {
  streamKey: string;
  events: DomainEvent[];
  hash: string;
}

/** Instance ids of the streams the writers spread their commits over. */
export const INSTANCES = ["I0", "I1", "I2", "I3", "I4", "I5"] as const;

/** One commit of 1–3 events on a random stream; about 4% are ~100 KiB, 20% a few KiB, the rest small. */
export function generateCommit(random: SeededRandom): Generated {
  const instanceId = random.pick(INSTANCES);
  const roll = random.next();
  const size = roll < 0.04 ? 100 * 1024 : roll < 0.24 ? random.int(1_024, 8_192) : random.int(0, 64);
  const first = fixtures.instanceRequested(instanceId, { parameters: filler(random, size) });
  const events: DomainEvent[] = [first];
  for (let n = random.int(0, 2); n > 0; n--) events.push(fixtures.instanceBanged(instanceId));
  return { streamKey: streamKeyOf(first.aggregate), events, hash: contentHash(events) };
}

/** Parameters holding about `size` characters, in values of at most 50,000 (the schema allows 65,536). */
function filler(random: SeededRandom, size: number): Record<string, string> {
  const out: Record<string, string> = {};
  const unit = random.int(0, 36 ** 6 - 1).toString(36);
  for (let i = 0; size > 0; i++) {
    const length = Math.min(size, 50_000);
    out[`p${i}`] = unit.repeat(Math.ceil(length / unit.length) + 1).slice(0, length);
    size -= length;
  }
  return out;
}

/** sha256 of the events as JSON with sorted keys. */
export function contentHash(events: readonly DomainEvent[]): string {
  return createHash("sha256").update(canonical(events)).digest("hex");
}

function canonical(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonical).join(",")}]`;
  if (value !== null && typeof value === "object") {
    const entries = Object.entries(value as Record<string, unknown>)
      .filter(([, v]) => v !== undefined)
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    return `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${canonical(v)}`).join(",")}}`;
  }
  return JSON.stringify(value);
}
