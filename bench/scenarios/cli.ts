import { spawn } from "node:child_process";
import { fileURLToPath } from "node:url";
import { median } from "../stats.js";
import type { Scenario, ScenarioContext } from "./types.js";

const REPO = fileURLToPath(new URL("../../", import.meta.url));

/** Wall time (ms) of one `node bin/slap.mjs <args>` to its exit, with `env` added. */
function timed(args: readonly string[], env: Record<string, string>): Promise<number> {
  const started = performance.now();
  const child = spawn(process.execPath, ["bin/slap.mjs", ...args], { cwd: REPO, env: { ...process.env, ...env }, stdio: "ignore" });
  return new Promise((resolve, reject) => {
    child.on("error", reject);
    child.on("exit", (code) => (code === 0 ? resolve(performance.now() - started) : reject(new Error(`slap ${args.join(" ")} exited ${code}`))));
  });
}

/** Calls per figure and run: the full bench, the quick one and the harness test. */
const callsOf = (ctx: ScenarioContext): number => (ctx.sizes.pipelined >= 30_000 ? 20 : ctx.sizes.pipelined >= 5_000 ? 10 : 2);

/**
 * The start of a `slap` client command (`slap --version`: the whole CLI loaded, nothing asked of a
 * master): from the bundle bin/slap.mjs builds and caches (node_modules/.cache/slap/cli.mjs), and
 * through tsx, which compiles the TypeScript at every call (`SLAP_CLI_BUNDLE=0`, what every call
 * cost before). Calls alternate between the two; each figure is the median over a run's calls.
 */
export const cliStart: Scenario = {
  name: "cli-start",
  title: "slap --version: a client command's start, bundled vs compiled by tsx",
  figures: [
    { key: "bundled", label: "from the cached bundle", unit: "ms", higherIsBetter: false, target: { kind: "atMost", value: 200 } },
    { key: "tsx", label: "through tsx (before)", unit: "ms", higherIsBetter: false },
    { key: "speedup", label: "tsx / bundled", unit: "×", target: { kind: "atLeast", value: 2 } },
  ],
  async run(ctx) {
    await timed(["--version"], {}); // builds the bundle if a source changed: not timed
    const bundled: number[] = [];
    const tsx: number[] = [];
    await ctx.settle();
    for (let i = 0; i < callsOf(ctx); i++) {
      bundled.push(await timed(["--version"], {}));
      tsx.push(await timed(["--version"], { SLAP_CLI_BUNDLE: "0" }));
    }
    return { bundled: median(bundled), tsx: median(tsx), speedup: median(tsx) / median(bundled) };
  },
};
