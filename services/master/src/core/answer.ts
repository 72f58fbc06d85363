import type { Answer } from "@slap/api";
import type { ComputersView, InstancesView, InstanceView } from "@slap/events";

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
  const pending = (reason: string): Answer => ({ status: "pending", instanceId, reference, reason, retryAfterMs: RETRY_AFTER_MS });
  if (instance.requestedState === "destroyed") {
    if (instance.destroyed || (instance.placement === null && !instance.shared && instance.status === null)) {
      return { status: "destroyed", instanceId, reference };
    }
    return pending("waiting for its node to destroy it");
  }
  if (instance.connection !== null) return { status: "ready", instanceId, reference, connection: instance.connection };
  if (instance.shared) {
    if (instance.host === null) return pending(explain(instance, views));
    return pending(`attached to host ${instance.host.instanceId}, waiting for its connection parameters`);
  }
  const bound = computers.bindings[instanceId];
  if (bound === undefined) return pending(explain(instance, views));
  const where = `${bound.computerId}/${bound.partitionId}`;
  const status = instance.status;
  if (status?.status === "error") return pending(`allocated to ${where}; its node reports an error: ${status.message ?? "no message"}`);
  if (status?.status === "waiting") return pending(`allocated to ${where}, waiting for ${status.waitingFor.join(", ") || "requested instances"}`);
  return pending(`allocated to ${where}, waiting for connection parameters`);
}
