import type { Answer } from "@slap/api";
import { isReleaseAvailable, type ComputersView, type InstancesView, type InstanceView } from "@slap/events";
import { blockedBy } from "@slap/placement";
import { checkParameters } from "@slap/api";
import { parametersSchemaOf } from "./decide.js";

export type { Answer };

/** Why an instance that is not placed (or a shared one not attached) is not, yet: the allocator's own explanation. */
export type ExplainUnplaced = (instance: InstanceView, views: { computers: ComputersView; instances: InstancesView }) => string;

/** Retry hint while pending: short, because readiness is pushed (watch) and the answer is cheap. */
export const RETRY_AFTER_MS = 1_000;

export function answerFor(
  instance: InstanceView,
  views: { computers: ComputersView; instances: InstancesView },
  explain: ExplainUnplaced,
): Answer {
  const computers = views.computers;
  const { instanceId, reference } = instance;
  const health = instance.health === null ? {} : { health: instance.health };
  const pending = (reason: string, blocked?: string): Answer => ({
    status: "pending",
    instanceId,
    reference,
    reason,
    retryAfterMs: RETRY_AFTER_MS,
    ...(blocked === undefined ? {} : { blocked }),
    ...health,
  });
  const unplaced = (): Answer => {
    const blocked = blockedBy(instance, computers);
    return pending(blocked ?? explain(instance, views), blocked);
  };
  if (instance.requestedState === "destroyed") {
    if (instance.destroyed || nothingToDestroy(instance, views.instances)) return { status: "destroyed", instanceId, reference };
    if (instance.shared) return pending(`waiting for its host ${instance.host?.instanceId ?? ""} to drop it`);
    return pending("waiting for its node to destroy it");
  }
  // Requested before the master knew the release's schema, which refuses its parameters.
  const checked = instance.connection === null && !instance.shared ? checkParameters(instance.parameters, parametersSchemaOf(instance.releaseUrl, computers)) : undefined;
  if (checked !== undefined && !checked.ok) {
    const blocked = `${instance.releaseUrl} refuses the parameters: ${checked.message}`;
    return pending(blocked, blocked);
  }
  const bound = computers.bindings[instanceId];
  const computer = bound === undefined ? undefined : computers.computers[bound.computerId];
  // Upgraded in place (another release under the same reference): served once its computer has the release.
  if (bound !== undefined && computer !== undefined && !isReleaseAvailable(computer, instance.releaseUrl)) {
    return pending(`waiting for release ${instance.releaseUrl} on ${bound.computerId}/${bound.partitionId}`);
  }
  if (instance.connection !== null) return { status: "ready", instanceId, reference, connection: instance.connection, ...health };
  if (instance.shared) {
    if (instance.host === null) return unplaced();
    return pending(`attached to host ${instance.host.instanceId}, waiting for its connection parameters`);
  }
  if (bound === undefined) return unplaced();
  const where = `${bound.computerId}/${bound.partitionId}`;
  const status = instance.status;
  if (status?.status === "error") return pending(`allocated to ${where}; its node reports an error: ${status.message ?? "no message"}`);
  if (status?.status === "waiting") return pending(`allocated to ${where}, waiting for ${status.waitingFor.join(", ") || "requested instances"}`);
  return pending(`allocated to ${where}, waiting for connection parameters`);
}

/**
 * A destroyed request nothing has to carry out: an instance never placed nor reported on, or a
 * shared one never attached or whose host is gone (no node would ever report it).
 */
function nothingToDestroy(instance: InstanceView, instances: InstancesView): boolean {
  if (!instance.shared) return instance.placement === null && instance.status === null;
  const host = instance.host === null ? undefined : instances.instances[instance.host.instanceId];
  return host === undefined || host.destroyed;
}
