/**
 * @slap/node: the node agent (slapgrid). Pure decisions in `core/` (parameters, paths, when to
 * reprocess, restart back-off), files/processes/HTTP in `shell/`, the process in `main.ts`.
 * The contract with releases is DESIGN.md.
 */
export { Node, STATE_FILE, type NodeOptions } from "./shell/node.js";
export { NodeConfigError, configFromEnv, runNode, type RunNodeOptions, type RunningNode } from "./main.js";
export { NODE_CONFIG, NODE_SETTINGS, NodeConfig, portsFitRule, type NodeSettings, type ParsedNodeConfig } from "./config.js";
export { ReleaseManifest } from "./core/manifest.js";
export { insidePartition, PathEscapeError } from "./core/paths.js";
export { DeployedState, RETRY_ERROR_AFTER_MS, decideProcessing, parametersHash, sameDeployment, type ProcessDecision, type Wanted } from "./core/state.js";
export { BACKOFF, nextRestart, restartsWithin } from "./core/backoff.js";
export { softwareDir } from "./shell/software.js";
export { readTail, SERVICE_MARK } from "./shell/supervisor.js";
export { nodeStateDir, pidFileOf } from "./shell/partition-state.js";
export { Waiting, type Slap, type PromiseCheck, type ProcessDeclaration } from "./shell/profile.js";
export { MasterClient, MasterError } from "./shell/master-client.js";
export { LayoutError } from "./shell/layout.js";
export { PortsTakenError, type TakenPort } from "./shell/ports.js";
export { partitionUserName, partitionUsersEnabled, removePartitionUsers, type PartitionUser, type PartitionUsersOption } from "./shell/users.js";
