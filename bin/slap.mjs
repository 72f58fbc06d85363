#!/usr/bin/env node
// The `slap` command: TypeScript sources run through tsx (no build step).
import { register } from "tsx/esm/api";

register();
const { run } = await import("../apps/cli/src/main.ts");
await run();
