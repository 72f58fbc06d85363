/** Kept for `tsx services/master/src/cli.ts …`; the command line lives in `./cli/` (`bin/slap.mjs` is the entry). */
import { run } from "./cli/main.js";

await run();
