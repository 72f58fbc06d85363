/**
 * The expected versions of this replica's claims. A claim is decided on the read model, where a
 * stream is at the version the model shows; a version learnt from the store (after conflicts)
 * that the model does not show means commits the model skipped (malformed ones). Pure: the read
 * model's position comes in as an argument.
 */
export class ExpectedVersions {
  /** Stream versions learnt from the store that the read model does not show. */
  private readonly learnt = new Map<string, number>();
  /** Conflicts in a row per stream key. */
  private readonly conflicts = new Map<string, number>();

  /**
   * The expected version of a claim decided where the stream is at `shown`, the read model being
   * at `position`. A learnt version is used only once the model has folded every commit up to
   * it: then the commits between `shown` and it were all malformed (skipped by every reader) and
   * the model's state of the stream is exact; before that, a valid commit may still be on its way
   * and the decision could be stale.
   */
  expected(streamKey: string, shown: number, position: number): number {
    const known = this.learnt.get(streamKey);
    if (known === undefined) return shown;
    if (shown >= known) {
      this.learnt.delete(streamKey);
      return shown;
    }
    return position >= known ? known : shown;
  }

  /** The store says the stream is at `version`. */
  learn(streamKey: string, version: number): void {
    this.learnt.set(streamKey, version);
  }

  /** A claim on the stream lost a race: answers how many in a row. */
  conflicted(streamKey: string): number {
    const inARow = (this.conflicts.get(streamKey) ?? 0) + 1;
    this.conflicts.set(streamKey, inARow);
    return inARow;
  }

  /** A claim on the stream was stored: the run of conflicts is over. */
  appended(streamKey: string): void {
    this.conflicts.delete(streamKey);
  }
}
