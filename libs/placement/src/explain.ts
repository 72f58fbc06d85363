import type { ComputersView, InstanceView } from "@slap/events";
import { parseSla } from "./sla.js";
import { attachHost, type AttachOptions, type AttachRejectionReason } from "./hosts.js";
import { place, type PlaceOptions, type PlaceRejectionReason } from "./placement.js";
import type { CloudView } from "@slap/events";
import { isPending } from "./view.js";

export type PendingReason = PlaceRejectionReason | AttachRejectionReason;

/** Where an instance stands with respect to allocation, for the master's answers and the dashboard. */
export type Explanation =
  | { status: "placed"; computerId: string; partitionId: string }
  | { status: "attached"; hostInstanceId: string; hostTreeId: string }
  /** Destroyed, or to be destroyed and holding nothing: there is nothing to allocate. */
  | { status: "destroyed" }
  /** Feasible right now: an allocator is about to claim it (or has, and the view is behind). */
  | { status: "allocating"; detail: string }
  /** Not feasible: the request waits for capacity (or for an SLA fix), and `detail` says why. */
  | { status: "pending"; reason: PendingReason; detail: string };

/**
 * Explains an instance from a view with the same rules the allocator uses (`place`,
 * `attachHost`). Pure. For many instances over one view, pass a `capacity` index
 * (`CapacityIndex.fromView`) and a `hosts` index (`HostIndex.fromView`) built once.
 */
export function explain(instance: InstanceView, view: CloudView, options: PlaceOptions & AttachOptions = {}): Explanation {
  if (!isPending(instance, view)) {
    if (instance.shared && instance.host !== null) {
      return { status: "attached", hostInstanceId: instance.host.instanceId, hostTreeId: instance.host.treeId };
    }
    const binding = view.computers.bindings[instance.instanceId];
    if (!instance.shared && binding !== undefined) return { status: "placed", ...binding };
    return { status: "destroyed" };
  }
  if (instance.shared) {
    const attachment = attachHost(instance, view, options);
    return attachment.ok
      ? { status: "allocating", detail: `host ${attachment.hostInstanceId} is ready; an allocator is attaching it` }
      : { status: "pending", reason: attachment.reason, detail: attachment.detail };
  }
  const placement = place(instance, view, options);
  return placement.ok
    ? { status: "allocating", detail: `a partition is free (${placement.computerId}/${placement.partitionId}); an allocator is placing it` }
    : { status: "pending", reason: placement.reason, detail: placement.detail };
}

/**
 * `explain` as one sentence, for the master's "pending — ask again" answer about an instance
 * that is not placed (or a shared one not attached): why it waits, or that an allocator is
 * placing it right now.
 */
export function explainUnplaced(instance: InstanceView, view: CloudView, options: PlaceOptions & AttachOptions = {}): string {
  const explanation = explain(instance, view, options);
  switch (explanation.status) {
    case "pending":
    case "allocating":
      return explanation.detail;
    case "placed":
      return `placed on ${explanation.computerId}/${explanation.partitionId}`;
    case "attached":
      return `attached to host ${explanation.hostInstanceId}`;
    case "destroyed":
      return "destroyed: nothing to allocate";
  }
}

/**
 * Why an instance waiting for a partition (or a host) can make no progress until someone fixes
 * the cause, or undefined: an SLA key or mode the allocator does not know, or a release whose
 * install failed on every computer it is supplied to. Still pending: once the cause is fixed (a
 * corrected SLA requested, the release rebuilt) it is placed without a new request.
 */
export function blockedBy(instance: InstanceView, computers: ComputersView): string | undefined {
  const sla = parseSla(instance.sla, instance.shared);
  if (!sla.ok) return sla.detail;
  if (instance.shared) return undefined;
  const url = instance.releaseUrl;
  const supplied = Object.values(computers.computers).filter((c) => c.software[url]?.supplied === true);
  if (supplied.length === 0 || supplied.some((c) => c.software[url]?.status !== "error")) return undefined;
  return `release ${url} failed to install on ${supplied.map((c) => c.computerId).join(", ")}`;
}
