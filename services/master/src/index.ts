/**
 * @slap/master: the authority. Pure deciders and the answer in `core/`; the read models, the
 * token file and the HTTP API in `shell/`; the process in `main.ts`.
 */
export { runMaster, MasterConfigError, type RunningMaster, type MasterDependencies } from "./main.js";
export { MASTER_CONFIG, MASTER_SETTINGS, MasterConfig, type MasterSettings, type ParsedMasterConfig } from "./config.js";
export { Master, CommandRejected } from "./shell/master.js";
export { buildHttpApi } from "./shell/http/server.js";
export type { DashboardFile, DashboardFiles } from "./shell/dashboard.js";
export {
  Credentials,
  TokenEntry,
  TokenFile,
  TokenFileError,
  newToken,
  openOrCreateTokenFile,
  readTokenFile,
  revokeInTokenFile,
  sha256Of,
  tokenIdOf,
  tokenInfoOf,
  TokenFileWatch,
  writeSecretFile,
  type CredentialSource,
  type Identity,
  type RevokeRefusal,
  type TokenInfo,
} from "./shell/auth.js";
export type { Answer } from "./core/answer.js";
