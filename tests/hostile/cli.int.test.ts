/**
 * Hostile command lines (issue 7): every command of the `slap` table gets random argv (unknown
 * flags, missing values, wrong types, huge strings, control characters) and bad environment
 * values. Each must exit with the usage code (2) and one line on stderr naming the flag or the
 * variable, never a stack trace; nothing may reach the master (no HTTP call, nothing appended)
 * nor be created on disk. Run in-process through `main(argv, io)`; a handful as real processes.
 */
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { mkdirSync, readdirSync } from "node:fs";
import { isIP } from "node:net";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { fileURLToPath } from "node:url";
import fc from "fast-check";
import { testToken } from "@slap/testkit";
import { commands, fakeIo, main } from "@slap/cli";
import { nasty, tooLong } from "./arbitraries.fixture.js";
import { FUZZ_SEED, Tally, runs, startHostileMaster, within, type HostileMaster } from "./hostile.fixture.js";

const REPO = fileURLToPath(new URL("../../", import.meta.url));
const USAGE = 64;

let h: HostileMaster;
/** Folders the commands are pointed at (data, root, cluster dir): none may be created by a refused command line. */
let scratch = "";
const tally = new Tally();
const fetched: string[] = [];

/** The environment every run starts from: the test's master and token, its own SLAP_DATA. */
const baseEnv = (): Record<string, string> => ({
  SLAP_MASTER: h.running.url,
  SLAP_TOKEN: testToken.admin,
  SLAP_DATA: join(scratch, "data"),
  SLAP_ROOT: join(scratch, "root"),
  NATS_URL: "nats://127.0.0.1:1",
});

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

async function slap(argv: readonly string[], env: Record<string, string>): Promise<Run> {
  const countingFetch = ((input: string | URL | Request, init?: RequestInit) => {
    fetched.push(String(input instanceof Request ? input.url : input));
    return fetch(input, init);
  }) as typeof fetch;
  const io = fakeIo(env, { fetch: countingFetch });
  // Stopped before it starts: a line wrongly taken as valid runs a long-running command (up, master,
  // node, demo…) only to stop it at once, so the test fails on its exit code instead of hanging.
  io.stop();
  const code = await within(20_000, `slap ${JSON.stringify(argv).slice(0, 300)}`, main(argv, io.io));
  return { code, stdout: io.stdout(), stderr: io.stderr() };
}

/**
 * Runs a command line that must be refused: exit 64, one line on stderr naming one of `names`,
 * no stack trace nor terminal control character, nothing on stdout, no call to the master,
 * nothing appended, nothing created on disk.
 */
async function refused(surface: string, argv: readonly string[], env: Record<string, string>, names: readonly string[]): Promise<Run> {
  const head = await h.store.head();
  const calls = fetched.length;
  const before = readdirSync(scratch).sort();
  const run = await slap(argv, env);
  tally.add(surface);
  const context = `slap ${JSON.stringify(argv).slice(0, 400)} env ${JSON.stringify(env).slice(0, 300)}\n→ exit ${run.code}, stderr ${JSON.stringify(run.stderr.slice(0, 600))}, stdout ${JSON.stringify(run.stdout.slice(0, 200))}`;
  assert.equal(run.code, USAGE, `not the usage exit code: ${context}`);
  assert.match(run.stderr, /^slap[^\n]*: [^\n]+\n$/, `not one line "slap <command>: …": ${context}`);
  assert.doesNotMatch(run.stderr, /\n\s+at |Error: .*\n.*at /, `a stack trace: ${context}`);
  // eslint-disable-next-line no-control-regex
  assert.doesNotMatch(run.stderr.slice(0, -1), /[\x00-\x08\x0b-\x1f\x7f-\x9f]/, `a control character echoed to the terminal: ${context}`);
  assert.ok(
    names.some((name) => run.stderr.includes(name)),
    `the message names none of ${names.join(", ")}: ${context}`,
  );
  assert.equal(run.stdout, "", `printed on stdout: ${context}`);
  assert.equal(fetched.length, calls, `called the master (${fetched.slice(calls).join(", ")}): ${context}`);
  assert.equal(await h.store.head(), head, `appended to the log: ${context}`);
  assert.deepEqual(readdirSync(scratch).sort(), before, `created something on disk: ${context}`);
  return run;
}

