import { Token, type ConfigRule, type Setting } from "@slap/events";
import { z } from "zod";
import { natsConfigFields } from "./credentials.js";
import { DEFAULT_STREAM_NAME } from "./store.js";

/**
 * The settings of the event log on JetStream that every service shares (spread into its
 * description): the NATS URL, the stream, the NATS user and password (environment only: a
 * password is never a flag, argv is visible to every local user) and the replicas of the streams
 * when they are created. A service overrides a setting's help where it means something else
 * (`{ ...natsSettings.nats, help: … }`).
 */
export const natsSettings = {
  nats: {
    schema: z.string().min(1).optional(),
    flag: "nats",
    placeholder: "URL",
    env: "NATS_URL",
    help: "NATS server(s) with JetStream, comma-separated: the event log",
  },
  streamName: { schema: Token.optional(), env: "SLAP_STREAM", defaultHelp: DEFAULT_STREAM_NAME, help: "the JetStream stream of the log" },
  natsUser: { schema: natsConfigFields.natsUser, env: "NATS_USER", help: "the NATS user (see slap nats-config); with NATS_PASSWORD" },
  natsPassword: { schema: natsConfigFields.natsPassword, env: "NATS_PASSWORD", help: "its password (never a flag)" },
  replicas: { schema: natsConfigFields.replicas, env: "SLAP_REPLICAS", help: "the replicas (1, 3, 5) of the stream when it is created" },
  natsCa: { schema: z.string().min(1).optional(), env: "NATS_CA", help: "TLS to NATS: the CA file (PEM) the server's certificate must chain to (with a tls:// URL or a server that requires TLS)" },
  natsCert: { schema: z.string().min(1).optional(), env: "NATS_CERT", help: "TLS to NATS: this service's client certificate (PEM), for a server that verifies clients; with NATS_KEY" },
  natsKey: { schema: z.string().min(1).optional(), env: "NATS_KEY", help: "TLS to NATS: the client certificate's key (PEM); with NATS_CERT" },
} as const satisfies Record<string, Setting>;

/** NATS_CERT and NATS_KEY go together. */
export const natsTlsRule: ConfigRule<{ natsCert?: string | undefined; natsKey?: string | undefined }> = (config, name) =>
  (config.natsCert === undefined) === (config.natsKey === undefined) ? undefined : `${name("natsCert")} and ${name("natsKey")}: set both or neither`;

/** NATS_USER and NATS_PASSWORD go together. */
export const natsCredentialsRule: ConfigRule<{ natsUser?: string | undefined; natsPassword?: string | undefined }> = (config, name) =>
  (config.natsUser === undefined) === (config.natsPassword === undefined) ? undefined : `${name("natsUser")} and ${name("natsPassword")}: set both or neither`;
