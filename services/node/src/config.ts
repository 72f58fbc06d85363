/**
 * The node's configuration, described once: `runNode` parses it, `configFromEnv` reads it from
 * the environment, and `slap node` (apps/cli) takes its flags, variables, help and validation
 * from it.
 */
import { ApiToken, Token, configSchema, logLevelSetting, type ConfigDescription, type ConfigInput, type ConfigOf, type ConfigRule, type Setting } from "@slap/events";
import { z } from "zod";
import { PROFILE_TIMEOUT_MS } from "./shell/profile.js";
import { RUN_TIMEOUT_MS } from "./shell/checks.js";
import { WARM_PROFILES } from "./shell/profile-hosts.js";
import { DEFAULT_HEARTBEAT_MS } from "./shell/node.js";
import { PROMISE_INTERVAL_MS } from "./shell/partition-runner.js";

/** Milliseconds from `min` to `max`; the message says the bounds (`max` also in hours or minutes). */
function millis(min: number, max: number, span: string) {
  const message = `must be a number of milliseconds from ${min} to ${max} (${span})`;
  return z.coerce.number({ error: message }).int(message).min(min, message).max(max, message);
}

/** The first port of the partitions' blocks: above the privileged ports (below 1024, which need root). */
const PortBase = z.coerce
  .number({ error: "must be a port number" })
  .int("must be a port number")
  .min(1_024, "must be at least 1024: the ports below are privileged")
  .max(65_535, "must be at most 65535");

/** The node's settings. */
export const NODE_SETTINGS = {
  /** The node's one connection: it reads its computer's desired state there and writes there; it never reads the log. */
  master: {
    schema: z.url({ error: "must be the master's URL, like http://127.0.0.1:8080" }),
    flag: "master",
    placeholder: "URL",
    env: "SLAP_MASTER",
    default: "http://127.0.0.1:8080",
    help: "the master",
  },
  /** An https:// master with a certificate of its own CA: that CA (PEM), instead of the system's. */
  ca: { schema: z.string().min(1).optional(), flag: "ca", placeholder: "FILE", env: "SLAP_CA", defaultHelp: "the system's CAs", help: "the CA certificates (PEM) an https:// master's certificate must chain to" },
  computer: { schema: Token, flag: "computer", placeholder: "ID", env: "SLAP_COMPUTER", help: "this computer's id" },
  tokenFile: {
    schema: z.string().min(1).optional(),
    flag: "token-file",
    placeholder: "FILE",
    env: "SLAP_TOKEN_FILE",
    help: "the file holding this node's API token on its first line, read at start; or the token itself in env SLAP_TOKEN: one of them is required",
    note: "the master's token file lists the token with role node for this computer",
  },
  /** Never a flag: argv is visible to every local user. A `--token-file` given wins over it. */
  token: { schema: ApiToken.optional(), env: "SLAP_TOKEN", yieldsToFlagOf: "tokenFile", help: "this node's API token (or --token-file)" },
  partitions: {
    schema: z.coerce.number({ error: "must be a number" }).int("must be a whole number").min(1, "must be at least 1").max(10_000, "must be at most 10000"),
    flag: "partitions",
    placeholder: "N",
    env: "SLAP_PARTITIONS",
    default: "10",
    help: "how many partitions to format",
  },
  root: { schema: z.string().min(1), flag: "root", placeholder: "DIR", env: "SLAP_ROOT", default: "./srv", help: "where partitions and software live" },
  portBase: {
    schema: PortBase,
    flag: "port-base",
    placeholder: "N",
    env: "SLAP_PORT_BASE",
    default: "20000",
    help: "first port of the partitions' port blocks: at least 1024, above the privileged ports",
    note: "nodes sharing a host need distinct ranges, clear of the host's other services' ports, such as a database's 3306, 5432, 6379 or 27017",
  },
  portsPerPartition: {
    schema: z.coerce.number({ error: "must be a number" }).int("must be a whole number").min(1, "must be at least 1").max(65_535, "must be at most 65535"),
    flag: "ports-per-partition",
    placeholder: "N",
    env: "SLAP_PORTS_PER_PARTITION",
    default: "100",
    help: "the size of each partition's port block: partition K gets base + K * N on, and the last port, base + partitions * N - 1, must be at most 65535",
  },
  address: {
    schema: z.union([z.ipv4(), z.ipv6()], { error: "must be an IPv4 or IPv6 address" }).optional(),
    flag: "address",
    placeholder: "IP",
    env: "SLAP_ADDRESS",
    defaultHelp: "127.0.0.1",
    help: "the address the partitions' services listen on and publish: the host's address when nodes are apart",
  },
  partitionUsers: {
    schema: z.enum(["auto", "off"], { error: "must be auto or off" }),
    env: "SLAP_PARTITION_USERS",
    default: "auto",
    help: "auto: one unix user per partition when the node runs as root; off: every partition runs as the node's user",
  },
  heartbeatMs: {
    schema: millis(100, 3_600_000, "1 h"),
    env: "SLAP_HEARTBEAT_MS",
    default: String(DEFAULT_HEARTBEAT_MS),
    help: "how often, in ms, the node tells the master it is alive",
    note: "the master's SLAP_STALE_AFTER_MS should be about 3 of them",
  },
  profileTimeoutMs: { schema: millis(100, 86_400_000, "24 h"), env: "SLAP_PROFILE_TIMEOUT_MS", default: String(PROFILE_TIMEOUT_MS), help: "how long, in ms, a profile's deploy or destroy hook may take" },
  runTimeoutMs: { schema: millis(100, 86_400_000, "24 h"), env: "SLAP_RUN_TIMEOUT_MS", default: String(RUN_TIMEOUT_MS), help: "how long, in ms, a one-shot (slap.run) may run" },
  warmProfiles: {
    schema: z.coerce.number({ error: "must be a number" }).int("must be a whole number").min(0, "must be at least 0").max(1_000, "must be at most 1000"),
    env: "SLAP_WARM_PROFILES",
    default: String(WARM_PROFILES),
    help: "how many partitions keep their JS profile's process warm between processings (0: a new process each time)",
    note: "each warm one is a Node process of about 40 MiB, stopped after a minute idle",
  },
  promiseTimeoutMs: { schema: millis(100, 3_600_000, "1 h"), env: "SLAP_PROMISE_TIMEOUT_MS", default: "20000", help: "how long, in ms, a promise may take to hold" },
  promiseIntervalMs: {
    schema: millis(100, 86_400_000, "24 h"),
    env: "SLAP_PROMISE_INTERVAL_MS",
    default: String(PROMISE_INTERVAL_MS),
    help: "how often, in ms, a deployed instance's promises are checked again between processings (a status is reported only when a result changes)",
  },
  logLevel: logLevelSetting,
} as const satisfies Record<string, Setting>;

