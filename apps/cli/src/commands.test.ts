import { after, describe, it } from "node:test";
import assert from "node:assert/strict";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { HELP, quoted } from "./args.js";
import { parseSupplyArgs } from "./computers.js";
import { parseListingArgs } from "./client.js";
import { parseEventsArgs } from "./events.js";
import { parseBangArgs, parseRequestArgs, parseShowArgs } from "./instances.js";
import { fakeIo } from "./io.fixture.js";
import { commands, main } from "./main.js";
import { parseAllocatorArgs, parseMasterArgs, parseNodeArgs } from "./services.js";

// The CLI falls back on <SLAP_DATA or ./data>/admin.token: every parse names a data folder of its own,
// so a master once run in the repository (./data/admin.token) does not leak into these tests.
const scratch = mkdtempSync(join(tmpdir(), "slap-commands-"));
after(() => rmSync(scratch, { recursive: true, force: true }));
const noData = join(scratch, "no-data");
/** `env` plus a SLAP_DATA without an admin.token. */
const envOf = (env: Record<string, string> = {}): Record<string, string> => ({ SLAP_DATA: noData, ...env });
const tokenIn = (name: string, content: string): string => {
  const path = join(scratch, name);
  writeFileSync(path, content, { mode: 0o600 });
  return path;
};
const ALICE = "token-of-alice-0123456789";
const BOB = "token-of-bob-0123456789";

