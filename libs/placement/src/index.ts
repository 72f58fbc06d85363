/**
 * @slap/placement: where an instance may go, as pure functions of the cloud's read model (no I/O,
 * no clock). The allocator places with it; the master explains pending answers with it.
 */
export { place, treeNetworks, type Placement, type PlaceOptions, type PlaceRejectionReason } from "./placement.js";
export {
  attachHost,
  hostUnreadiness,
  HostIndex,
  type Attachment,
  type AttachOptions,
  type AttachRejectionReason,
} from "./hosts.js";
export { blockedBy, explain, explainUnplaced, type Explanation, type PendingReason } from "./explain.js";
export { CapacityIndex, partitionKey, type ComputerCapacity, type Reservation } from "./capacity.js";
export { parseSla, isUnconstrained, SLA_KEYS, SLA_MODES, type Sla, type SlaParse } from "./sla.js";
export { naturalCompare, ringOffset, rotationOf } from "./order.js";
export { isPending, needsHost, needsPlacement } from "./view.js";
export {
  ALLOCATOR_ACTOR,
  partitionAllocatedEvent,
  sharedInstanceAttachedEvent,
  supersededReleasedEvent,
  type EventMeta,
} from "./events.js";
