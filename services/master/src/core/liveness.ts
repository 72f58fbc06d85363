/**
 * Whether a computer's node answers: `responsive` when the master heard from it (a heartbeat or
 * any other call with its token) within `staleAfterMs`, `unresponsive` when it has not,
 * `unknown` when the master has not heard from it since it started and has not been up long
 * enough to tell. Liveness is not an event: it is what this master process saw, now.
 */
export type LivenessState = "responsive" | "unresponsive" | "unknown";

export interface Liveness {
  state: LivenessState;
  /** When the master last heard from the node (ISO-8601); null: not since the master started. */
  lastSeen: string | null;
}

/** The liveness of an instance's node, as shown in the instance views: the computer it runs on. */
export interface NodeLiveness extends Liveness {
  computerId: string;
}

export interface LivenessClock {
  /** Now, in ms since the epoch. */
  now: number;
  /** When this master started hearing (ms since the epoch). */
  startedAt: number;
  /** Silent for longer than this: unresponsive (3 × the nodes' heartbeat). */
  staleAfterMs: number;
}

/**
 * The liveness of a node last heard from at `lastSeenMs` (undefined: not heard from since the
 * master started). Never heard from: `unknown` for the first `staleAfterMs` of the master's life
 * (a node heartbeating normally is heard from within that time), `unresponsive` after.
 */
export function livenessOf(lastSeenMs: number | undefined, clock: LivenessClock): Liveness {
  if (lastSeenMs === undefined) {
    return { state: clock.now - clock.startedAt > clock.staleAfterMs ? "unresponsive" : "unknown", lastSeen: null };
  }
  return { state: clock.now - lastSeenMs > clock.staleAfterMs ? "unresponsive" : "responsive", lastSeen: new Date(lastSeenMs).toISOString() };
}
