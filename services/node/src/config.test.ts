import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { parseConfig } from "@slap/events";
import { NODE_CONFIG, NODE_SETTINGS } from "./config.js";
import { configFromEnv } from "./main.js";
import { DEFAULT_HEARTBEAT_MS } from "./shell/node.js";

const TOKEN = "token-of-the-node-0123456789";

describe("the node's configuration", () => {
  it("reads every setting's variable from the environment, and gives the defaults the node runs with; it has no NATS settings", () => {
    const parsed = parseConfig(NODE_CONFIG, configFromEnv({ NATS_URL: "nats://n:4222", SLAP_COMPUTER: "COMP-1", SLAP_TOKEN: TOKEN, SLAP_ADDRESS: "::1", SLAP_PARTITION_USERS: "" }));
    assert.ok(parsed.ok, JSON.stringify(parsed));
    const set = Object.fromEntries(Object.entries(parsed.config).filter(([, value]) => value !== undefined));
    assert.deepEqual(set, {
      master: "http://127.0.0.1:8080",
      computer: "COMP-1",
      token: TOKEN,
      partitions: 10,
      root: "./srv",
      portBase: 20_000,
      portsPerPartition: 100,
      address: "::1",
      partitionUsers: "auto",
      heartbeatMs: DEFAULT_HEARTBEAT_MS,
      profileTimeoutMs: 600_000,
      runTimeoutMs: 600_000,
      warmProfiles: 8,
      promiseTimeoutMs: 20_000,
      promiseIntervalMs: 300_000,
      logLevel: "info",
    });
    assert.deepEqual(Object.keys(NODE_SETTINGS).filter((name) => /nats|stream|replicas/i.test(name)), [], "a node never talks to NATS");
    const variables = Object.values(NODE_SETTINGS).flatMap((setting) => ("env" in setting ? [setting.env] : []));
    const env = Object.fromEntries(variables.map((name) => [name, `value of ${name}`]));
    assert.deepEqual(Object.values(configFromEnv(env)), variables.map((name) => `value of ${name}`));
  });

  it("names each refused setting with its variable", () => {
    assert.deepEqual(parseConfig(NODE_CONFIG, { computer: "a/b", token: TOKEN, portBase: "80", partitionUsers: "on" }), {
      ok: false,
      issues: [
        "computer (SLAP_COMPUTER): must be 1-64 characters of A-Z, a-z, 0-9, _ or -",
        "portBase (SLAP_PORT_BASE): must be at least 1024: the ports below are privileged",
        "partitionUsers (SLAP_PARTITION_USERS): must be auto or off",
      ],
    });
  });
});
