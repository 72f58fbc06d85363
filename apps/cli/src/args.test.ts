import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { z } from "zod";
import { HELP, UsageError, atMostOne, jsonKeyValues, keyValues, splitArgv, validate } from "./args.js";

describe("command-line parsing", () => {
  const spec = { options: { param: { type: "string", multiple: true }, json: { type: "boolean" } }, positionals: ["release", "reference"] } as const;

  it("splits options and names the positional arguments", () => {
    const parsed = splitArgv(spec, ["rel", "--param", "a=1", "ref", "--param", "b=2", "--json"]);
    assert.notEqual(parsed, HELP);
    assert.deepEqual(parsed, { values: { param: ["a=1", "b=2"], json: true }, positionals: { release: "rel", reference: "ref" } });
  });

  it("answers HELP for --help or -h wherever it is", () => {
    assert.equal(splitArgv(spec, ["rel", "--help"]), HELP);
    assert.equal(splitArgv(spec, ["-h"]), HELP);
  });

  it("reports an unknown option, a missing value, a missing and an extra argument as usage errors", () => {
    assert.throws(() => splitArgv(spec, ["a", "b", "--nope"]), { name: "UsageError", message: "unknown option --nope" });
    assert.throws(() => splitArgv(spec, ["a", "b", "--param"]), { name: "UsageError", message: "--param needs a value" });
    assert.throws(() => splitArgv(spec, ["a"]), { name: "UsageError", message: "missing <reference>" });
    assert.throws(() => splitArgv(spec, []), { name: "UsageError", message: "missing <release> <reference>" });
    assert.throws(() => splitArgv(spec, ["a", "b", "c"]), { name: "UsageError", message: 'unexpected argument "c"' });
  });

  it("splits k=v on the first = so that values may contain =", () => {
    assert.deepEqual(keyValues("param", ["url=http://x/?a=b", "empty=", "k=1", "k=2"]), { url: "http://x/?a=b", empty: "", k: "2" });
    assert.deepEqual(keyValues("param", undefined), {});
    assert.deepEqual(jsonKeyValues("param-json", ["n=3", "tls=true", 'o={"port":80}', 's="x=y"']), { n: 3, tls: true, o: { port: 80 }, s: "x=y" });
    assert.throws(() => jsonKeyValues("param-json", ["n=three"]), /--param-json "n=three": the value is not JSON/);
  });

  it("rejects a pair without = or with an empty key, naming the flag and the pair", () => {
    assert.throws(() => keyValues("param", ["ok=1", "oops"]), (error: unknown) => {
      assert.ok(error instanceof UsageError);
      assert.equal(error.message, '--param "oops": expected key=value');
      assert.equal(error.exitCode, 64);
      return true;
    });
    assert.throws(() => keyValues("sla", ["=v"]), { message: '--sla "=v": expected key=value' });
  });

  it("reports zod issues with the flag or label they are about, on one line", () => {
    const schema = z.object({ port: z.coerce.number().int().max(10), release: z.string().min(1) });
    assert.throws(() => validate(schema, { port: "99", release: "" }, { release: "<release>" }), (error: unknown) => {
      assert.ok(error instanceof UsageError);
      assert.match(error.message, /^--port: .*; <release>: .*$/);
      assert.doesNotMatch(error.message, /\n/);
      return true;
    });
  });

  it("refuses to combine flags of which only one is allowed", () => {
    assert.doesNotThrow(() => atMostOne({ tree: "t", instance: undefined }));
    assert.throws(() => atMostOne({ tree: "t", instance: "i" }), { message: "--tree and --instance cannot be combined" });
  });
});
