export { JetStreamEventStore, DEFAULT_STREAM_NAME, type JetStreamStoreOptions } from "./store.js";
