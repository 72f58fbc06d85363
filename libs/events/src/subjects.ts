import type { Aggregate } from "./schemas.js";

/**
 * Subject layout. Every aggregate stream is one NATS subject under a prefix (default `slap.ev`):
 *
 * | aggregate | stream key                                   |
 * |-----------|----------------------------------------------|
 * | computer  | `computer.<computerId>.computer`              |
 * | partition | `computer.<computerId>.partition.<partitionId>` |
 * | instance  | `tree.<treeId>.instance.<instanceId>`        |
 *
 * so a consumer follows everything with `slap.ev.>`, one computer (its registration, supplies,
 * software status and partition allocations) with `slap.ev.computer.<id>.>`, one instance tree
 * with `slap.ev.tree.<treeId>.>`, and one instance with `slap.ev.tree.*.instance.<id>`.
 * Ids are tokens (see `Token`), so they can never inject a wildcard or a separator.
 */
export const DEFAULT_SUBJECT_PREFIX = "slap.ev";

/** The stream key of an aggregate: the subject without its prefix. */
export function streamKeyOf(aggregate: Aggregate): string {
  switch (aggregate.kind) {
    case "computer":
      return `computer.${aggregate.computerId}.computer`;
    case "partition":
      return `computer.${aggregate.computerId}.partition.${aggregate.partitionId}`;
    case "instance":
      return `tree.${aggregate.treeId}.instance.${aggregate.instanceId}`;
    default: {
      const never: never = aggregate;
      throw new Error(`unknown aggregate ${JSON.stringify(never)}`);
    }
  }
}

/** Subject filters (relative to the prefix) for following part of the log. */
export const follow = {
  everything: (): string => ">",
  computer: (computerId: string): string => `computer.${computerId}.>`,
  tree: (treeId: string): string => `tree.${treeId}.>`,
  instance: (instanceId: string): string => `tree.*.instance.${instanceId}`,
} as const;

/** Whether a stream key matches a NATS-style filter (`*` one token, `>` the rest). */
export function matchesFilter(streamKey: string, filter: string): boolean {
  const keys = streamKey.split(".");
  const parts = filter.split(".");
  for (let i = 0; i < parts.length; i++) {
    const part = parts[i];
    if (part === ">") return keys.length > i;
    if (i >= keys.length) return false;
    if (part !== "*" && part !== keys[i]) return false;
  }
  return keys.length === parts.length;
}
