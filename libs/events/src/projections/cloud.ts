import type { Projection } from "../projection.js";
import { computersProjection, type ComputersView } from "./computers.js";
import { instancesProjection, type InstancesView } from "./instances.js";

/** The cloud as the master, the allocator and the nodes read it: both read models, folded together so they are always at the same position. */
export interface CloudView {
  computers: ComputersView;
  instances: InstancesView;
}

/**
 * The computers and instances read models as one projection, so one subscription keeps both
 * at exactly the same log position (two runners could each be a few commits apart, and a
 * decision would then mix two points in time).
 */
export const cloudProjection: Projection<CloudView> = {
  name: "cloud",
  version: computersProjection.version * 1_000 + instancesProjection.version,
  initial: () => ({ computers: computersProjection.initial(), instances: instancesProjection.initial() }),
  evolve(state, event, position) {
    state.computers = computersProjection.evolve(state.computers, event, position);
    state.instances = instancesProjection.evolve(state.instances, event, position);
    return state;
  },
};
