/**
 * @slap/allocator: places requested instances on free partitions, attaches shared instances
 * to ready hosts. Pure decisions in `core/` (usable by the master to explain pending
 * requests), the replica in `shell/`, the process in `main.ts`. See README.md.
 */
export { place, treeNetworks, type Placement, type PlaceOptions, type PlaceRejectionReason } from "./core/placement.js";
export {
  attachHost,
  hostUnreadiness,
  HostIndex,
  type Attachment,
  type AttachOptions,
  type AttachRejectionReason,
} from "./core/hosts.js";
export { explain, explainUnplaced, type Explanation, type PendingReason } from "./core/explain.js";
export { CapacityIndex, partitionKey, type ComputerCapacity, type Reservation } from "./core/capacity.js";
export { parseSla, isUnconstrained, SLA_KEYS, SLA_MODES, type Sla, type SlaParse } from "./core/sla.js";
export { naturalCompare, ringOffset, rotationOf } from "./core/order.js";
export { allocatorViewProjection, isPending, needsHost, needsPlacement, type AllocatorView } from "./core/view.js";
export {
  ALLOCATOR_ACTOR,
  partitionAllocatedEvent,
  sharedInstanceAttachedEvent,
  supersededReleasedEvent,
  type EventMeta,
} from "./core/events.js";
export { Allocator, type AllocatorOptions, type AllocatorStats, type PendingInfo } from "./shell/allocator.js";
export { AllocatorConfig, ConfigError, configFromEnv, runAllocator, type RunOptions, type RunningAllocator } from "./main.js";
