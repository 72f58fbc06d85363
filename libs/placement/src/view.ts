import type { CloudView, InstanceView } from "@slap/events";

/** Whether a non-shared instance waits for a partition: wanted (not destroyed, not to be destroyed) and not bound. */
export function needsPlacement(instance: InstanceView, view: CloudView): boolean {
  return (
    !instance.shared &&
    !instance.destroyed &&
    instance.requestedState !== "destroyed" &&
    view.computers.bindings[instance.instanceId] === undefined
  );
}

/** Whether a shared instance waits for a host: wanted and not attached. */
export function needsHost(instance: InstanceView): boolean {
  return instance.shared && !instance.destroyed && instance.requestedState !== "destroyed" && instance.host === null;
}

/** Whether the allocator has something to do for the instance (a partition or a host). */
export function isPending(instance: InstanceView, view: CloudView): boolean {
  return instance.shared ? needsHost(instance) : needsPlacement(instance, view);
}
