import { ProjectionRunner, cloudProjection, type CheckpointStore, type CloudView, type Commit, type EventStore } from "@slap/events";
import { CapacityIndex, HostIndex, type Reservation } from "@slap/placement";
import type { Logger } from "pino";

/**
 * What the allocator decides on: the cloud read model (computers and instances, one projection)
 * followed from the log, with the indexes kept beside it — free capacity per release (plus this
 * replica's reservations) and ready hosts — and a capacity epoch that grows whenever capacity
 * grows, so a cached "does not fit" from an older epoch is known to be stale.
 */
export class AllocatorReadModel {
  private readonly runner: ProjectionRunner<CloudView>;
  private index = new CapacityIndex();
  private hostIndex: HostIndex | undefined;
  private grown = 0;
  private unsubscribe: (() => void) | undefined;

  constructor(store: EventStore, logger: Logger, checkpoints: CheckpointStore | undefined) {
    this.runner = new ProjectionRunner(store, cloudProjection, {
      logger,
      ...(checkpoints === undefined ? {} : { checkpoints, checkpointEvery: 100_000 }),
    });
  }

  /** The read model. Read-only. */
  get view(): CloudView {
    return this.runner.state;
  }

  /** The last log position folded into the view. */
  get position(): number {
    return this.runner.position;
  }

  /** The capacity index, with this replica's reservations. */
  get capacity(): CapacityIndex {
    return this.index;
  }

  /** Grows whenever capacity grows. */
  get epoch(): number {
    return this.grown;
  }

  waitFor(position: number): Promise<void> {
    return this.runner.waitFor(position);
  }

  /**
   * Catches up with the log and builds the capacity index; `onCommit` then gets every commit
   * folded live. Synchronous from the catch-up to the return: every commit folded so far is in
   * the view the caller reads next, and every later one reaches `onCommit`.
   */
  async start(onCommit: (commit: Commit) => void): Promise<void> {
    this.unsubscribe = this.runner.onCommit((_state, commit) => onCommit(commit));
    await this.runner.start();
    this.index = CapacityIndex.fromView(this.view.computers);
  }

  async stop(): Promise<void> {
    this.unsubscribe?.();
    await this.runner.stop();
  }

  /** A computer changed (registered, a release supplied or reported): answers the releases that gained capacity. */
  syncComputer(computerId: string): string[] {
    return this.grow(this.index.syncComputer(this.view.computers, computerId));
  }

  /** A partition changed (claimed, released): answers the releases that gained capacity. */
  syncPartition(computerId: string, partitionId: string): string[] {
    return this.grow(this.index.syncPartition(this.view.computers, computerId, partitionId));
  }

  /** Holds a partition for a claim in flight. */
  reserve(reservation: Reservation): void {
    this.index.reserve(reservation);
  }

  /** The claim is over: answers the releases that gained capacity. */
  unreserve(computerId: string, partitionId: string): string[] {
    return this.grow(this.index.unreserve(this.view.computers, computerId, partitionId));
  }

  /** The ready hosts, rebuilt from the view after any change. */
  hosts(): HostIndex {
    this.hostIndex ??= HostIndex.fromView(this.view);
    return this.hostIndex;
  }

  /** Something that can make an instance a ready host, or not, happened: the host index is stale. */
  hostsChanged(): void {
    this.hostIndex = undefined;
  }

  /** A shared instance is being attached to this host (counts for spreading them). */
  noteAttached(hostInstanceId: string): void {
    this.hostIndex?.noteAttached(hostInstanceId);
  }

  private grow(releases: string[]): string[] {
    if (releases.length > 0) this.grown++;
    return releases;
  }
}
