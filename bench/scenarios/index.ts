import { allocation } from "./allocation.js";
import { cliStart } from "./cli.js";
import { e2e } from "./e2e.js";
import { embedded } from "./embedded.js";
import { jetstreamAdapter } from "./jetstream-adapter.js";
import { jetstreamRaw } from "./jetstream-raw.js";
import { node } from "./node.js";
import { nodeDesired } from "./node-desired.js";
import { rebuildScenario } from "./rebuild.js";
import type { Scenario } from "./types.js";

export type { Scenario, FigureSpec, FigureRef, Target, Measurements, Sizes, ScenarioContext } from "./types.js";

/**
 * Every scenario, in run order. A scenario whose figures reference another one's (the raw
 * JetStream reference) must come after it. Add a module and list it here.
 */
export const scenarios: readonly Scenario[] = [jetstreamRaw, jetstreamAdapter, embedded, allocation, e2e, rebuildScenario, node, nodeDesired, cliStart];