describe("slap request arguments", () => {
  it("fills the defaults: type default, started, waiting 600 s, the local master, no token when none is given", () => {
    const args = parseRequestArgs(["examples/kvdb", "my db"], envOf());
    assert.deepEqual(args, {
      connection: { master: "http://127.0.0.1:8080", token: undefined },
      body: { releaseUrl: "examples/kvdb", reference: "my db", softwareType: "default", parameters: {}, sla: {}, shared: false, state: "started" },
      wait: true,
      json: false,
      timeoutMs: 600_000,
    });
  });

  it("takes every option, repeated params and SLA, and the connection from the environment", () => {
    const args = parseRequestArgs(
      ["rel", "ref", "--type", "replica", "--param", "a=1", "--param", "dsn=x=y", "--sla", "computer_guid=C1", "--shared", "--state", "stopped", "--no-wait", "--json", "--timeout", "2.5"],
      envOf({ SLAP_MASTER: "https://master.example:9000/", SLAP_TOKEN: ALICE }),
    );
    assert.notEqual(args, HELP);
    if (args === HELP) return;
    assert.deepEqual(args.connection, { master: "https://master.example:9000", token: ALICE });
    assert.deepEqual(args.body, { releaseUrl: "rel", reference: "ref", softwareType: "replica", parameters: { a: "1", dsn: "x=y" }, sla: { computer_guid: "C1" }, shared: true, state: "stopped" });
    assert.equal(args.wait, false);
    assert.equal(args.json, true);
    assert.equal(args.timeoutMs, 2_500);
  });

  it("prefers --master and --token-file over the environment, and SLAP_TOKEN over SLAP_TOKEN_FILE", () => {
    const bobFile = tokenIn("bob.token", `${BOB}\n`);
    const aliceFile = tokenIn("alice.token", `${ALICE}\r\n`);
    const connection = (argv: string[], env: Record<string, string>) => {
      const args = parseRequestArgs(["r", "x", ...argv], envOf(env));
      return args === HELP ? undefined : args.connection;
    };
    assert.deepEqual(connection(["--master", "http://m:1", "--token-file", bobFile], { SLAP_MASTER: "http://other:2", SLAP_TOKEN_FILE: aliceFile }), {
      master: "http://m:1",
      token: BOB,
    });
    assert.deepEqual(connection([], { SLAP_TOKEN_FILE: aliceFile }), { master: "http://127.0.0.1:8080", token: ALICE }, "the first line, trimmed");
    assert.deepEqual(connection(["--token-file", bobFile], { SLAP_TOKEN: ALICE }), { master: "http://127.0.0.1:8080", token: BOB }, "a flag wins over the environment");
    assert.deepEqual(connection([], { SLAP_TOKEN: ALICE, SLAP_TOKEN_FILE: bobFile }), { master: "http://127.0.0.1:8080", token: ALICE });
  });

  it("falls back on the admin.token the master wrote in SLAP_DATA, after any token given", () => {
    assert.deepEqual(parseListingArgs([], envOf()), { json: false, connection: { master: "http://127.0.0.1:8080", token: undefined } }, "no admin.token: no token");
    const data = join(scratch, "data");
    mkdirSync(data);
    writeFileSync(join(data, "admin.token"), "slap_admin-token-from-the-master\n", { mode: 0o600 });
    const tokenOf = (env: Record<string, string>) => {
      const args = parseListingArgs([], { SLAP_DATA: data, ...env });
      return args === HELP ? undefined : args.connection.token;
    };
    assert.equal(tokenOf({}), "slap_admin-token-from-the-master");
    assert.equal(tokenOf({ SLAP_MASTER: "http://localhost:9000" }), "slap_admin-token-from-the-master");
    assert.equal(tokenOf({ SLAP_MASTER: "http://master.example:8080" }), undefined, "the local admin token never goes to another host");
    assert.equal(tokenOf({ SLAP_MASTER: "http://127.0.0.1.example.com:8080" }), undefined);
    assert.equal(tokenOf({ SLAP_TOKEN: ALICE }), ALICE);
    assert.equal(tokenOf({ SLAP_TOKEN_FILE: tokenIn("bob2.token", BOB) }), BOB);
  });

  it("rejects a bad state, timeout, token or master URL with the flag's name", () => {
    assert.throws(() => parseRequestArgs(["r", "x", "--state", "running"], envOf()), { name: "UsageError", message: /^--state: / });
    assert.throws(() => parseRequestArgs(["r", "x", "--timeout", "soon"], envOf()), { name: "UsageError", message: /^--timeout: / });
    assert.throws(() => parseRequestArgs(["r", "x", "--timeout", "0"], envOf()), { name: "UsageError", message: /^--timeout: / });
    const token = /^the API token \(SLAP_TOKEN, --token-file or SLAP_TOKEN_FILE\): /;
    assert.throws(() => parseRequestArgs(["r", "x"], envOf({ SLAP_TOKEN: "a b c d e f g h i j" })), { name: "UsageError", message: token });
    assert.throws(() => parseRequestArgs(["r", "x", "--token-file", tokenIn("short.token", "abc\n")], envOf()), { name: "UsageError", message: token });
    assert.throws(() => parseRequestArgs(["r", "x"], envOf({ SLAP_MASTER: "ftp://m" })), { name: "UsageError", message: "--master (or SLAP_MASTER): must be an http:// or https:// URL" });
  });

  it("names the --token-file or SLAP_TOKEN_FILE it cannot read", () => {
    const missing = join(scratch, "missing.token");
    assert.throws(() => parseRequestArgs(["r", "x", "--token-file", missing], envOf()), { name: "UsageError", message: `--token-file: cannot read ${quoted(missing)}: ENOENT` });
    assert.throws(() => parseRequestArgs(["r", "x"], envOf({ SLAP_TOKEN_FILE: missing })), { name: "UsageError", message: `SLAP_TOKEN_FILE: cannot read ${quoted(missing)}: ENOENT` });
    assert.throws(() => parseRequestArgs(["r", "x", "--token-file", scratch], envOf()), { name: "UsageError", message: `--token-file: cannot read ${quoted(scratch)}: EISDIR` });
    assert.throws(() => parseRequestArgs(["r", "x", "--user", "alice"], envOf()), { name: "UsageError", message: /--user/ }, "--user is gone: a token says who you are");
  });

  it("names a --param without =", () => {
    assert.throws(() => parseRequestArgs(["r", "x", "--param", "a=1", "--param", "debug"], {}), { name: "UsageError", message: '--param "debug": expected key=value' });
  });
});

