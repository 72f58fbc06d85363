export { startNatsServer, type NatsServer, type StartNatsOptions } from "./nats-server.js";
export { callJson, captureLogger, tempDir, type CapturedLogger } from "./temp.js";
export { eventStoreContract, type OpenedStore, type StoreHarness } from "./contract.js";
export * as fixtures from "./fixtures.js";
export { DEFAULT_FAULT_SEED, faultSeed, seededRandom, type SeededRandom } from "./seeded.js";
export { as, testToken, tokenFile } from "./tokens.js";
export { startNatsCluster, type ClusterServer, type NatsCluster, type StartNatsClusterOptions } from "./nats-cluster.js";
export { eventually } from "./eventually.js";
export {
  deciderSpecification,
  foldEvents,
  projectionSpecification,
  type DeciderSpecificationOptions,
  type Given,
  type GivenProjection,
  type Outcome,
  type When,
} from "./specification.js";
export { freePortBlock, releasePortBlock, type FreePortBlockOptions } from "./ports.js";
export { processGone } from "./processes.js";
