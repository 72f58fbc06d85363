import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { HELP } from "./args.js";
import { parseSupplyArgs } from "./computers.js";
import { parseListingArgs } from "./client.js";
import { parseEventsArgs } from "./events.js";
import { parseBangArgs, parseRequestArgs, parseShowArgs } from "./instances.js";
import { fakeIo } from "./io.fixture.js";
import { commands, main } from "./main.js";
import { parseAllocatorArgs, parseMasterArgs } from "./services.js";

describe("slap request arguments", () => {
  it("fills the defaults: type default, started, waiting 600 s, admin on the local master", () => {
    const args = parseRequestArgs(["examples/kvdb", "my db"], {});
    assert.deepEqual(args, {
      connection: { master: "http://127.0.0.1:8080", user: "admin" },
      body: { releaseUrl: "examples/kvdb", reference: "my db", softwareType: "default", parameters: {}, sla: {}, shared: false, state: "started" },
      wait: true,
      json: false,
      timeoutMs: 600_000,
    });
  });

  it("takes every option, repeated params and SLA, and the connection from the environment", () => {
    const args = parseRequestArgs(
      ["rel", "ref", "--type", "replica", "--param", "a=1", "--param", "dsn=x=y", "--sla", "computer_guid=C1", "--shared", "--state", "stopped", "--no-wait", "--json", "--timeout", "2.5"],
      { SLAP_MASTER: "https://master.example:9000/", SLAP_USER: "alice" },
    );
    assert.notEqual(args, HELP);
    if (args === HELP) return;
    assert.deepEqual(args.connection, { master: "https://master.example:9000", user: "alice" });
    assert.deepEqual(args.body, { releaseUrl: "rel", reference: "ref", softwareType: "replica", parameters: { a: "1", dsn: "x=y" }, sla: { computer_guid: "C1" }, shared: true, state: "stopped" });
    assert.equal(args.wait, false);
    assert.equal(args.json, true);
    assert.equal(args.timeoutMs, 2_500);
  });

  it("prefers --master and --user over the environment", () => {
    const args = parseRequestArgs(["r", "x", "--master", "http://m:1", "--user", "bob"], { SLAP_MASTER: "http://other:2", SLAP_USER: "alice" });
    assert.deepEqual(args !== HELP && args.connection, { master: "http://m:1", user: "bob" });
  });

  it("rejects a bad state, timeout, user or master URL with the flag's name", () => {
    assert.throws(() => parseRequestArgs(["r", "x", "--state", "running"], {}), { name: "UsageError", message: /^--state: / });
    assert.throws(() => parseRequestArgs(["r", "x", "--timeout", "soon"], {}), { name: "UsageError", message: /^--timeout: / });
    assert.throws(() => parseRequestArgs(["r", "x", "--timeout", "0"], {}), { name: "UsageError", message: /^--timeout: / });
    assert.throws(() => parseRequestArgs(["r", "x", "--user", "a b"], {}), { name: "UsageError", message: /^--user \(or SLAP_USER\): / });
    assert.throws(() => parseRequestArgs(["r", "x"], { SLAP_MASTER: "ftp://m" }), { name: "UsageError", message: "--master (or SLAP_MASTER): must be an http:// or https:// URL" });
  });

  it("names a --param without =", () => {
    assert.throws(() => parseRequestArgs(["r", "x", "--param", "a=1", "--param", "debug"], {}), { name: "UsageError", message: '--param "debug": expected key=value' });
  });
});

describe("arguments of the other client commands", () => {
  it("show, bang, instances and computers take their options", () => {
    assert.deepEqual(parseShowArgs(["db", "--secrets"], {}), { reference: "db", json: false, secrets: true, connection: { master: "http://127.0.0.1:8080", user: "admin" } });
    assert.deepEqual(parseBangArgs(["db", "--message", "why"], {}), { reference: "db", message: "why", connection: { master: "http://127.0.0.1:8080", user: "admin" } });
    assert.deepEqual(parseListingArgs(["--json"], {}), { json: true, connection: { master: "http://127.0.0.1:8080", user: "admin" } });
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
    assert.equal(filterOf(["--instance", "I1"]), "tree.*.instance.I1");
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
    assert.deepEqual(parseMasterArgs([], {}), { data: "./data", port: 8080, host: "127.0.0.1" });
    assert.deepEqual(parseMasterArgs([], { NATS_URL: "nats://n:4222", SLAP_DATA: "/d", PORT: "9000", HOST: "0.0.0.0", LOG_LEVEL: "debug" }), {
      nats: "nats://n:4222",
      data: "/d",
      port: 9000,
      host: "0.0.0.0",
      logLevel: "debug",
    });
    assert.deepEqual(parseMasterArgs(["--port", "0", "--data", "x"], { PORT: "9000" }), { data: "x", port: 0, host: "127.0.0.1" });
    assert.deepEqual(parseAllocatorArgs(["--replica", "a1"], { NATS_URL: "nats://n" }), { nats: "nats://n", data: "./data", replica: "a1" });
    assert.deepEqual(parseAllocatorArgs([], { ALLOCATOR_REPLICA: "a2", SLAP_STREAM: "S2" }), { data: "./data", replica: "a2", streamName: "S2" });
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

  it("slap --help lists every command", async () => {
    const t = fakeIo();
    assert.equal(await main(["--help"], t.io), 0);
    for (const command of commands) assert.match(t.stdout(), new RegExp(`\\n  ${command.name} +${command.summary.slice(0, 10)}`));
  });

  it("an unknown command, no command or a bad option is one line on stderr and exit 2", async () => {
    for (const argv of [["launch"], [], ["request", "rel"], ["computers", "--verbose"], ["request", "r", "x", "--param", "oops"]]) {
      const t = fakeIo();
      assert.equal(await main(argv, t.io), 2, argv.join(" "));
      assert.equal(t.stdout(), "");
      assert.match(t.stderr(), /^slap( [a-z]+)?: [^\n]+ \(see slap( [a-z]+)? --help\)\n$/, argv.join(" "));
    }
  });

  it("a failing connection is one line naming the master, without a stack, exit 1", async () => {
    const failing: typeof fetch = () => Promise.reject(new TypeError("fetch failed\n    at somewhere (file.ts:1:1)"));
    const t = fakeIo({}, { fetch: failing });
    assert.equal(await main(["instances"], t.io), 1);
    assert.equal(t.stderr(), "slap instances: cannot reach the master at http://127.0.0.1:8080 (is it running? slap master)\n");
  });
});
