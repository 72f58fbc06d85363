import assert from "node:assert/strict";
import { describe, it } from "node:test";
import type { JsonValue, ParametersSchema } from "@slap/events";
import { checkParameters } from "./parameters.js";

const schema: ParametersSchema = {
  type: "object",
  properties: {
    greeting: { type: "string", default: "hello", pattern: "^[a-z]+$", maxLength: 8 },
    mode: { type: "string", enum: ["fast", "safe"] },
    name: { type: "string", minLength: 2 },
    replicas: { type: "integer", minimum: 1, default: 3 },
    tls: { type: "boolean" },
  },
  required: ["name"],
  additionalProperties: false,
};

/** Asserts a rejection naming `parameter`, its message matching. */
function refused(raw: Record<string, JsonValue>, s: ParametersSchema, parameter: string, message: RegExp): void {
  const result = checkParameters(raw, s);
  assert.equal(result.ok, false, JSON.stringify(raw));
  if (result.ok) return;
  assert.equal(result.parameter, parameter, result.message);
  assert.match(result.message, message);
}

describe("instance parameters against a release's schema (Ajv)", () => {
  it("drops empty values and applies defaults, typed", () => {
    assert.deepEqual(checkParameters({ greeting: "", name: "db" }, schema), { ok: true, parameters: { greeting: "hello", name: "db", replicas: 3 } });
  });

  it("without a schema keeps every non-empty value as it is", () => {
    assert.deepEqual(checkParameters({ a: "1", b: "", n: 2, on: false }, undefined), { ok: true, parameters: { a: "1", n: 2, on: false } });
  });

  it("names the parameter that breaks a rule", () => {
    refused({}, schema, "name", /parameter name is required/);
    refused({ name: "x" }, schema, "name", /fewer than 2 characters/);
    refused({ name: "db", greeting: "Hi!" }, schema, "greeting", /must match pattern/);
    refused({ name: "db", greeting: "abcdefghij" }, schema, "greeting", /more than 8 characters/);
    refused({ name: "db", mode: "slow" }, schema, "mode", /allowed values/);
    refused({ name: "db", colour: "red" }, schema, "colour", /parameter colour is not allowed/);
    refused({ name: "db", replicas: "3" }, schema, "replicas", /must be integer \(got "3"\)/);
    refused({ name: "db", replicas: 0 }, schema, "replicas", /must be >= 1/);
    refused({ name: "db", tls: "yes" }, schema, "tls", /must be boolean/);
  });

  it("follows $ref, oneOf, nested objects and arrays (draft-07)", () => {
    const nested: ParametersSchema = {
      $schema: "http://json-schema.org/draft-07/schema#",
      definitions: { port: { type: "integer", minimum: 1, maximum: 65535 } },
      type: "object",
      properties: {
        frontend: { type: "object", properties: { port: { $ref: "#/definitions/port" } }, required: ["port"] },
        backends: { type: "array", items: { type: "string" } },
        size: { oneOf: [{ type: "integer" }, { type: "string", enum: ["small", "large"] }] },
      },
    };
    assert.deepEqual(checkParameters({ frontend: { port: 8080 }, backends: ["a"], size: "small" }, nested), { ok: true, parameters: { backends: ["a"], frontend: { port: 8080 }, size: "small" } });
    refused({ frontend: { port: 70000 } }, nested, "frontend", /parameter frontend\/port must be <= 65535/);
    refused({ frontend: {} }, nested, "frontend", /parameter port in frontend is required/);
    refused({ backends: ["a", 2] }, nested, "backends", /parameter backends\/1 must be string/);
    refused({ size: "medium" }, nested, "size", /parameter size must match exactly one schema/);
  });

  it("reads 2020-12 schemas by their $schema ($defs, prefixItems)", () => {
    const modern: ParametersSchema = {
      $schema: "https://json-schema.org/draft/2020-12/schema",
      $defs: { level: { enum: ["debug", "info"] } },
      type: "object",
      properties: { log: { $ref: "#/$defs/level" }, pair: { type: "array", prefixItems: [{ type: "string" }, { type: "integer" }] } },
    };
    assert.equal(checkParameters({ log: "info", pair: ["a", 1] }, modern).ok, true);
    refused({ log: "trace" }, modern, "log", /allowed values/);
    refused({ pair: ["a", "b"] }, modern, "pair", /parameter pair\/1 must be integer/);
  });

  it("says so when the release's schema itself is invalid", () => {
    const result = checkParameters({ a: "1" }, { type: "object", properties: { a: { type: "no-such-type" } } });
    assert.equal(result.ok, false);
    assert.match(result.ok ? "" : result.message, /schema is invalid/);
  });
});
