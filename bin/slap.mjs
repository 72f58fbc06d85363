#!/usr/bin/env node
// The `slap` command: TypeScript sources run through tsx (no build step).
import { register } from "tsx/esm/api";

register();
const { run } = await import("../services/master/src/cli/main.ts");
await run();
