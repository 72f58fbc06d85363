// Warm profile hosts (DESIGN.md, "Warm profile hosts"): one Node process per partition runs its JS
// profile processing after processing, and is replaced whenever something went wrong with it.
import assert from "node:assert/strict";
import { writeFile } from "node:fs/promises";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { captureLogger, eventually, processGone, tempDir } from "@slap/testkit";
import { baseEnv } from "./declarations.js";
import { ProfileHosts } from "./profile-hosts.js";
import { PROTOCOL_VERSION, ProfileProtocolError, type ProfileAnswer, type ProfileInput } from "./profile-protocol.js";
import { ProfileTimeout } from "./profile.js";

let dir: { path: string; dispose(): Promise<void> };
let count = 0;
const { logger } = captureLogger();

before(async () => {
  dir = await tempDir("slap-hosts-");
});

after(() => dir.dispose());

function input(instanceId = "I1"): ProfileInput {
  return {
    protocol: PROTOCOL_VERSION,
    parameters: {},
    instance: { instanceId, treeId: instanceId, reference: "app", softwareType: "default", releaseUrl: "file:///r" },
    partition: { computerId: "C", partitionId: "slappart0", path: dir.path, address: "127.0.0.1", ports: { from: 20_000, to: 20_099 } },
    software: dir.path,
    sharedInstances: [],
    destroying: false,
    requests: {},
  };
}

/** A profile.mjs whose default export runs `body`; it publishes its process's pid and how often this module and this process ran it. */
async function profile(body = ""): Promise<string> {
  const file = join(dir.path, `profile-${++count}.mjs`);
  await writeFile(
    file,
    `let moduleRuns = 0;\nexport default async function deploy(slap) {\n  moduleRuns++;\n  globalThis.processRuns = (globalThis.processRuns ?? 0) + 1;\n${body}\n  slap.publish({ pid: process.pid, moduleRuns, processRuns: globalThis.processRuns });\n}\n`,
  );
  return file;
}

const spec = { cwd: "", env: {}, owner: undefined };

function run(hosts: ProfileHosts, file: string, options: { partition?: string; tag?: string; timeoutMs?: number } = {}): Promise<ProfileAnswer> {
  return hosts.run(options.partition ?? "slappart0", options.tag ?? "I1 r", { ...spec, cwd: dir.path, env: baseEnv(dir.path) }, file, input(), {
    timeoutMs: options.timeoutMs ?? 20_000,
    log: logger,
  });
}

const pidOf = (answer: ProfileAnswer): number => Number(answer.publish?.pid);

/** Runs `body` with hosts keeping `warm` alive, every host stopped after it. */
async function withHosts(warm: number, body: (hosts: ProfileHosts) => Promise<void>): Promise<void> {
  const hosts = new ProfileHosts(warm, logger);
  try {
    await body(hosts);
  } finally {
    hosts.close();
  }
}

describe("warm profile hosts", () => {
  it("run processing after processing in one process, evaluating the profile module afresh each time", async () => {
    await withHosts(2, async (hosts) => {
      const file = await profile();
      const first = await run(hosts, file);
      const second = await run(hosts, file);
      assert.equal(pidOf(second), pidOf(first), "the same host process");
      assert.equal(second.publish?.processRuns, "2", "the process ran the profile twice");
      assert.equal(second.publish?.moduleRuns, "1", "each run evaluates the module again: its module state starts afresh");
    });
  });

  it("give another instance of the partition (a new tenant) a new process, and stop the old one", async () => {
    await withHosts(2, async (hosts) => {
      const file = await profile();
      const first = pidOf(await run(hosts, file, { tag: "I1 r" }));
      const second = await run(hosts, file, { tag: "I2 r" });
      assert.notEqual(pidOf(second), first);
      assert.equal(second.publish?.processRuns, "1", "nothing the first tenant's code left in its process reaches the second");
      await eventually("the first tenant's host to be stopped", () => Promise.resolve(processGone(first) ? true : undefined), 5_000);
    });
  });

  it("keep at most `warm` alive, stopping the least recently used", async () => {
    await withHosts(1, async (hosts) => {
      const file = await profile();
      const a = pidOf(await run(hosts, file, { partition: "slappart0" }));
      const b = pidOf(await run(hosts, file, { partition: "slappart1" }));
      assert.notEqual(a, b);
      await eventually("slappart0's host to be stopped", () => Promise.resolve(processGone(a) ? true : undefined), 5_000);
      assert.equal(pidOf(await run(hosts, file, { partition: "slappart1" })), b, "the most recent one stays warm");
    });
  });

  it("cut a synchronous endless loop at the timeout with the host's whole group, and start a new host for the next run", async () => {
    await withHosts(2, async (hosts) => {
      const looping = await profile("  if (globalThis.processRuns === 2) while (true) {}");
      const pid = pidOf(await run(hosts, looping));
      await assert.rejects(run(hosts, looping, { timeoutMs: 1_000 }), (error: unknown) => error instanceof ProfileTimeout && error.message === "profile timed out after 1 s");
      assert.ok(processGone(pid), "the looping host is gone");
      const next = await run(hosts, looping);
      assert.notEqual(pidOf(next), pid);
      assert.equal(next.publish?.processRuns, "1");
    });
  });

  it("end a run whose profile exits its process, or writes on stdout, in error naming it, and replace the host", async () => {
    await withHosts(2, async (hosts) => {
      await assert.rejects(run(hosts, await profile("  process.exit(3);")), (error: unknown) => error instanceof ProfileProtocolError && /profile exited with code 3 before answering/.test(error.message));
      await assert.rejects(run(hosts, await profile('  process.stdout.write("hello\\n");')), (error: unknown) => error instanceof ProfileProtocolError && /not JSON/.test(error.message));
      const answer = await run(hosts, await profile());
      assert.equal(answer.publish?.processRuns, "1", "a new host");
    });
  });

  it("with `warm` 0, start a process of its own for every processing", async () => {
    const hosts = new ProfileHosts(0, logger);
    const file = await profile();
    const first = pidOf(await run(hosts, file));
    const second = await run(hosts, file);
    assert.notEqual(pidOf(second), first);
    assert.equal(second.publish?.processRuns, "1");
  });
});