export type NodeSettings = typeof NODE_SETTINGS;

/**
 * The partitions' port blocks fit below 65536: the last port, `portBase + partitions *
 * portsPerPartition - 1` (`portsPerPartition` default 100 when the configuration has none), is
 * at most 65535. Also for a composer that runs a node with its own flags (`slap up`).
 */
export const portsFitRule: ConfigRule<{ portBase: number; partitions: number; portsPerPartition?: number | undefined }> = (config, name) => {
  const per = config.portsPerPartition ?? Number(NODE_SETTINGS.portsPerPartition.default);
  const last = config.portBase + config.partitions * per - 1;
  if (last <= 65_535) return undefined;
  const settings = config.portsPerPartition === undefined ? `${name("portBase")} and ${name("partitions")}` : `${name("portBase")}, ${name("partitions")} and ${name("portsPerPartition")}`;
  return `${settings}: leave too few ports: the last, ${config.portBase} + ${config.partitions} * ${per} - 1 = ${last}, must be at most 65535`;
};

/** The node's configuration: its settings, and the rules between them. */
export const NODE_CONFIG: ConfigDescription<NodeSettings> = {
  settings: NODE_SETTINGS,
  rules: [
    (config, name) =>
      config.token === undefined && config.tokenFile === undefined
        ? `the node's API token is required: ${name("token")}, or ${name("tokenFile")} naming the file that holds it`
        : undefined,
    portsFitRule,
  ],
};

/** The zod object of the node's settings (without the rules between them: `parseConfig(NODE_CONFIG, …)` checks both). */
export const NodeConfig = configSchema(NODE_SETTINGS);
/** What `runNode` takes: each setting as its value or as a string; unset ones take their default. */
export type NodeConfig = ConfigInput<NodeSettings>;
/** The node's configuration parsed, defaults applied. */
export type ParsedNodeConfig = ConfigOf<NodeSettings>;
