export {
  JetStreamEventStore,
  DEFAULT_STREAM_NAME,
  DEAD_LETTER_HEADERS,
  deadLetterStreamName,
  deadLetterSubjectPrefix,
  type JetStreamStoreOptions,
} from "./store.js";
export { connectServiceLog, type ServiceLogConfig } from "./service.js";
export { inboxPrefixOf, natsConfigFields, natsCredentialsFromEnv, NatsCredentialsError, type NatsCredentials } from "./credentials.js";
export { natsCredentialsRule, natsSettings, natsTlsRule } from "./settings.js";
