import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { z } from "zod";
import { Token } from "./ids.js";
import { argvOptionsOf, configFromEnvOf, describeSettings, envNamesOf, parseConfig, readConfig, usageOf, type ConfigDescription, type Setting } from "./config.js";

const settings = {
  port: { schema: z.coerce.number({ error: "must be a port number" }).int().min(0).max(65_535), flag: "port", placeholder: "N", env: "PORT", default: "8080", help: "HTTP port", note: "0 picks a free one" },
  name: { schema: Token, flag: "name", placeholder: "ID", env: "SLAP_NAME", help: "the name" },
  url: { schema: z.string().min(1).optional(), flag: "url", placeholder: "URL", env: "SLAP_URL", defaultHelp: "none", help: "where" },
  file: { schema: z.string().min(1).optional(), flag: "file", placeholder: "FILE", env: "SLAP_FILE", help: "the file holding the secret" },
  secret: { schema: z.string().min(8, "must be at least 8 characters").optional(), env: "SLAP_SECRET", yieldsToFlagOf: "file", help: "the secret itself" },
  code: { schema: z.string().optional(), help: "given by a program only" },
} as const satisfies Record<string, Setting>;

const description: ConfigDescription<typeof settings> = {
  settings,
  rules: [(config, name) => (config.port === 0 && config.url !== undefined ? `${name("port")} and ${name("url")}: a free port cannot be announced` : undefined)],
};

describe("a configuration described once", () => {
  it("reads each setting from its flag, else its variable (empty counts as unset), else its default", () => {
    assert.deepEqual(readConfig(description, { port: "9000" }, { PORT: "1", SLAP_NAME: "n1" }), {
      ok: true,
      config: { port: 9_000, name: "n1", url: undefined, file: undefined, secret: undefined, code: undefined },
    });
    const fromEnv = readConfig(description, {}, { PORT: "", SLAP_NAME: "n1", SLAP_URL: "http://x" });
    assert.deepEqual(fromEnv.ok && [fromEnv.config.port, fromEnv.config.url], [8_080, "http://x"]);
  });

  it("names the flag and the variable a bad value came from, and says a missing one is required", () => {
    assert.deepEqual(readConfig(description, { port: "http" }, {}), {
      ok: false,
      issues: ["--port (or PORT): must be a port number", "--name (or SLAP_NAME): is required"],
    });
    assert.deepEqual(readConfig(description, {}, { SLAP_NAME: "a b", SLAP_SECRET: "short" }), {
      ok: false,
      issues: ["--name (or SLAP_NAME): must be 1-64 characters of A-Z, a-z, 0-9, _ or -", "SLAP_SECRET: must be at least 8 characters"],
    });
    assert.deepEqual(readConfig(description, {}, { SLAP_NAME: "n" }, { required: ["url"] }), { ok: false, issues: ["--url (or SLAP_URL): is required"] });
  });

  it("parses a program's configuration with the same schemas, naming the key and its variable, defaults applied", () => {
    assert.deepEqual(parseConfig(description, { name: "n", port: 70_000 }), { ok: false, issues: ["port (PORT): must be a port number"] });
    assert.deepEqual(parseConfig(description, { name: "n", code: "c" }), { ok: true, config: { port: 8_080, name: "n", code: "c" } });
    assert.deepEqual(parseConfig(description, {}), { ok: false, issues: ["name (SLAP_NAME): is required"] });
  });

  it("checks the rules between settings once each parsed, naming them as the reader knows them", () => {
    assert.deepEqual(readConfig(description, { port: "0", url: "http://x" }, { SLAP_NAME: "n" }), {
      ok: false,
      issues: ["--port (or PORT) and --url (or SLAP_URL): a free port cannot be announced"],
    });
    assert.deepEqual(parseConfig(description, { name: "n", port: 0, url: "http://x" }), { ok: false, issues: ["port (PORT) and url (SLAP_URL): a free port cannot be announced"] });
  });

  it("leaves a setting unset when the flag of the one it yields to is given, whatever its variable says", () => {
    const env = { SLAP_NAME: "n", SLAP_SECRET: "secret-from-env" };
    const withFlag = readConfig(description, { file: "f" }, env);
    assert.deepEqual(withFlag.ok && [withFlag.config.file, withFlag.config.secret], ["f", undefined]);
    const withVariable = readConfig(description, {}, { ...env, SLAP_FILE: "f" });
    assert.deepEqual(withVariable.ok && [withVariable.config.file, withVariable.config.secret], ["f", "secret-from-env"]);
  });

  it("derives the flags, the variables and a configuration from the environment", () => {
    assert.deepEqual(argvOptionsOf(settings), { port: { type: "string" }, name: { type: "string" }, url: { type: "string" }, file: { type: "string" } });
    assert.deepEqual(envNamesOf(settings), ["PORT", "SLAP_NAME", "SLAP_URL", "SLAP_FILE", "SLAP_SECRET"]);
    assert.deepEqual(configFromEnvOf(settings, { PORT: "1", SLAP_SECRET: "s", OTHER: "x" }), {
      port: "1",
      name: undefined,
      url: undefined,
      file: undefined,
      secret: "s",
    });
  });

  it("writes the help: flags with their variable and default or required, then the variables without a flag", () => {
    assert.equal(usageOf(settings), "[--port N] --name ID [--url URL] [--file FILE]");
    assert.equal(usageOf(settings, { required: ["url"] }), "[--port N] --name ID --url URL [--file FILE]");
    assert.equal(
      describeSettings(settings),
      [
        "options:",
        "  --port N     HTTP port (env PORT, default 8080; 0 picks a free one)",
        "  --name ID    the name (env SLAP_NAME, required)",
        "  --url URL    where (env SLAP_URL, default none)",
        "  --file FILE  the file holding the secret (env SLAP_FILE)",
        "",
        "environment (no flag):",
        "  SLAP_SECRET  the secret itself",
      ].join("\n"),
    );
    assert.match(describeSettings({ long: { ...settings.name, help: "word ".repeat(40).trim() } }), /^options:\n {2}--name ID {2}(word ){15,}word\n {13}word/);
  });
});
