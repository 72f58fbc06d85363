export { EmbeddedEventStore, type EmbeddedOptions } from "./store.js";
