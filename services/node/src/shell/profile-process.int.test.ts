// The profile process (DESIGN.md, "Profile processes"): the JS runner's `slap` object (moved from
// profile.test.ts, which tested it in the node's process), and what the node does with a profile
// process that misbehaves.
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { chmod, readFile, stat, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { captureLogger, eventually, processGone, tempDir } from "@slap/testkit";
import { baseEnv, writeDeclaredFile } from "./declarations.js";
import { PROFILE_RUNNER, runProfileProcess } from "./profile-process.js";
import { PROTOCOL_VERSION, type ProfileAnswer, type ProfileInput } from "./profile-protocol.js";
import { ProfileTimeout } from "./profile.js";

let dir: { path: string; dispose(): Promise<void> };
let count = 0;

before(async () => {
  dir = await tempDir("slap-profile-");
  await writeFile(join(dir.path, "t.in"), "port={{port}} name={{ name }}\n");
});

after(() => dir.dispose());

function input(more: Partial<ProfileInput> = {}): ProfileInput {
  return {
    protocol: PROTOCOL_VERSION,
    parameters: { a: "1" },
    instance: { instanceId: "I1", treeId: "I1", reference: "app", softwareType: "default", releaseUrl: "file:///r" },
    partition: { computerId: "C", partitionId: "slappart0", path: dir.path, address: "127.0.0.1", ports: { from: 20_000, to: 20_099 } },
    software: dir.path,
    sharedInstances: [],
    destroying: false,
    requests: {},
    ...more,
  };
}

const options = (more: { timeoutMs?: number; maxAnswerBytes?: number } = {}) => ({
  cwd: dir.path,
  env: baseEnv(dir.path),
  owner: undefined,
  timeoutMs: more.timeoutMs ?? 20_000,
  maxAnswerBytes: more.maxAnswerBytes,
  log: captureLogger().logger,
});

/** Runs `body` as the default export of a profile.mjs through the JS runner. */
async function js(body: string, more: Partial<ProfileInput> = {}, opts: { timeoutMs?: number } = {}): Promise<ProfileAnswer> {
  const file = join(dir.path, `profile-${++count}.mjs`);
  await writeFile(file, `import { writeFileSync } from "node:fs";\nexport default async function deploy(slap) {\n${body}\n}\n`);
  return runProfileProcess([process.execPath, PROFILE_RUNNER, file], input(more), options(opts));
}

/** Runs a shell script as a command profile. */
async function sh(script: string, opts: { timeoutMs?: number; maxAnswerBytes?: number } = {}): Promise<ProfileAnswer> {
  const file = join(dir.path, `profile-${++count}.sh`);
  await writeFile(file, `#!/bin/sh\n${script}\n`);
  await chmod(file, 0o755);
  return runProfileProcess([file], input(), options(opts));
}

describe("the slap object of the JS profile runner", () => {
  it("declares files (write, render, once, secrets) without writing them; the node writes them, unchanged content is not rewritten", async () => {
    const answer = await js(`
      await slap.write("etc/a.conf", "hello\\n");
      await slap.render("t.in", "etc/t.conf", { port: 20000, name: "n" });
      const first = await slap.once("srv/data", () => "first");
      const second = await slap.once("srv/data", () => "second");
      const pw = await slap.secret("pw", { length: 32 });
      slap.publish({ first, second, pw, same: String(pw === (await slap.secret("pw"))) });`);
    assert.equal(answer.error, undefined);
    await assert.rejects(stat(join(dir.path, "etc/a.conf")), { code: "ENOENT" }, "the profile process wrote nothing itself");
    assert.equal(answer.publish?.first, "first");
    assert.equal(answer.publish?.second, "first");
    assert.equal(answer.publish?.pw?.length, 32);
    assert.equal(answer.publish?.same, "true");
    for (const file of answer.files) await writeDeclaredFile(dir.path, file);
    assert.equal(await readFile(join(dir.path, "etc/t.conf"), "utf8"), "port=20000 name=n\n");
    assert.equal(await readFile(join(dir.path, "etc/secrets/pw"), "utf8"), answer.publish?.pw);
    assert.equal((await stat(join(dir.path, "etc/secrets/pw"))).mode & 0o777, 0o600);
    const { mtimeMs } = await stat(join(dir.path, "etc/a.conf"));
    const again = await js(`await slap.write("etc/a.conf", "hello\\n"); slap.publish({ pw: await slap.secret("pw"), data: await slap.once("srv/data", () => "other") });`);
    for (const file of again.files) await writeDeclaredFile(dir.path, file);
    assert.equal((await stat(join(dir.path, "etc/a.conf"))).mtimeMs, mtimeMs);
    assert.deepEqual(again.publish, { pw: answer.publish?.pw, data: "first" }, "the secret and the once-file are kept");
  });

  it("refuses to write, render or create files outside the partition, naming the path", async () => {
    assert.match((await js(`await slap.write("../escape", "x");`)).error ?? "", /"\.\.\/escape" escapes the partition/);
    assert.match((await js(`await slap.write("/etc/passwd", "x");`)).error ?? "", /"\/etc\/passwd" escapes the partition/);
    assert.match((await js(`await slap.render("t.in", "a/../../b", { port: 1, name: "n" });`)).error ?? "", /"a\/..\/..\/b" escapes the partition/);
    assert.match((await js(`await slap.once("../x", () => "y");`)).error ?? "", /"\.\.\/x" escapes the partition/);
  });

  it("request stops the run as waiting until the node gives it a ready answer, then returns its connection", async () => {
    const body = `const db = await slap.request("file:///db", "db", { parameters: { size: "1" } }); slap.publish({ db: db.url });`;
    const waiting = await js(body);
    assert.deepEqual(waiting.waiting, { reference: "db", reason: "requested" });
    assert.deepEqual(waiting.requests, [{ releaseUrl: "file:///db", reference: "db", parameters: { size: "1" } }]);
    assert.equal(waiting.publish, undefined);
    const ready = await js(body, { requests: { db: { status: "ready", connection: { url: "x" } } } });
    assert.equal(ready.waiting, undefined);
    assert.deepEqual(ready.publish, { db: "x" });
  });

  it("refuses shell strings as commands and bad names", async () => {
    assert.match((await js(`slap.service("web", { command: "node server.js" });`)).error ?? "", /argv array/);
    assert.match((await js(`slap.service("../web", { command: ["node"] });`)).error ?? "", /invalid service name/);
  });

  it("gives the profile only the partition's environment (no token, no credentials of the node) and its folder as cwd", async () => {
    process.env.SLAP_TEST_NODE_SECRET = "must-not-leak";
    try {
      const answer = await js(`slap.publish({ env: Object.keys(process.env).sort().join(","), cwd: process.cwd() });`);
      assert.deepEqual(answer.publish, { env: "HOME,LANG,PATH,TMPDIR", cwd: dir.path });
    } finally {
      delete process.env.SLAP_TEST_NODE_SECRET;
    }
  });

  it("acts no more once it answered: its process is gone, so nothing it left running can write later", async () => {
    const answer = await js(`setInterval(() => writeFileSync(slap.partition.path + "/late", "x"), 1); slap.publish({ pid: String(process.pid) });`);
    assert.ok(processGone(Number(answer.publish?.pid)), "the profile process is gone");
  });
});

describe("a profile process that misbehaves ends its processing in error, naming what it did", () => {
  it("prints garbage", async () => {
    await assert.rejects(sh("echo hello"), /not JSON on stdout: "hello\\n"/);
  });

  it("exits early, or without answering", async () => {
    await assert.rejects(sh("echo 'no config' >&2; exit 3"), /exited with code 3 before answering\n--- last lines of its stderr ---\nno config/);
    await assert.rejects(sh("exit 0"), /exited without answering/);
  });

  it("answers twice", async () => {
    await assert.rejects(sh(`echo '{"publish":{"a":"1"}}'; echo '{"publish":{"a":"2"}}'`), /answered 2 times/);
  });

  it("answers something that is not a valid answer, naming where", async () => {
    await assert.rejects(sh(`echo '{"services":{"web":{"command":"sleep 1"}}}'`), /services\.web\.command/);
    await assert.rejects(sh(`echo '{"run":{}}'`), /profile answer is not valid: .*run/);
  });

  it("sends more than the bound: it is killed", async () => {
    await assert.rejects(sh("while true; do echo '{\"publish\":{\"a\":\"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\"}}'; done", { maxAnswerBytes: 10_000 }), /more than 10000 bytes/);
  });

  it("never ends, in a synchronous loop: the whole process group is killed at the timeout and the node's event loop went on meanwhile", async () => {
    let ticks = 0;
    const ticker = setInterval(() => ticks++, 20);
    try {
      await assert.rejects(js("while (true) {}", {}, { timeoutMs: 1_000 }), (error: unknown) => error instanceof ProfileTimeout && error.message === "profile timed out after 1 s");
    } finally {
      clearInterval(ticker);
    }
    assert.ok(ticks >= 10, `the node's timers fired while the profile looped (${ticks} ticks)`);
    await assert.rejects(js("await new Promise(() => {});", {}, { timeoutMs: 300 }), /profile timed out after 0\.3 s/, "a profile awaiting what never settles hangs until its timeout");
    const pidFile = join(dir.path, "child.pid");
    // Long enough for a loaded machine to start the shell and write the pid file before the kill.
    await assert.rejects(sh(`sleep 1000 & echo $! > ${pidFile}; wait`, { timeoutMs: 3_000 }), ProfileTimeout);
    // The group got its signal with the shell; the shell's child dies a moment later (SIGKILL follows 2 s after at most).
    const started = Number(readFileSync(pidFile, "utf8").trim());
    await eventually("what the profile started to be killed with it", () => Promise.resolve(processGone(started) ? true : undefined), 5_000);
  });

  it("ends at its timeout even when something it started left its process group and holds its output open", { timeout: 20_000 }, async () => {
    const pidFile = join(dir.path, "escaped.pid");
    // setsid: a new session, out of reach of the group kill, with the profile's stdout still open.
    const run = sh(`setsid sleep 1000 & echo $! > ${pidFile}; while :; do :; done`, { timeoutMs: 500 });
    try {
      await assert.rejects(run, (error: unknown) => error instanceof ProfileTimeout && error.message === "profile timed out after 0.5 s");
    } finally {
      const escaped = Number(readFileSync(pidFile, "utf8").trim());
      if (!processGone(escaped)) process.kill(escaped, "SIGKILL");
    }
  });
});
