import {
  computersProjection,
  instancesProjection,
  type ComputersView,
  type InstancesView,
  type InstanceView,
  type Projection,
} from "@slap/events";

/** What placement reads: both read models, folded together so they are always at the same position. */
export interface AllocatorView {
  computers: ComputersView;
  instances: InstancesView;
}

/**
 * The computers and instances read models as one projection, so one subscription keeps both
 * at exactly the same log position (two runners could each be a few commits apart, and a
 * decision would then mix two points in time).
 */
export const allocatorViewProjection: Projection<AllocatorView> = {
  name: "allocator-view",
  version: computersProjection.version * 1_000 + instancesProjection.version,
  initial: () => ({ computers: computersProjection.initial(), instances: instancesProjection.initial() }),
  evolve(state, event, position) {
    state.computers = computersProjection.evolve(state.computers, event, position);
    state.instances = instancesProjection.evolve(state.instances, event, position);
    return state;
  },
};

/** Whether a non-shared instance waits for a partition: wanted (not destroyed, not to be destroyed) and not bound. */
export function needsPlacement(instance: InstanceView, view: AllocatorView): boolean {
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
export function isPending(instance: InstanceView, view: AllocatorView): boolean {
  return instance.shared ? needsHost(instance) : needsPlacement(instance, view);
}
