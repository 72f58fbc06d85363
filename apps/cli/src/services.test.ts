import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { envNamesOf, parseConfig, type Settings } from "@slap/events";
import { ALLOCATOR_SETTINGS } from "@slap/allocator";
import { MASTER_SETTINGS } from "@slap/master";
import { NODE_CONFIG, NODE_SETTINGS, NodeConfigError, configFromEnv, runNode } from "@slap/node";
import { HELP, type Command } from "./args.js";
import { parseClusterArgs } from "./cluster.js";
import { fakeIo } from "./io.fixture.js";
import { main } from "./main.js";
import { allocatorCommand, masterCommand, nodeCommand, parseNodeArgs } from "./services.js";
import { parseUpArgs } from "./up.js";

const TOKEN = "token-of-the-node-0123456789";
const nodeEnv = { SLAP_COMPUTER: "COMP-1", SLAP_TOKEN: TOKEN };
/** What the node's own configuration takes, besides the setting under test. */
const nodeConfig = { computer: "COMP-1", token: TOKEN };

/** The message of a one-issue usage error, after its label. */
function messageOf(run: () => unknown): string {
  try {
    run();
  } catch (error) {
    return (error as Error).message;
  }
  assert.fail("accepted");
}

describe("slap node, slap up and slap cluster check a setting as the node does: one schema", () => {
  it("slap node takes an IPv6 address, as the node's own configuration does", () => {
    const args = parseNodeArgs(["--address", "::1"], nodeEnv);
    assert.notEqual(args, HELP);
    assert.equal(args !== HELP && args.address, "::1");
    assert.equal(parseNodeArgs([], { ...nodeEnv, SLAP_ADDRESS: "fd00::12" }) !== HELP, true);
    const own = parseConfig(NODE_CONFIG, { ...nodeConfig, address: "::1" });
    assert.deepEqual(own.ok && own.config.address, "::1");
    assert.throws(() => parseNodeArgs(["--address", "localhost"], nodeEnv), { name: "UsageError", message: "--address (or SLAP_ADDRESS): must be an IPv4 or IPv6 address" });
  });

  it("refuses a port base below 1024 everywhere with the same message, and takes 1024", () => {
    const rule = "must be at least 1024: the ports below are privileged";
    assert.equal(messageOf(() => parseNodeArgs(["--port-base", "500"], nodeEnv)), `--port-base (or SLAP_PORT_BASE): ${rule}`);
    assert.equal(messageOf(() => parseNodeArgs([], { ...nodeEnv, SLAP_PORT_BASE: "500" })), `--port-base (or SLAP_PORT_BASE): ${rule}`);
    assert.equal(messageOf(() => parseUpArgs(["--port-base", "500"], {})), `--port-base (or SLAP_PORT_BASE): ${rule}`);
    assert.equal(messageOf(() => parseClusterArgs(["--port-base", "500"], {})), `--port-base: ${rule}`);
    assert.deepEqual(parseConfig(NODE_CONFIG, { ...nodeConfig, portBase: 500 }), { ok: false, issues: [`portBase (SLAP_PORT_BASE): ${rule}`] });

    const node = parseNodeArgs(["--port-base", "1024"], nodeEnv);
    assert.equal(node !== HELP && node.portBase, 1_024);
    const up = parseUpArgs(["--port-base", "1024"], {});
    assert.equal(up !== HELP && up.portBase, 1_024);
    assert.equal(parseConfig(NODE_CONFIG, { ...nodeConfig, portBase: 1_024 }).ok, true);
  });

  it("refuses port blocks that end above 65535, naming the settings that set them", () => {
    const message = messageOf(() => parseNodeArgs(["--partitions", "500"], nodeEnv));
    assert.match(message, /^--port-base \(or SLAP_PORT_BASE\), --partitions \(or SLAP_PARTITIONS\) and --ports-per-partition \(or SLAP_PORTS_PER_PARTITION\): leave too few ports: the last, 20000 \+ 500 \* 100 - 1 = 69999, must be at most 65535$/);
    assert.match(messageOf(() => parseUpArgs(["--port-base", "65000"], {})), /^--port-base \(or SLAP_PORT_BASE\) and --partitions \(or SLAP_PARTITIONS\): leave too few ports/);
    assert.match(messageOf(() => parseClusterArgs(["--port-base", "65200", "--partitions", "2"], {})), /^--port-base and 2 × --partitions \(or SLAP_PARTITIONS\): leave too few ports/);
    const fits = parseNodeArgs(["--partitions", "455", "--port-base", "20000"], nodeEnv);
    assert.equal(fits !== HELP && fits.partitions, 455);
  });

  it("refuses SLAP_HEARTBEAT_MS=7200000 with the message the node gives", async () => {
    const message = "must be a number of milliseconds from 100 to 3600000 (1 h)";
    assert.equal(messageOf(() => parseNodeArgs([], { ...nodeEnv, SLAP_HEARTBEAT_MS: "7200000" })), `SLAP_HEARTBEAT_MS: ${message}`);
    const t = fakeIo({ ...nodeEnv, SLAP_HEARTBEAT_MS: "7200000" });
    assert.equal(await main(["node"], t.io), 64);
    assert.equal(t.stderr(), `slap node: SLAP_HEARTBEAT_MS: ${message} (see slap node --help)\n`);
    // The node run from its environment refuses it before it opens anything.
    await assert.rejects(runNode(configFromEnv({ ...nodeEnv, SLAP_HEARTBEAT_MS: "7200000" }), { handleSignals: false }), (error: unknown) => {
      assert.ok(error instanceof NodeConfigError);
      assert.equal(error.message, `invalid node configuration: heartbeatMs (SLAP_HEARTBEAT_MS): ${message}`);
      return true;
    });
    const hour = parseNodeArgs([], { ...nodeEnv, SLAP_HEARTBEAT_MS: "3600000" });
    assert.equal(hour !== HELP && hour.heartbeatMs, 3_600_000);
  });

  it("slap node requires a computer and a token, and takes no NATS setting (it talks to the master only)", () => {
    const parsed = parseNodeArgs([], nodeEnv);
    assert.ok(parsed !== HELP && !("nats" in parsed));
    assert.match(messageOf(() => parseNodeArgs(["--nats", "nats://127.0.0.1:4222"], nodeEnv)), /nats/);
    const { SLAP_COMPUTER: _computer, ...noComputer } = nodeEnv;
    assert.equal(messageOf(() => parseNodeArgs([], noComputer)), "--computer (or SLAP_COMPUTER): is required");
    const { SLAP_TOKEN: _token, ...noToken } = nodeEnv;
    assert.equal(messageOf(() => parseNodeArgs([], noToken)), "the node's API token is required: SLAP_TOKEN, or --token-file (or SLAP_TOKEN_FILE) naming the file that holds it");
  });
});