describe("arguments of the other client commands", () => {
  it("show, bang, instances and computers take their options", () => {
    const connection = { master: "http://127.0.0.1:8080", token: ALICE };
    const env = envOf({ SLAP_TOKEN: ALICE });
    assert.deepEqual(parseShowArgs(["db", "--secrets"], env), { instance: "db", json: false, secrets: true, connection });
    assert.deepEqual(parseBangArgs(["db", "--message", "why"], env), { instance: "db", message: "why", connection });
    assert.deepEqual(parseListingArgs(["--json"], env), { json: true, connection });
    const supply = parseSupplyArgs(["rel", "--computer", "COMP-1", "--token-file", tokenIn("supply.token", BOB)], envOf());
    assert.deepEqual(supply !== HELP && supply.connection, { master: "http://127.0.0.1:8080", token: BOB });
  });

  it("show, instances and computers take --as-of: a time with Z or an offset becomes asOf, a number a log position", () => {
    const asOfOf = (args: ReturnType<typeof parseListingArgs>) => (args === HELP ? undefined : args["as-of"]);
    assert.deepEqual(asOfOf(parseListingArgs(["--as-of", "2026-11-23T10:00:00Z"], {})), { asOf: "2026-11-23T10:00:00Z" });
    assert.deepEqual(asOfOf(parseListingArgs(["--as-of", "2026-11-23T11:00:00.5+01:00"], {})), { asOf: "2026-11-23T11:00:00.5+01:00" });
    assert.deepEqual(asOfOf(parseListingArgs(["--as-of", "42"], {})), { at: 42 });
    assert.equal(asOfOf(parseListingArgs([], {})), undefined);
    const show = parseShowArgs(["db", "--as-of", "0"], {});
    assert.deepEqual(show !== HELP && show["as-of"], { at: 0 });
    const computers = parseListingArgs(["--as-of", "2026-11-23T10:00:00Z"], {});
    assert.deepEqual(computers !== HELP && computers["as-of"], { asOf: "2026-11-23T10:00:00Z" });
    for (const bad of ["yesterday", "2026-11-23T10:00:00", "1.5", "--as-of=-1"]) {
      const argv = bad.startsWith("--") ? [bad] : ["--as-of", bad];
      assert.throws(() => parseListingArgs(argv, {}), { name: "UsageError", message: /^--as-of: must be an ISO time with Z or an offset/ }, bad);
    }
  });

  it("supply needs --computer and --destroy asks for removal", () => {
    assert.throws(() => parseSupplyArgs(["rel"], {}), { name: "UsageError", message: "--computer: is required" });
    assert.throws(() => parseSupplyArgs(["rel", "--computer", "a/b"], {}), { name: "UsageError", message: /^--computer: / });
    const args = parseSupplyArgs(["rel", "--computer", "COMP-1", "--destroy"], {});
    assert.deepEqual(args !== HELP && [args.release, args.computerId, args.state], ["rel", "COMP-1", "destroyed"]);
  });

  it("events maps --instance, --tree and --computer to subject filters, one at a time", () => {
    const filterOf = (argv: string[]) => {
      const args = parseEventsArgs(argv, {});
      return args === HELP ? undefined : args.filter;
    };
    const byName = parseEventsArgs(["--instance", "my-webapp/kvdb"], {});
    assert.equal(byName !== HELP && byName.instance, "my-webapp/kvdb", "resolved by the master, not a filter yet");
    assert.equal(filterOf(["--instance", "I1", "--data", "./d"]), "tree.*.instance.I1");
    assert.throws(() => parseEventsArgs(["--instance", "my-webapp/kvdb", "--data", "./d"], {}), { name: "UsageError", message: /with --data, an instance id/ });
    assert.equal(filterOf(["--tree", "T1"]), "tree.T1.>");
    assert.equal(filterOf(["--computer", "C1"]), "computer.C1.>");
    assert.equal(filterOf([]), undefined);
    assert.throws(() => parseEventsArgs(["--tree", "T1", "--computer", "C1"], {}), { message: "--tree and --computer cannot be combined" });
    assert.throws(() => parseEventsArgs(["--type", "InstanceWished"], {}), { message: /^--type: must be an event type/ });
    assert.throws(() => parseEventsArgs(["--since", "yesterday"], {}), { message: /^--since: must be an ISO time/ });
  });

  it("events --data reads the embedded log instead of a master", () => {
    const args = parseEventsArgs(["--data", "./d", "--type", "InstanceRequested", "--since", "2025-01-01T00:00:00Z"], {});
    assert.deepEqual(args, { source: { kind: "embedded", dir: "./d" }, follow: false, json: false, type: "InstanceRequested", since: "2025-01-01T00:00:00Z" });
    assert.throws(() => parseEventsArgs(["--data", "./d", "--master", "http://m"], {}), { message: "--data and --master cannot be combined" });
  });
});

