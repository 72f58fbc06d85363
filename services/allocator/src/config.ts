/**
 * The allocator's configuration, described once: `runAllocator` parses it, `configFromEnv` reads
 * it from the environment, and `slap allocator` (apps/cli) takes its flags, variables, help and
 * validation from it.
 */
import { Token, configSchema, logLevelSetting, type ConfigDescription, type ConfigInput, type ConfigOf, type Setting } from "@slap/events";
import { natsCredentialsRule, natsSettings, natsTlsRule } from "@slap/eventstore-jetstream";
import { z } from "zod";

/** The allocator's settings. */
export const ALLOCATOR_SETTINGS = {
  nats: { ...natsSettings.nats, defaultHelp: "the embedded log" },
  data: {
    schema: z.string().min(1),
    flag: "data",
    placeholder: "DIR",
    env: "SLAP_DATA",
    default: "./data",
    help: "the embedded log's folder (when no NATS URL is given), and the allocator's checkpoints",
  },
  replica: {
    schema: Token.optional(),
    flag: "replica",
    placeholder: "NAME",
    env: "ALLOCATOR_REPLICA",
    help: "this replica's name, when several allocators run",
    note: "in every log line; its trailing number sets the rotation, see README",
  },
  streamName: natsSettings.streamName,
  logLevel: logLevelSetting,
  maxInFlight: {
    schema: z.coerce.number({ error: "must be a number" }).int("must be a whole number").min(1, "must be at least 1").max(10_000, "must be at most 10000").optional(),
    env: "ALLOCATOR_MAX_IN_FLIGHT",
    defaultHelp: "128",
    help: "the most appends in flight",
  },
  natsUser: natsSettings.natsUser,
  natsPassword: natsSettings.natsPassword,
  natsCa: natsSettings.natsCa,
  natsCert: natsSettings.natsCert,
  natsKey: natsSettings.natsKey,
  replicas: natsSettings.replicas,
} as const satisfies Record<string, Setting>;

export type AllocatorSettings = typeof ALLOCATOR_SETTINGS;

/** The allocator's configuration: its settings, and the rules between them. */
export const ALLOCATOR_CONFIG: ConfigDescription<AllocatorSettings> = { settings: ALLOCATOR_SETTINGS, rules: [natsCredentialsRule, natsTlsRule] };

/** The zod object of the allocator's settings (without the rules between them: `parseConfig(ALLOCATOR_CONFIG, …)` checks both). */
export const AllocatorConfig = configSchema(ALLOCATOR_SETTINGS);
/** What `runAllocator` takes: each setting as its value or as a string; unset ones take their default. */
export type AllocatorConfig = ConfigInput<AllocatorSettings>;
export type ParsedAllocatorConfig = ConfigOf<AllocatorSettings>;