// ---------------------------------------------------------------------------------------------
// What each command takes: a valid command line, and its flags with values each must refuse
// ---------------------------------------------------------------------------------------------

interface Flag {
  flag: string;
  /** Values the command must refuse; the message must name the flag (or `label`). */
  bad: fc.Arbitrary<string>;
  label?: string;
  /** The environment variable it falls back on (and its own bad values), when there is one. */
  env?: string;
}

interface Shape {
  /** A command line that parses (with `baseEnv`). */
  valid: () => string[];
  flags: readonly Flag[];
  /** Boolean flags (a value given to one is refused). */
  booleans?: readonly string[];
  /** Positional arguments, each with values to refuse (named `<name>` in the message). */
  positionals?: ReadonlyArray<{ name: string; bad: fc.Arbitrary<string>; optional?: boolean }>;
  /** Environment variables the command validates, with values each must refuse (the flag, if any, absent). */
  env?: Readonly<Record<string, fc.Arbitrary<string>>>;
}

/** Not a token `[A-Za-z0-9_-]{1,64}` (and not empty: an empty value counts as unset, or needs a value). */
const notToken = fc.oneof(nasty, tooLong(64)).filter((v) => v !== "" && !/^[A-Za-z0-9_-]{1,64}$/.test(v));
/** Not an integer in [min, max]. */
const notIntIn = (min: number, max: number): fc.Arbitrary<string> =>
  fc
    .oneof(nasty, fc.constantFrom("abc", "1.5", "Infinity", "1e400", String(min - 1), String(max + 1), "NaN"))
    .filter((v) => {
      const n = Number(v);
      return v.trim() !== "" && !(Number.isInteger(n) && n >= min && n <= max);
    });
const notUrl = fc.oneof(nasty, fc.constantFrom("ftp://x", "localhost:8080", "http//x", "://", "file:///etc/passwd", "javascript:alert(1)")).filter((v) => {
  if (v === "") return false;
  try {
    return !/^https?:$/.test(new URL(v).protocol);
  } catch {
    return true;
  }
});
const notEnumIn = (values: readonly string[]): fc.Arbitrary<string> => fc.oneof(nasty, fc.constantFrom(...values).map((v) => v.toUpperCase())).filter((v) => v !== "" && !values.includes(v));
const notIso = fc.oneof(nasty, fc.constantFrom("yesterday", "2026-11-23", "2026-11-23T10:00:00", "2026-13-01T00:00:00Z", "1.5")).filter((v) => v !== "" && !/^\d{1,15}$/.test(v));
const notLevel = notEnumIn(["fatal", "error", "warn", "info", "debug", "trace", "silent"]);
/** A string the command takes with at most `max` characters: over it, or (with `min` 1) empty given as --flag=. */
const tooLongFor = (max: number): fc.Arbitrary<string> => tooLong(max);
const notApiToken = fc.oneof(nasty, fc.constantFrom("short", "has a space in it!!", "tab\tinside-the-token-x", "é".repeat(20)), tooLong(512)).filter((v) => v !== "" && !/^[\x21-\x7e]{16,512}$/.test(v));

const clientEnv = { SLAP_MASTER: notUrl, SLAP_TOKEN: notApiToken };
const asOf = { flag: "--as-of", bad: notIso };

