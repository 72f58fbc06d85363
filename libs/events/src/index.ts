export { ApiToken, Token, ComputerId, PartitionId, InstanceId, TreeId, UserId, EventId, instanceIdFor } from "./ids.js";
export {
  Actor,
  Aggregate,
  ComputerAggregate,
  PartitionAggregate,
  InstanceAggregate,
  DomainEvent,
  EVENT_TYPES,
  ReleaseUrl,
  StringMap,
  RequestedState,
  Requester,
  PartitionSpec,
  PromiseResult,
  ComputerRegistered,
  SoftwareSupplied,
  SoftwareUnsupplied,
  SoftwareReleaseStatusReported,
  PartitionAllocated,
  PartitionReleased,
  InstanceRequested,
  InstanceParametersChanged,
  InstanceRequestedStateChanged,
  SharedInstanceAttached,
  ConnectionParametersPublished,
  InstanceStatusReported,
  InstanceBanged,
  InstanceDestroyed,
  normalizeParameters,
  type EventType,
  type EventOf,
} from "./schemas.js";
export { DEFAULT_SUBJECT_PREFIX, streamKeyOf, follow, matchesFilter } from "./subjects.js";
export {
  EventStoreError,
  WrongExpectedVersionError,
  EventValidationError,
  issuesOf,
  type ValidationIssue,
} from "./errors.js";
export {
  validateAppend,
  encodeCommit,
  decodeCommit,
  type Decoded,
  type EventStore,
  type ExpectedVersion,
  type AppendOptions,
  type AppendResult,
  type Commit,
  type StreamSlice,
  type ReadOptions,
  type Subscription,
} from "./store.js";
export {
  FileCheckpointStore,
  MemoryCheckpointStore,
  ProjectionRunner,
  foldCommit,
  rebuild,
  type Checkpoint,
  type CheckpointStore,
  type Projection,
  type RunnerOptions,
} from "./projection.js";
export {
  computersProjection,
  freePartitions,
  isPartitionFree,
  isReleaseAvailable,
  type ComputersView,
  type ComputerView,
  type PartitionView,
  type SoftwareView,
  type SoftwareStatus,
} from "./projections/computers.js";
export {
  instancesProjection,
  type InstancesView,
  type InstanceView,
  type InstanceStatusView,
  type TreeView,
} from "./projections/instances.js";
export { cloudProjection, type CloudView } from "./projections/cloud.js";
export { MASK, maskSecrets } from "./secrets.js";
export {
  asOfBound,
  foldAsOf,
  foldUpTo,
  isAtOrBefore,
  nextBound,
  readAsOfBound,
  rebuildUpTo,
  type AsOf,
  type AsOfState,
} from "./asof.js";
export { startService, type Startable, type StartOptions } from "./service.js";