describe("the help of slap master, allocator and node is the services' descriptions", () => {
  const cases: ReadonlyArray<[Command, Settings]> = [
    [masterCommand, MASTER_SETTINGS],
    [allocatorCommand, ALLOCATOR_SETTINGS],
    [nodeCommand, NODE_SETTINGS],
  ];
  for (const [command, settings] of cases) {
    it(`slap ${command.name} --help lists every flag and variable of the description, with its default, and reads exactly those variables`, () => {
      for (const [key, setting] of Object.entries(settings)) {
        if (setting.flag !== undefined) assert.match(command.help, new RegExp(`\\n  --${setting.flag} `), `${key}: --${setting.flag}`);
        if (setting.env !== undefined) assert.ok(command.help.includes(setting.env), `${key}: ${setting.env}`);
        if (setting.default !== undefined) assert.ok(command.help.replace(/\s+/g, " ").includes(`default ${setting.default}`), `${key}: default ${setting.default}`);
      }
      assert.deepEqual(command.env, envNamesOf(settings));
      assert.doesNotMatch(command.help, /--nats-password|--password/, "a password is never a flag");
    });
  }

  it("says the port base's bound", () => {
    assert.match(nodeCommand.help.replace(/\s+/g, " "), /--port-base N first port of the partitions' port blocks: at least 1024/);
  });
});
