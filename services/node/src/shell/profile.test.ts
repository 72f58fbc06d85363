import assert from "node:assert/strict";
import { readFile, stat, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { captureLogger, tempDir } from "@slap/testkit";
import { createSlap, Waiting, type Slap } from "./profile.js";
import type { Answer } from "./master-client.js";

let dir: { path: string; dispose(): Promise<void> };
let slap: Slap;
let answer: Answer = { status: "pending", instanceId: "I2", reference: "db", reason: "not placed yet", retryAfterMs: 1_000 };

before(async () => {
  dir = await tempDir("slap-profile-");
  await writeFile(join(dir.path, "t.in"), "port={{port}} name={{ name }}\n");
  ({ slap } = createSlap({
    parameters: { a: "1" },
    instance: { instanceId: "I1", treeId: "I1", reference: "app", softwareType: "default", releaseUrl: "file:///r" },
    partition: { computerId: "C", partitionId: "slappart0", path: dir.path, address: "127.0.0.1", ports: { from: 20_000, to: 20_099 } },
    software: dir.path,
    sharedInstances: [],
    destroying: false,
    log: captureLogger().logger,
    request: () => Promise.resolve(answer),
  }));
});

after(() => dir.dispose());

describe("the slap object a profile gets", () => {
  it("acts no more once its processing is over: a profile left running after a timeout cannot write, request or declare", async () => {
    let requests = 0;
    const built = createSlap({
      parameters: {},
      instance: { instanceId: "I9", treeId: "I9", reference: "late", softwareType: "default", releaseUrl: "file:///r" },
      partition: { computerId: "C", partitionId: "slappart9", path: dir.path, address: "127.0.0.1", ports: { from: 20_900, to: 20_999 } },
      software: dir.path,
      sharedInstances: [],
      destroying: false,
      log: captureLogger().logger,
      request: () => {
        requests++;
        return Promise.resolve(answer);
      },
    });
    await built.slap.write("etc/before.conf", "ok\n");
    built.close();
    await assert.rejects(built.slap.write("etc/late.conf", "x"), /slap\.write: this processing of I9 is over/);
    assert.throws(() => built.slap.secret("late"), /slap\.secret: .* is over/);
    await assert.rejects(built.slap.request("file:///r", "someone-elses"), /slap\.request: .* is over/);
    assert.throws(() => built.slap.service("s", { command: ["sleep", "1"] }), /slap\.service: .* is over/);
    assert.throws(() => built.slap.publish({ url: "x" }), /slap\.publish: .* is over/);
    assert.equal(requests, 0);
    await assert.rejects(readFile(join(dir.path, "etc", "late.conf")), { code: "ENOENT" });
  });

  it("refuses to write, render or create files outside the partition, naming the path", async () => {
    await assert.rejects(slap.write("../escape", "x"), /"\.\.\/escape" escapes the partition/);
    await assert.rejects(slap.write("/etc/passwd", "x"), /"\/etc\/passwd" escapes the partition/);
    await assert.rejects(slap.render("t.in", "a/../../b", { port: 1, name: "n" }), /"a\/..\/..\/b" escapes the partition/);
    await assert.rejects(slap.once("../x", () => "y"), /"\.\.\/x" escapes the partition/);
  });

  it("does not rewrite unchanged content, renders templates, keeps once-files and secrets", async () => {
    const file = await slap.write("etc/a.conf", "hello\n");
    const { mtimeMs } = await stat(file);
    await new Promise((r) => setTimeout(r, 20));
    await slap.write("etc/a.conf", "hello\n");
    assert.equal((await stat(file)).mtimeMs, mtimeMs);
    await slap.render("t.in", "etc/t.conf", { port: 20_000, name: "n" });
    assert.equal(await readFile(join(dir.path, "etc/t.conf"), "utf8"), "port=20000 name=n\n");
    assert.equal(await slap.once("srv/data", () => "first"), "first");
    assert.equal(await slap.once("srv/data", () => "second"), "first");
    const secret = await slap.secret("pw", { length: 32 });
    assert.equal(secret.length, 32);
    assert.equal(await slap.secret("pw"), secret);
    assert.equal((await stat(join(dir.path, "etc/secrets/pw"))).mode & 0o777, 0o600);
  });

  it("request throws Waiting until the instance is ready, then returns its connection", async () => {
    await assert.rejects(slap.request("file:///db", "db"), (error: unknown) => error instanceof Waiting && error.reference === "db");
    answer = { status: "ready", instanceId: "I2", reference: "db", connection: { url: "x" } };
    assert.deepEqual(await slap.request("file:///db", "db"), { url: "x" });
  });

  it("refuses shell strings as commands", () => {
    assert.throws(() => slap.service("web", { command: "node server.js" as unknown as string[] }), /argv array/);
    assert.throws(() => slap.service("../web", { command: ["node"] }), /invalid service name/);
  });
});