describe("slap master and slap allocator arguments", () => {
  it("fall back on NATS_URL, SLAP_DATA, PORT, HOST and LOG_LEVEL, then the defaults", () => {
    assert.deepEqual(parseMasterArgs([], {}), { data: "./data", port: 8080, host: "127.0.0.1", logLevel: "info" });
    assert.deepEqual(parseMasterArgs([], { NATS_URL: "nats://n:4222", SLAP_DATA: "/d", PORT: "9000", HOST: "0.0.0.0", LOG_LEVEL: "debug" }), {
      nats: "nats://n:4222",
      data: "/d",
      port: 9000,
      host: "0.0.0.0",
      logLevel: "debug",
    });
    assert.deepEqual(parseMasterArgs(["--port", "0", "--data", "x"], { PORT: "9000" }), { data: "x", port: 0, host: "127.0.0.1", logLevel: "info" });
    assert.deepEqual(parseAllocatorArgs(["--replica", "a1"], { NATS_URL: "nats://n" }), { nats: "nats://n", data: "./data", replica: "a1", logLevel: "info" });
    assert.deepEqual(parseAllocatorArgs([], { ALLOCATOR_REPLICA: "a2", SLAP_STREAM: "S2" }), { data: "./data", replica: "a2", streamName: "S2", logLevel: "info" });
  });

  it("take the token file from --tokens, then SLAP_TOKENS", () => {
    assert.deepEqual(parseMasterArgs([], { SLAP_TOKENS: "/etc/slap/tokens.json" }), { tokens: "/etc/slap/tokens.json", data: "./data", port: 8080, host: "127.0.0.1", logLevel: "info" });
    assert.deepEqual(parseMasterArgs(["--tokens", "t.json"], { SLAP_TOKENS: "/etc/slap/tokens.json" }), { tokens: "t.json", data: "./data", port: 8080, host: "127.0.0.1", logLevel: "info" });
  });

  it("slap node needs its token: SLAP_TOKEN, or --token-file/SLAP_TOKEN_FILE (read when the node starts), never a flag holding the token itself", () => {
    const base = { NATS_URL: "nats://n", SLAP_COMPUTER: "COMP-1" };
    const tokenOf = (argv: string[], env: Record<string, string>) => {
      const args = parseNodeArgs(argv, { ...base, ...env });
      return args === HELP ? undefined : { token: args.token, tokenFile: args.tokenFile };
    };
    assert.deepEqual(tokenOf([], { SLAP_TOKEN: ALICE }), { token: ALICE, tokenFile: undefined });
    assert.deepEqual(tokenOf(["--token-file", "/etc/slap/node.token"], {}), { token: undefined, tokenFile: "/etc/slap/node.token" });
    assert.deepEqual(tokenOf([], { SLAP_TOKEN_FILE: "/etc/slap/node.token" }), { token: undefined, tokenFile: "/etc/slap/node.token" });
    assert.deepEqual(tokenOf(["--token-file", "a.token"], { SLAP_TOKEN_FILE: "b.token" }), { token: undefined, tokenFile: "a.token" });
    assert.deepEqual(tokenOf(["--token-file", "a.token"], { SLAP_TOKEN: ALICE }), { token: undefined, tokenFile: "a.token" }, "the flag wins over the environment");
    assert.throws(() => parseNodeArgs([], base), { name: "UsageError", message: /^the node's API token is required: SLAP_TOKEN, or --token-file \(or SLAP_TOKEN_FILE\)/ });
    assert.throws(() => parseNodeArgs([], { ...base, SLAP_TOKEN: "short" }), { name: "UsageError", message: /^SLAP_TOKEN: must be at least 16 characters/ });
    assert.throws(() => parseNodeArgs(["--token", ALICE], base), { name: "UsageError", message: /--token/ });
  });

  it("reject a bad port, replica or log level", () => {
    assert.throws(() => parseMasterArgs(["--port", "http"], {}), { name: "UsageError", message: /^--port \(or PORT\): / });
    assert.throws(() => parseMasterArgs([], { PORT: "70000" }), { name: "UsageError", message: /^--port \(or PORT\): / });
    assert.throws(() => parseAllocatorArgs(["--replica", "a b"], {}), { name: "UsageError", message: /^--replica \(or ALLOCATOR_REPLICA\): / });
    assert.throws(() => parseAllocatorArgs([], { ALLOCATOR_REPLICA: "a/b" }), { name: "UsageError", message: /^--replica \(or ALLOCATOR_REPLICA\): / });
    assert.throws(() => parseMasterArgs([], { SLAP_STREAM: "a.b" }), { name: "UsageError", message: /^SLAP_STREAM: / });
    assert.throws(() => parseAllocatorArgs([], { LOG_LEVEL: "loud" }), { name: "UsageError", message: /^LOG_LEVEL: / });
  });
});

describe("slap dispatch", () => {
  for (const command of commands) {
    it(`slap ${command.name} --help prints its usage and options and exits 0`, async () => {
      const t = fakeIo();
      assert.equal(await main([command.name, "--help"], t.io), 0);
      assert.match(t.stdout(), new RegExp(`^usage: slap ${command.name}`));
      assert.equal(t.stderr(), "");
      const again = fakeIo();
      assert.equal(await main(["help", command.name], again.io), 0);
      assert.equal(again.stdout(), t.stdout());
    });
  }

  it("slap --version prints the CLI's version; slap --help lists the exit codes", async () => {
    const t = fakeIo();
    assert.equal(await main(["--version"], t.io), 0);
    assert.match(t.stdout(), /^slap \d+\.\d+\.\d+\n$/);
    const help = fakeIo();
    assert.equal(await main(["--help"], help.io), 0);
    assert.match(help.stdout(), /exit codes: 0 done \(ready\), 1 an error \(refused, failed, blocked\), 2 still pending \(ask again\),\s+64 a usage error, 130 interrupted/);
  });

  it("slap --help lists every command", async () => {
    const t = fakeIo();
    assert.equal(await main(["--help"], t.io), 0);
    for (const command of commands) assert.match(t.stdout(), new RegExp(`\\n  ${command.name} +${command.summary.slice(0, 10)}`));
  });

  it("an unknown command, no command or a bad option is one line on stderr and exit 64", async () => {
    for (const argv of [["launch"], [], ["request", "rel"], ["computers", "--verbose"], ["request", "r", "x", "--param", "oops"]]) {
      const t = fakeIo();
      assert.equal(await main(argv, t.io), 64, argv.join(" "));
      assert.equal(t.stdout(), "");
      assert.match(t.stderr(), /^slap( [a-z]+)?: [^\n]+ \(see slap( [a-z]+)? --help\)\n$/, argv.join(" "));
    }
  });

  it("a failing connection is one line naming the master, without a stack, exit 1", async () => {
    const failing: typeof fetch = () => Promise.reject(new TypeError("fetch failed\n    at somewhere (file.ts:1:1)"));
    const t = fakeIo(envOf(), { fetch: failing });
    assert.equal(await main(["instances"], t.io), 1);
    assert.equal(t.stderr(), "slap instances: cannot reach the master at http://127.0.0.1:8080 (is it running? slap master)\n");
  });
});
