export { EmbeddedEventStore, type EmbeddedOptions, type Recovery } from "./store.js";
