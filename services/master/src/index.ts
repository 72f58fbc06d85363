export { demoStory } from "./demo.js";
export { runMaster, MasterConfig, type RunningMaster, type MasterDependencies } from "./main.js";
export { Master, CommandRejected } from "./shell/master.js";
export type { Answer } from "./core/answer.js";
