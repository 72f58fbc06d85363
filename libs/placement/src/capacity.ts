import { isPartitionFree, isReleaseAvailable, type ComputersView } from "@slap/events";
import { lowerBound, naturalCompare, ringOffset } from "./order.js";

/** A partition this replica claimed (append in flight or not yet seen by its read model). */
export interface Reservation {
  instanceId: string;
  treeId: string;
  computerId: string;
  partitionId: string;
}

/** What placement needs to know about one computer. */
export interface ComputerCapacity {
  readonly computerId: string;
  readonly networkId: string | null;
  /** Every partition id, in natural order. */
  readonly partitionIds: readonly string[];
  /** Partitions that are free in the view and not reserved, in natural order. */
  readonly free: readonly string[];
  /** Releases available on the computer (supplied and installed). */
  readonly releases: ReadonlySet<string>;
}

interface Entry extends ComputerCapacity {
  networkId: string | null;
  partitionIds: string[];
  free: string[];
  releases: Set<string>;
}

interface ReleaseEntry {
  /** Computers with the release available, natural id order. */
  all: Entry[];
  /** Those of `all` with at least one free partition. */
  open: Entry[];
}

const byId = (entry: Entry): string => entry.computerId;
const self = (id: string): string => id;

/** `computerId/partitionId`: ids are tokens, so `/` cannot occur in either. */
export const partitionKey = (computerId: string, partitionId: string): string => `${computerId}/${partitionId}`;

/**
 * The capacity index: for each release, the computers that have it available and which of
 * them have a free partition, kept in natural id order and maintained incrementally. Pure
 * data (no I/O): the allocator shell keeps one in step with its read model by calling
 * `syncComputer` / `syncPartition` for every commit that touches a computer or a partition,
 * and `reserve` / `unreserve` around its own claims; the master can build one with `fromView`
 * and pass it to `place` for many explanations over the same view.
 *
 * Invariant: after the syncs of every commit folded into `view`, `free` of each computer is
 * exactly its partitions that `isPartitionFree` in the view and are not reserved.
 */
export class CapacityIndex {
  private readonly entries = new Map<string, Entry>();
  private readonly releases = new Map<string, ReleaseEntry>();
  private readonly reservations = new Map<string, Reservation>();
  private readonly reservedByTree = new Map<string, Map<string, number>>();

  /**
   * An index of the computers of the view (no reservations): O(computers × partitions). With
   * `releaseUrl`, only the computers that have that release available are indexed, which is
   * all one placement or explanation of an instance of that release needs.
   */
  static fromView(view: ComputersView, releaseUrl?: string): CapacityIndex {
    const index = new CapacityIndex();
    for (const [computerId, computer] of Object.entries(view.computers)) {
      if (releaseUrl === undefined || isReleaseAvailable(computer, releaseUrl)) index.syncComputer(view, computerId);
    }
    return index;
  }

  /**
   * Recomputes one computer from the view (its network, partitions and available releases).
   * @returns the releases for which the computer gained capacity (newly available with a free
   *   partition, or more free partitions than before): waiting instances of those may now fit.
   */
  syncComputer(view: ComputersView, computerId: string): string[] {
    const computer = view.computers[computerId];
    const previous = this.entries.get(computerId);
    const freeBefore = previous?.free.length ?? 0;
    const releasesBefore = new Set(previous?.releases ?? []);
    const networkBefore = previous?.networkId;
    if (previous !== undefined) this.detach(previous);
    if (computer === undefined) {
      this.entries.delete(computerId);
      return [];
    }
    const partitionIds = Object.keys(computer.partitions).sort(naturalCompare);
    const entry: Entry = previous ?? { computerId, networkId: null, partitionIds: [], free: [], releases: new Set() };
    entry.networkId = computer.networkId;
    entry.partitionIds = partitionIds;
    entry.free = partitionIds.filter(
      (id) => isPartitionFree(computer.partitions[id]!) && !this.reservations.has(partitionKey(computerId, id)),
    );
    entry.releases = new Set(Object.keys(computer.software).filter((url) => isReleaseAvailable(computer, url)));
    this.entries.set(computerId, entry);
    this.attach(entry);
    if (entry.free.length === 0) return [];
    // A new network can satisfy network_guid / unique_by_network where the old one could not.
    if (networkBefore !== entry.networkId) return [...entry.releases];
    return [...entry.releases].filter((url) => !releasesBefore.has(url) || entry.free.length > freeBefore);
  }

  /**
   * Recomputes one partition from the view (cheaper than `syncComputer` after a partition commit).
   * @returns the releases that gained capacity (the partition became free).
   */
  syncPartition(view: ComputersView, computerId: string, partitionId: string): string[] {
    const entry = this.entries.get(computerId);
    const partition = view.computers[computerId]?.partitions[partitionId];
    if (entry === undefined || partition === undefined) return this.syncComputer(view, computerId);
    const at = lowerBound(entry.partitionIds, partitionId, self);
    if (entry.partitionIds[at] !== partitionId) return this.syncComputer(view, computerId);
    const free = isPartitionFree(partition) && !this.reservations.has(partitionKey(computerId, partitionId));
    return this.setFree(entry, partitionId, free) && free ? [...entry.releases] : [];
  }

