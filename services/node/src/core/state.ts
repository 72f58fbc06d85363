import { createHash } from "node:crypto";
import { canonicalJson, type ParameterMap } from "@slap/events";
import { z } from "zod";

/** `<root>/state/<partition>/state.json`: what the node last did with the partition's instance. */
export const DeployedState = z.object({
  instanceId: z.string(),
  serial: z.number().int(),
  /** The desired-state revision the processing worked from (absent in files of nodes before it). */
  revision: z.number().int().optional(),
  requestedState: z.enum(["started", "stopped", "destroyed"]),
  parametersHash: z.string(),
  outcome: z.enum(["started", "stopped", "error", "waiting", "destroyed"]),
  processedAt: z.string(),
});
export type DeployedState = z.infer<typeof DeployedState>;

/** What the instance asks for now, as far as deciding whether to reprocess goes. */
export interface Wanted {
  instanceId: string;
  serial: number;
  /** The partition entry's revision in the desired state: newer than the one processed means another run. */
  revision: number;
  requestedState: "started" | "stopped" | "destroyed";
  parameters: ParameterMap;
}

/** A stable hash of a parameters map (key order does not matter, at any depth). */
export function parametersHash(parameters: ParameterMap): string {
  const sorted = Object.keys(parameters)
    .sort()
    .map((k) => [k, parameters[k]]);
  return createHash("sha256").update(canonicalJson(sorted)).digest("hex").slice(0, 16);
}

export type ProcessDecision = { process: false } | { process: true; reason: "new" | "changed" | "periodicity" | "adopt" | "retry" };

/** A processing that ended in error is tried again after this long even if nothing changed. */
export const RETRY_ERROR_AFTER_MS = 60_000;

/**
 * Whether to process a partition's instance: when nothing was deployed, when the instance
 * changed since (a newer desired-state revision; serial, requested state, parameters), at least once per `maxPeriodicityMs`,
 * once after the node started (`adopted` false: its services must come back), and a minute
 * after a processing that ended in error.
 */
export function decideProcessing(
  state: DeployedState | undefined,
  wanted: Wanted,
  options: { now: number; lastProcessedAt: number | undefined; maxPeriodicityMs: number; adopted: boolean },
): ProcessDecision {
  if (state === undefined || state.instanceId !== wanted.instanceId) return { process: true, reason: "new" };
  if (
    (state.revision !== undefined && wanted.revision > state.revision) ||
    state.serial !== wanted.serial ||
    state.requestedState !== wanted.requestedState ||
    state.parametersHash !== parametersHash(wanted.parameters)
  ) {
    return { process: true, reason: "changed" };
  }
  if (state.outcome === "destroyed") return { process: false };
  if (!options.adopted) return { process: true, reason: "adopt" };
  const last = options.lastProcessedAt ?? Date.parse(state.processedAt);
  if (Number.isNaN(last) || options.now - last >= options.maxPeriodicityMs) return { process: true, reason: "periodicity" };
  if (state.outcome === "error" && options.now - last >= Math.min(RETRY_ERROR_AFTER_MS, options.maxPeriodicityMs)) return { process: true, reason: "retry" };
  return { process: false };
}

/** Whether two states differ in anything but their time (the state file is rewritten only then). */
export function sameDeployment(a: DeployedState | undefined, b: DeployedState): boolean {
  return (
    a !== undefined &&
    a.instanceId === b.instanceId &&
    a.serial === b.serial &&
    a.revision === b.revision &&
    a.requestedState === b.requestedState &&
    a.parametersHash === b.parametersHash &&
    a.outcome === b.outcome
  );
}
