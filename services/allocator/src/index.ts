/**
 * @slap/allocator: places requested instances on free partitions, attaches shared instances
 * to ready hosts. The decisions are @slap/placement's; this package is the replica (`shell/`)
 * and the process (`main.ts`). See README.md.
 */
export { Allocator, type AllocatorOptions, type AllocatorStats, type PendingInfo } from "./shell/allocator.js";
export {
  ClaimWriterHarness,
  StoreClaimWriter,
  type ClaimResult,
  type ClaimScript,
  type ClaimWriter,
  type Proposal,
} from "./shell/claim-writer.js";
export { ConfigError, configFromEnv, runAllocator, type RunOptions, type RunningAllocator } from "./main.js";
export { ALLOCATOR_CONFIG, ALLOCATOR_SETTINGS, AllocatorConfig, type AllocatorSettings, type ParsedAllocatorConfig } from "./config.js";
