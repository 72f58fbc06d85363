import type { CloudView, ComputersView, InstanceView } from "@slap/events";
import { CapacityIndex, type ComputerCapacity } from "./capacity.js";
import { parseSla } from "./sla.js";

export type PlaceRejectionReason = "NoComputerWithRelease" | "NoFreePartition" | "SlaUnsatisfiable" | "UnknownSlaKey";

/**
 * A placement decision. `version` is the partition stream's version in the view: the claim is
 * appended with it as expected version, so it fails if anything happened to the partition
 * since. A rejection's `detail` is a sentence for the requester ("pending: …").
 */
export type Placement =
  | { ok: true; computerId: string; partitionId: string; version: number }
  | { ok: false; reason: PlaceRejectionReason; detail: string };

export interface PlaceOptions {
  /**
   * The capacity index of `view.computers` (plus this replica's reservations). Without one,
   * an index of the computers with the instance's release is built from the view, which costs
   * O(those computers × partitions): fine for one explanation, not for a placement loop.
   */
  capacity?: CapacityIndex;
  /**
   * The replica's rotation (0 when alone): where it starts on the ring of computers and of
   * partitions, so racing replicas take different partitions (see `ringOffset`).
   */
  rotation?: number;
}

/**
 * Decides where a non-shared instance goes. Pure: the same view, index and rotation always
 * give the same answer.
 *
 * Feasible: a computer with the instance's release available (supplied and installed) and a
 * free partition (no instance, no unreleased superseded claim, not reserved), that satisfies
 * the SLA (`computer_guid`, `network_guid`, `mode=unique_by_network`; see `sla.ts`).
 *
 * Ranking, first fit on a ring: computers in natural id order, starting at the replica's
 * point (`rotation` 0: the first computer), take the first feasible one and its lowest free
 * partition at or after the replica's point (rotation 0: the lowest free partition). With one
 * allocator this fills `COMP-1`, then `COMP-2`…, keeping free capacity together on whole
 * computers, and a freed partition is refilled first. Replicas with other rotations start
 * elsewhere on the ring and fill their own computers, so their claims rarely collide even
 * with hundreds in flight (a "fewest free partitions first" rule would pull every replica onto
 * the same nearly full computer).
 *
 * The instance must be non-shared (see `attachHost`); whether it still needs a partition is
 * the caller's concern (`needsPlacement`).
 */
export function place(instance: InstanceView, view: CloudView, options: PlaceOptions = {}): Placement {
  if (instance.shared) throw new TypeError(`place(): ${instance.instanceId} is a shared instance; use attachHost()`);
  const parsed = parseSla(instance.sla, false);
  if (!parsed.ok) return parsed;
  const { sla } = parsed;
  const capacity = options.capacity ?? CapacityIndex.fromView(view.computers, instance.releaseUrl);
  const rotation = options.rotation ?? 0;
  const url = instance.releaseUrl;

  const withRelease = capacity.available(url);
  if (withRelease.length === 0) {
    return { ok: false, reason: "NoComputerWithRelease", detail: noComputerDetail(url, view.computers) };
  }
  const excluded = sla.uniqueByNetwork ? treeNetworks(instance, view, capacity) : undefined;
  const inScope = (c: ComputerCapacity): boolean =>
    (sla.computerId === null || c.computerId === sla.computerId) && (sla.networkId === null || c.networkId === sla.networkId);
  const matches = (c: ComputerCapacity): boolean =>
    inScope(c) && (excluded === undefined || (c.networkId !== null && !excluded.has(c.networkId)));

  let chosen: ComputerCapacity | undefined;
  if (sla.computerId !== null) {
    const computer = capacity.computer(sla.computerId);
    if (computer !== undefined && computer.free.length > 0 && computer.releases.has(url) && matches(computer)) chosen = computer;
  } else {
    chosen = capacity.firstOpen(url, rotation, matches);
  }
  if (chosen !== undefined) {
    const partitionId = capacity.choosePartition(chosen, rotation)!;
    const version = view.computers.computers[chosen.computerId]?.partitions[partitionId]?.version ?? 0;
    return { ok: true, computerId: chosen.computerId, partitionId, version };
  }

  const slaText = sla.constraints.join(", ");
  const scoped = sla.computerId !== null || sla.networkId !== null ? withRelease.filter(inScope) : withRelease;
  if (scoped.length === 0) {
    return { ok: false, reason: "SlaUnsatisfiable", detail: `SLA ${slaText}: no such computer with ${url} available` };
  }
  const matching = excluded === undefined ? scoped : scoped.filter(matches);
  if (matching.length === 0) {
    const networked = scoped.some((c) => c.networkId !== null);
    return {
      ok: false,
      reason: "SlaUnsatisfiable",
      detail: networked
        ? `SLA ${slaText}: every network with ${url} available already holds an instance of tree ${instance.treeId}`
        : `SLA ${slaText}: no computer with ${url} available belongs to a network`,
    };
  }
  const n = matching.length;
  return {
    ok: false,
    reason: "NoFreePartition",
    detail:
      `no free partition on the ${n} computer${n === 1 ? " that has" : "s that have"} ${url} available` +
      (slaText === "" ? "" : ` and match${n === 1 ? "es" : ""} SLA ${slaText}`),
  };
}

/**
 * Networks already used by the instance's tree: the networks of the computers where its other
 * instances are bound, and of the computers this replica has reserved for them.
 * Computers without a network are not counted (and cannot take a `unique_by_network` instance).
 */
export function treeNetworks(instance: InstanceView, view: CloudView, capacity?: CapacityIndex): Set<string> {
  const networks = new Set<string>();
  const add = (computerId: string): void => {
    const networkId = view.computers.computers[computerId]?.networkId;
    if (networkId !== null && networkId !== undefined) networks.add(networkId);
  };
  for (const id of view.instances.trees[instance.treeId]?.instanceIds ?? []) {
    if (id === instance.instanceId) continue;
    const binding = view.computers.bindings[id];
    if (binding !== undefined) add(binding.computerId);
  }
  for (const computerId of capacity?.reservedComputersOfTree(instance.treeId) ?? []) add(computerId);
  return networks;
}

/** "no computer has X available", and where it is supplied but not installed, if anywhere. */
function noComputerDetail(url: string, computers: ComputersView): string {
  const counts = new Map<string, number>();
  for (const computer of Object.values(computers.computers)) {
    const software = computer.software[url];
    if (software === undefined || !software.supplied) continue;
    counts.set(software.status, (counts.get(software.status) ?? 0) + 1);
  }
  if (counts.size === 0) return `no computer has ${url} available`;
  const states = [...counts].sort(([a], [b]) => (a < b ? -1 : 1)).map(([status, n]) => `${status} on ${n}`);
  return `no computer has ${url} available (supplied: ${states.join(", ")})`;
}
