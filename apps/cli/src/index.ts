/** @slap/cli: the `slap` command (`bin/slap.mjs` runs `run`). */
export { run, main, commands } from "./main.js";
/** An in-memory `Io` for driving commands in tests. */
export { fakeIo } from "./io.fixture.js";