  /** Takes a partition out of the free lists until `unreserve`. */
  reserve(reservation: Reservation): void {
    const key = partitionKey(reservation.computerId, reservation.partitionId);
    if (this.reservations.has(key)) return;
    this.reservations.set(key, reservation);
    let computers = this.reservedByTree.get(reservation.treeId);
    if (computers === undefined) this.reservedByTree.set(reservation.treeId, (computers = new Map<string, number>()));
    computers.set(reservation.computerId, (computers.get(reservation.computerId) ?? 0) + 1);
    const entry = this.entries.get(reservation.computerId);
    if (entry !== undefined) this.setFree(entry, reservation.partitionId, false);
  }

  /**
   * Drops a reservation and re-reads the partition from the view.
   * @returns the releases that gained capacity (the partition is free again).
   */
  unreserve(view: ComputersView, computerId: string, partitionId: string): string[] {
    const key = partitionKey(computerId, partitionId);
    const reservation = this.reservations.get(key);
    if (reservation === undefined) return [];
    this.reservations.delete(key);
    const computers = this.reservedByTree.get(reservation.treeId);
    const count = computers?.get(computerId) ?? 0;
    if (count <= 1) computers?.delete(computerId);
    else computers?.set(computerId, count - 1);
    if (computers?.size === 0) this.reservedByTree.delete(reservation.treeId);
    return this.syncPartition(view, computerId, partitionId);
  }

  isReserved(computerId: string, partitionId: string): boolean {
    return this.reservations.has(partitionKey(computerId, partitionId));
  }

  /** Computers holding a reservation for an instance of `treeId` (for `mode=unique_by_network`). */
  reservedComputersOfTree(treeId: string): Iterable<string> {
    return this.reservedByTree.get(treeId)?.keys() ?? [];
  }

  computer(computerId: string): ComputerCapacity | undefined {
    return this.entries.get(computerId);
  }

  /** Computers with `releaseUrl` available, full or not, in natural id order. */
  available(releaseUrl: string): readonly ComputerCapacity[] {
    return this.releases.get(releaseUrl)?.all ?? [];
  }

  /**
   * The first computer, walking the ring of computers that have `releaseUrl` available and a
   * free partition, that `accept`s. The walk starts at the computer at `ringOffset(rotation)`
   * of all computers with the release available (full ones included, so the start point does
   * not move as computers fill) and goes up in natural id order, wrapping around.
   */
  firstOpen(releaseUrl: string, rotation: number, accept: (computer: ComputerCapacity) => boolean): ComputerCapacity | undefined {
    const release = this.releases.get(releaseUrl);
    if (release === undefined || release.open.length === 0) return undefined;
    const pivot = release.all[ringOffset(rotation, release.all.length)]!.computerId;
    const start = lowerBound(release.open, pivot, byId);
    const n = release.open.length;
    for (let k = 0; k < n; k++) {
      const entry = release.open[(start + k) % n]!;
      if (accept(entry)) return entry;
    }
    return undefined;
  }

  /**
   * The partition to take on a computer with a free one: the first free partition at or after
   * the partition at `ringOffset(rotation)` of all its partitions, wrapping (rotation 0: the
   * lowest free partition id).
   */
  choosePartition(computer: ComputerCapacity, rotation: number): string | undefined {
    if (computer.free.length === 0) return undefined;
    const pivot = computer.partitionIds[ringOffset(rotation, computer.partitionIds.length)]!;
    const at = lowerBound(computer.free, pivot, self);
    return computer.free[at % computer.free.length];
  }

  /** Sets a partition's presence in its computer's free list. @returns whether it changed. */
  private setFree(entry: Entry, partitionId: string, free: boolean): boolean {
    const at = lowerBound(entry.free, partitionId, self);
    const present = entry.free[at] === partitionId;
    if (present === free) return false;
    const wasOpen = entry.free.length > 0;
    if (free) entry.free.splice(at, 0, partitionId);
    else entry.free.splice(at, 1);
    const isOpen = entry.free.length > 0;
    if (wasOpen !== isOpen) {
      for (const url of entry.releases) {
        const release = this.releases.get(url);
        if (release === undefined) continue;
        if (isOpen) insert(release.open, entry);
        else remove(release.open, entry);
      }
    }
    return true;
  }

  private detach(entry: Entry): void {
    for (const url of entry.releases) {
      const release = this.releases.get(url);
      if (release === undefined) continue;
      remove(release.all, entry);
      remove(release.open, entry);
      if (release.all.length === 0) this.releases.delete(url);
    }
  }

  private attach(entry: Entry): void {
    for (const url of entry.releases) {
      let release = this.releases.get(url);
      if (release === undefined) this.releases.set(url, (release = { all: [], open: [] }));
      insert(release.all, entry);
      if (entry.free.length > 0) insert(release.open, entry);
    }
  }
}

function insert(sorted: Entry[], entry: Entry): void {
  const at = lowerBound(sorted, entry.computerId, byId);
  if (sorted[at] !== entry) sorted.splice(at, 0, entry);
}

function remove(sorted: Entry[], entry: Entry): void {
  const at = lowerBound(sorted, entry.computerId, byId);
  if (sorted[at] === entry) sorted.splice(at, 1);
}