const SHAPES: Readonly<Record<string, Shape>> = {
  supply: {
    valid: () => ["file:///srv/releases/x", "--computer", "COMP-1"],
    flags: [{ flag: "--computer", bad: notToken }, { flag: "--master", bad: notUrl }],
    booleans: ["--destroy"],
    positionals: [{ name: "release", bad: fc.oneof(tooLongFor(2048), fc.constantFrom("__proto__", "constructor", "toString")) }],
    env: clientEnv,
  },
  request: {
    valid: () => ["file:///srv/releases/x", "db", "--no-wait"],
    flags: [
      { flag: "--type", bad: tooLongFor(128) },
      { flag: "--state", bad: notEnumIn(["started", "stopped", "destroyed"]) },
      { flag: "--timeout", bad: fc.oneof(nasty, fc.constantFrom("0", "86401", "soon", "1e400")).filter((v) => !(Number(v) > 0 && Number(v) <= 86_400)) },
      { flag: "--param", bad: fc.oneof(nasty.filter((v) => v.indexOf("=") <= 0), tooLong(256).map((k) => `${k}=v`), fc.constant(`k=${"v".repeat(65_537)}`)) },
      { flag: "--sla", bad: fc.oneof(nasty.filter((v) => v.indexOf("=") <= 0), tooLong(256).map((k) => `${k}=v`)) },
      { flag: "--master", bad: notUrl },
    ],
    booleans: ["--shared", "--no-wait", "--json"],
    positionals: [
      { name: "release", bad: fc.oneof(tooLongFor(2048), fc.constantFrom("__proto__", "constructor")) },
      { name: "reference", bad: tooLongFor(512) },
    ],
    env: clientEnv,
  },
  show: { valid: () => ["db"], flags: [asOf, { flag: "--master", bad: notUrl }], booleans: ["--json", "--secrets"], positionals: [{ name: "instance", bad: tooLongFor(4096) }], env: clientEnv },
  stop: { valid: () => ["db"], flags: [{ flag: "--master", bad: notUrl }], booleans: ["--json"], positionals: [{ name: "instance", bad: tooLongFor(4096) }], env: clientEnv },
  start: { valid: () => ["db"], flags: [{ flag: "--master", bad: notUrl }], booleans: ["--json"], positionals: [{ name: "instance", bad: tooLongFor(4096) }], env: clientEnv },
  destroy: { valid: () => ["db"], flags: [{ flag: "--master", bad: notUrl }], booleans: ["--json"], positionals: [{ name: "instance", bad: tooLongFor(4096) }], env: clientEnv },
  instances: {
    valid: () => [],
    flags: [asOf, { flag: "--status", bad: notEnumIn(["ready", "pending", "error", "destroying", "destroyed"]) }, { flag: "--master", bad: notUrl }],
    booleans: ["--json", "--all"],
    env: clientEnv,
  },
  computers: { valid: () => [], flags: [asOf, { flag: "--master", bad: notUrl }], booleans: ["--json"], env: clientEnv },
  bang: { valid: () => ["db"], flags: [{ flag: "--message", bad: tooLongFor(65_536) }, { flag: "--master", bad: notUrl }], positionals: [{ name: "instance", bad: tooLongFor(4096) }], env: clientEnv },
  events: {
    valid: () => [],
    flags: [
      { flag: "--instance", bad: notToken },
      { flag: "--tree", bad: notToken },
      { flag: "--computer", bad: notToken },
      { flag: "--filter", bad: fc.oneof(nasty, tooLong(256)).filter((v) => v !== "" && !/^[A-Za-z0-9_*>.-]{1,256}$/.test(v)) },
      { flag: "--type", bad: notEnumIn(["InstanceRequested", "ComputerRegistered"]).filter((v) => !/^[A-Z][A-Za-z]+$/.test(v)) },
      { flag: "--since", bad: notIso },
      { flag: "--master", bad: notUrl },
    ],
    booleans: ["--follow", "--json"],
    env: clientEnv,
  },
  audit: { valid: () => ["db"], flags: [{ flag: "--master", bad: notUrl }], booleans: ["--json"], positionals: [{ name: "reference", bad: tooLongFor(512), optional: true }], env: clientEnv },
  master: {
    valid: () => ["--data", join(scratch, "master-data"), "--port", "0"],
    flags: [{ flag: "--port", bad: notIntIn(0, 65_535), env: "PORT" }],
    env: { PORT: notIntIn(0, 65_535), LOG_LEVEL: notLevel, SLAP_STREAM: notToken },
  },
  allocator: {
    valid: () => ["--data", join(scratch, "allocator-data")],
    flags: [{ flag: "--replica", bad: notToken, env: "ALLOCATOR_REPLICA" }],
    env: { ALLOCATOR_REPLICA: notToken, LOG_LEVEL: notLevel, SLAP_STREAM: notToken },
  },
  node: {
    valid: () => ["--computer", "COMP-9", "--root", join(scratch, "node-root"), "--port-base", "24000"],
    flags: [
      { flag: "--computer", bad: notToken, env: "SLAP_COMPUTER" },
      { flag: "--partitions", bad: notIntIn(1, 10_000), env: "SLAP_PARTITIONS" },
      { flag: "--port-base", bad: notIntIn(1_024, 65_535), env: "SLAP_PORT_BASE" },
      { flag: "--address", bad: fc.oneof(nasty, fc.constantFrom("999.1.1.1", "1.1.1", ":::1", "localhost")).filter((v) => v !== "" && isIP(v) === 0), env: "SLAP_ADDRESS" },
      { flag: "--master", bad: fc.constantFrom("not a url", "://x", "localhost"), env: "SLAP_MASTER" },
    ],
    env: {
      SLAP_PARTITIONS: notIntIn(1, 10_000),
      SLAP_ADDRESS: fc.constantFrom("999.1.1.1", "nowhere", "1.1.1"),
      SLAP_PARTITION_USERS: notEnumIn(["auto", "off"]),
      LOG_LEVEL: notLevel,
      SLAP_STREAM: notToken,
      SLAP_TOKEN: fc.constantFrom("short", "x"),
    },
  },
  up: {
    valid: () => ["--data", join(scratch, "up-data"), "--port", "0", "--port-base", "24000"],
    flags: [
      { flag: "--port", bad: notIntIn(0, 65_535), env: "PORT" },
      { flag: "--partitions", bad: notIntIn(2, 1_000), env: "SLAP_PARTITIONS" },
      { flag: "--computer", bad: notToken, env: "SLAP_COMPUTER" },
      // The default 10 partitions of 100 ports each must end at 65535 at most.
      { flag: "--port-base", bad: notIntIn(1_024, 64_536) },
    ],
    env: { SLAP_PARTITIONS: notIntIn(2, 1_000), SLAP_COMPUTER: notToken, LOG_LEVEL: notLevel },
  },
  cluster: {
    valid: () => ["--dir", join(scratch, "cluster-data"), "--port", "0", "--port-base", "24000", "--partitions", "2"],
    flags: [
      { flag: "--port", bad: notIntIn(0, 65_535), env: "PORT" },
      { flag: "--partitions", bad: notIntIn(2, 100), env: "SLAP_PARTITIONS" },
      // Two nodes of 2 partitions of 100 ports: the last port is base + 399.
      { flag: "--port-base", bad: notIntIn(1_024, 65_136) },
      { flag: "--computer-prefix", bad: fc.oneof(nasty, tooLong(60)).filter((v) => v !== "" && !/^[A-Za-z0-9_-]{1,60}$/.test(v)) },
    ],
    env: { LOG_LEVEL: notLevel },
  },
  token: {
    valid: () => ["--file", join(scratch, "tokens", "tokens.json"), "--role", "admin"],
    flags: [
      { flag: "--role", bad: notEnumIn(["admin", "user", "node"]) },
      { flag: "--user", bad: fc.oneof(notToken, fc.constant("alice")) },
      { flag: "--computer", bad: fc.oneof(notToken, fc.constant("COMP-1")) },
      { flag: "--name", bad: tooLong(200) },
    ],
  },
  demo: { valid: () => ["--data", join(scratch, "demo-data")], flags: [], env: { LOG_LEVEL: notLevel } },
};

/** A value given as `--flag=value` (so values starting with "-" stay values). */
const assign = (flag: string, value: string): string => `${flag}=${value}`;
/** The value of an argument is a string without NUL (an OS argv cannot hold one). */
const noNul = (v: string): boolean => !v.includes("\u0000");

before(async () => {
  h = await startHostileMaster({ users: ["alice"], computers: ["COMP-1"] });
  scratch = join(h.dir, "scratch");
  mkdirSync(scratch);
});

after(async () => {
  await h?.stop();
});

describe("slap under hostile command lines", () => {
  it("knows the shape of every command in the table", () => {
    for (const command of commands) {
      if (command.name === "nats-config") continue;
      assert.ok(SHAPES[command.name] !== undefined, `slap ${command.name} has no shape in this test: add one`);
    }
  });

  it("refuses an unknown option anywhere on any command's line: exit 64, one line naming it", async () => {
    const names = commands.map((c) => c.name);
    const noise = fc.array(fc.oneof(nasty, fc.string({ maxLength: 12 })).filter((v) => noNul(v) && !v.startsWith("-")), { maxLength: 4 });
    const unknown = fc.oneof(fc.stringMatching(/^[a-z0-9-]{0,20}$/), nasty.filter(noNul)).map((suffix) => `--zz-hostile-${suffix}`);
    await fc.assert(
      fc.asyncProperty(fc.constantFrom(...names), noise, unknown, fc.nat(), async (name, words, flag, at) => {
        const argv = [...words];
        argv.splice(at % (argv.length + 1), 0, flag);
        await refused("unknown options", [name, ...argv], baseEnv(), ["--zz-hostile", "unknown option"]);
      }),
      runs(400),
    );
  });

  it("refuses an unknown command, and no command, with exit 64", async () => {
    await fc.assert(
      fc.asyncProperty(fc.oneof(nasty, fc.string({ maxLength: 20 })).filter((v) => noNul(v) && !commands.some((c) => c.name === v) && !["--help", "-h", "help"].includes(v)), async (name) => {
        await refused("unknown commands", [name], baseEnv(), ["unknown command", "slap"]);
      }),
      runs(100),
    );
    await refused("unknown commands", [], baseEnv(), ["no command given"]);
  });

  for (const [name, shape] of Object.entries(SHAPES)) {
    it(`slap ${name}: a bad flag value, a flag missing its value, a value given to a boolean, a bad positional or environment value is a usage error naming it`, async () => {
      const defects: Array<fc.Arbitrary<{ argv: string[]; env: Record<string, string>; names: string[] }>> = [];
      const env = baseEnv;
      for (const f of shape.flags) {
        const label = f.label ?? f.flag;
        // The flag given a bad value (as --flag=value: a value may start with "-").
        defects.push(f.bad.filter(noNul).map((v) => ({ argv: [...shape.valid().filter((a, i, all) => a !== f.flag && all[i - 1] !== f.flag), assign(f.flag, v)], env: env(), names: [label, f.flag] })));
        // The flag last, without its value.
        defects.push(fc.constant({ argv: [...shape.valid().filter((a, i, all) => a !== f.flag && all[i - 1] !== f.flag), f.flag], env: env(), names: [f.flag] }));
      }
      for (const b of shape.booleans ?? []) {
        defects.push(fc.oneof(nasty, fc.constantFrom("yes", "true", "1")).filter(noNul).map((v) => ({ argv: [...shape.valid(), assign(b, v)], env: env(), names: [b] })));
      }
      for (const [index, p] of (shape.positionals ?? []).entries()) {
        defects.push(
          p.bad.filter(noNul).map((v) => {
            const argv = shape.valid();
            argv[index] = v;
            return { argv, env: env(), names: [`<${p.name}>`] };
          }),
        );
        // Missing: the line without its positionals.
        if (p.optional !== true) defects.push(fc.constant({ argv: shape.valid().slice(shape.positionals!.length), env: env(), names: [`<${p.name}>`, "missing"] }));
      }
      // One argument too many.
      defects.push(fc.oneof(nasty, fc.string({ minLength: 1, maxLength: 10 })).filter((v) => noNul(v) && v !== "" && !v.startsWith("-")).map((v) => ({ argv: [...shape.valid(), v], env: env(), names: ["unexpected argument"] })));
      for (const [variable, bad] of Object.entries(shape.env ?? {})) {
        // The variable's own flag absent, so the variable is read.
        const flag = shape.flags.find((f) => f.env === variable)?.flag;
        defects.push(
          bad.filter((v) => noNul(v) && v !== "").map((v) => ({
            argv: shape.valid().filter((a, i, all) => flag === undefined || (a !== flag && all[i - 1] !== flag)),
            env: { ...env(), [variable]: v },
            names: [variable],
          })),
        );
      }
      await fc.assert(
        fc.asyncProperty(fc.oneof(...defects), async ({ argv, env, names }) => {
          await refused(`slap ${name}`, [name, ...argv], env, names);
        }),
        runs(120),
      );
    });
  }

  it(
    "refuses an unreadable --token-file (or SLAP_TOKEN_FILE) naming it, without echoing control characters in its path",
    async () => {
      await fc.assert(
        fc.asyncProperty(nasty.filter((v) => noNul(v) && v !== "").map((v) => join(scratch, "missing", v)), fc.boolean(), async (path, viaEnv) => {
          const argv = viaEnv ? ["instances"] : ["instances", assign("--token-file", path)];
          const { SLAP_TOKEN: _token, ...env } = baseEnv();
          await refused("token files", argv, viaEnv ? { ...env, SLAP_TOKEN_FILE: path } : env, ["--token-file", "SLAP_TOKEN_FILE"]);
        }),
        runs(50),
      );
    },
  );

  it("as real processes: node bin/slap.mjs exits 2 with one line on stderr", async () => {
    const cases: Array<{ argv: string[]; env?: Record<string, string>; names: string[] }> = [
      { argv: ["request", "rel"], names: ["<reference>"] },
      { argv: ["supply", "rel", "--computer", "a/b"], names: ["--computer"] },
      { argv: ["show", "db", "--as-of", "yesterday\u001b[2J"], names: ["--as-of"] },
      { argv: ["events", "--zz-hostile-\u0007"], names: ["--zz-hostile"] },
      { argv: ["master", "--port", "99999"], names: ["--port"] },
      { argv: ["instances"], env: { SLAP_MASTER: "ftp://example" }, names: ["SLAP_MASTER"] },
      { argv: ["bang", "x".repeat(100_000)], names: ["<instance>"] },
    ];
    await Promise.all(
      cases.map(async ({ argv, env = {}, names }) => {
        const run = await spawnSlap(argv, { ...baseEnv(), ...env });
        tally.add("real processes");
        const context = `slap ${JSON.stringify(argv).slice(0, 200)} → exit ${run.code}, stderr ${JSON.stringify(run.stderr.slice(0, 400))}`;
        assert.equal(run.code, USAGE, context);
        assert.match(run.stderr, /^slap[^\n]*: [^\n]+\n$/, context);
        assert.ok(names.some((n) => run.stderr.includes(n)), context);
      }),
    );
    assert.equal(fetched.length, 0);
  });

  it("prints how many command lines each surface was tried with", (t) => {
    t.diagnostic(`seed ${FUZZ_SEED} (SLAP_FUZZ_SEED to change)`);
    for (const line of tally.lines()) t.diagnostic(line);
    assert.ok(tally.total >= 1_000, `only ${tally.total} command lines`);
  });
});

function spawnSlap(argv: readonly string[], env: Record<string, string>): Promise<{ code: number | null; stderr: string }> {
  const { SLAP_MASTER: _m, SLAP_TOKEN: _t, SLAP_TOKEN_FILE: _f, SLAP_DATA: _d, LOG_LEVEL: _l, ...inherited } = process.env;
  const child = spawn(process.execPath, ["bin/slap.mjs", ...argv], { cwd: REPO, env: { ...inherited, ...env }, stdio: ["ignore", "ignore", "pipe"] });
  let stderr = "";
  child.stderr.setEncoding("utf8").on("data", (chunk: string) => (stderr += chunk));
  return within(
    60_000,
    `spawned slap ${argv.join(" ").slice(0, 100)}`,
    new Promise((resolve, reject) => {
      child.on("error", reject);
      child.on("close", (code) => resolve({ code, stderr }));
    }),
  );
}
