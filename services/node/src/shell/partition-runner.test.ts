import assert from "node:assert/strict";
import { chmod, mkdir, readFile, stat, symlink, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { afterEach, describe, it } from "node:test";
import { desiredStateOf, masterProjection, type DomainEvent, type MasterView } from "@slap/events";
import { eventually, fixtures, foldEvents, tempDir } from "@slap/testkit";
import { pino } from "pino";
import { MasterError, type MasterClient } from "./master-client.js";
import { PartitionRunner, type Desired } from "./partition-runner.js";
import { nodeStateDir, STATE_FILE } from "./partition-state.js";
import { ProfileHosts } from "./profile-hosts.js";
import { INSTALLED_MARKER, softwareDir } from "./software.js";

const RELEASE = "file:///software/runner-test";
const silent = pino({ level: "silent" });

/** A master that records what the runner tells it; `failPublish` times, publishing fails as a master that is down. */
class FakeMaster {
  readonly calls: string[] = [];
  readonly messages: string[] = [];
  failPublish = 0;
  reportStatus(partitionId: string, instanceId: string, report: { status: string; message?: string }): Promise<{ position: number }> {
    this.calls.push(`status ${partitionId} ${instanceId} ${report.status}`);
    if (report.message !== undefined) this.messages.push(report.message);
    return Promise.resolve({ position: 1 });
  }
  request(partitionId: string, body: { reference: string }): Promise<unknown> {
    this.calls.push(`request ${partitionId} ${body.reference}`);
    return Promise.resolve({ status: "pending", instanceId: "I9", reference: body.reference, reason: "not placed yet", retryAfterMs: 1_000 });
  }
  publish(partitionId: string, instanceId: string, parameters: Record<string, string>): Promise<{ position: number }> {
    if (this.failPublish > 0) {
      this.failPublish--;
      this.calls.push(`publish failed ${partitionId} ${instanceId}`);
      return Promise.reject(new MasterError("master unavailable", 503, "ServiceUnavailable", true));
    }
    this.calls.push(`publish ${partitionId} ${instanceId} ${JSON.stringify(parameters)}`);
    return Promise.resolve({ position: 1 });
  }
  destroyed(partitionId: string, instanceId: string): Promise<{ position: number }> {
    this.calls.push(`destroyed ${partitionId} ${instanceId}`);
    return Promise.resolve({ position: 1 });
  }
  bang(partitionId: string, instanceId: string): Promise<{ position: number }> {
    this.calls.push(`bang ${partitionId} ${instanceId}`);
    return Promise.resolve({ position: 1 });
  }
}

let cleanup: Array<() => Promise<void>> = [];
afterEach(async () => {
  for (const close of cleanup.reverse()) await close();
  cleanup = [];
});

/** A runner for slappart0 of C1 in a temporary node folder with an installed release whose profile publishes a URL. */
async function setUp(events: DomainEvent[]) {
  const dir = await tempDir("slap-runner-");
  cleanup.push(() => dir.dispose());
  const software = softwareDir(dir.path, RELEASE);
  await mkdir(software, { recursive: true });
  await writeFile(join(software, "slap-release.json"), JSON.stringify({ name: "runner-test", install: [], profiles: { default: "profile.mjs" } }));
  await writeFile(join(software, "profile.mjs"), "export default async function deploy(slap) { slap.publish({ url: `http://${slap.partition.address}` }); }\n");
  await writeFile(join(software, INSTALLED_MARKER), "");
  let view: MasterView = foldEvents(masterProjection, events);
  /** slappart0's entry of C1's desired state, as the master serves it. */
  const entry = () => desiredStateOf(view, "C1", 0)?.partitions.find((p) => p.partitionId === "slappart0");
  const master = new FakeMaster();
  const retries: number[] = [];
  const profiles = new ProfileHosts(1, silent);
  const runner = new PartitionRunner({
    computerId: "C1",
    partitionId: "slappart0",
    path: join(dir.path, "slappart0"),
    root: dir.path,
    client: master as unknown as MasterClient,
    profiles,
    desired: entry,
    releaseInstalled: () => true,
    logger: silent,
    maxPeriodicityMs: 86_400_000,
    track: (work) => void work,
    onRetryDue: () => retries.push(Date.now()),
    onReleaseMissing: () => undefined,
  });
  cleanup.push(async () => {
    runner.halt();
    await runner.settled();
    profiles.close();
    await runner.close();
  });
  await runner.prepare(false, undefined);
  const held = (installed = true): Desired => {
    const partition = entry();
    assert.ok(partition !== undefined);
    return { kind: "held", partition, releaseInstalled: installed };
  };
  /** Makes the release's profile a shell script printing `answer` (a command profile). */
  const answering = async (answer: unknown): Promise<void> => {
    await writeFile(join(software, "slap-release.json"), JSON.stringify({ name: "runner-test", install: [], profiles: { default: { command: ["./instance.sh"] } } }));
    await writeFile(join(software, "instance.sh"), `#!/bin/sh\ncat > /dev/null\necho '${JSON.stringify(answer)}'\n`);
    await chmod(join(software, "instance.sh"), 0o755);
  };
  return { runner, master, retries, held, answering, root: dir.path, path: join(dir.path, "slappart0"), setView: (more: DomainEvent[]) => (view = foldEvents(masterProjection, [...events, ...more])) };
}

const placed = (): DomainEvent[] => [
  fixtures.computerRegistered("C1", 1),
  fixtures.instanceRequested("I1", { releaseUrl: RELEASE }),
  fixtures.partitionAllocated("C1", "slappart0", "I1"),
];

describe("partition runner", () => {
  it("deploys a held instance once: reports processing, publishes, reports started, saves its state; the same wish again does nothing", async () => {
    const { runner, master, held, path } = await setUp(placed());
    runner.update(held());
    assert.ok(runner.processing !== undefined, "a processing started");
    await runner.settled();
    assert.deepEqual(master.calls, ["status slappart0 I1 processing", 'publish slappart0 I1 {"url":"http://10.0.0.1"}', "status slappart0 I1 started"]);
    const state = JSON.parse(await readFile(join(nodeStateDir(path), STATE_FILE), "utf8")) as { instanceId: string; outcome: string };
    assert.deepEqual({ instanceId: state.instanceId, outcome: state.outcome }, { instanceId: "I1", outcome: "started" });
    runner.update(held());
    assert.equal(runner.processing, undefined);
    await runner.settled();
    assert.equal(master.calls.length, 3);
  });

  it("waits for the release to be installed before deploying", async () => {
    const { runner, master, held } = await setUp(placed());
    runner.update(held(false));
    await runner.settled();
    assert.deepEqual(master.calls, []);
    runner.update(held(true));
    await runner.settled();
    assert.equal(master.calls.at(-1), "status slappart0 I1 started");
  });

  it("when the master does not take the processing, records nothing, ignores updates until its retry is due, then finishes", async () => {
    const { runner, master, retries, held, path } = await setUp(placed());
    master.failPublish = 1;
    runner.update(held());
    await runner.settled();
    assert.deepEqual(master.calls, ["status slappart0 I1 processing", "publish failed slappart0 I1"]);
    await assert.rejects(readFile(join(nodeStateDir(path), STATE_FILE)), "no state saved for an unfinished processing");
    runner.update(held());
    assert.equal(runner.processing, undefined, "no processing while the retry timer runs");
    await eventually("the retry is due", () => Promise.resolve(retries.length > 0 ? true : undefined), 5_000, 20);
    runner.update(held());
    await runner.settled();
    assert.equal(master.calls.at(-1), "status slappart0 I1 started");
  });

  it("reprocesses on demand, destroys when asked (wiping the partition, telling the master), and starts nothing once halted", async () => {
    const { runner, master, held, setView } = await setUp(placed());
    runner.update(held());
    await runner.settled();
    runner.reprocess();
    runner.update(held());
    await runner.settled();
    assert.equal(master.calls.filter((c) => c.endsWith("started")).length, 2);
    setView([{ ...fixtures.instanceBanged("I1"), type: "InstanceRequestedStateChanged", data: { requestedState: "destroyed" } }]);
    runner.update(held());
    await runner.settled();
    assert.equal(master.calls.at(-1), "destroyed slappart0 I1");
    runner.halt();
    runner.reprocess();
    runner.update(held());
    assert.equal(runner.processing, undefined);
  });

  it("ends in error naming the path when a profile process answers a write outside its partition, and applies nothing of that answer", async () => {
    const { runner, master, held, answering, path } = await setUp(placed());
    await answering({ files: [{ path: "etc/ok.conf", content: "x" }, { path: "../slappart1/etc/x", content: "x" }], services: { web: { command: ["sleep", "100"] } }, publish: { url: "u" } });
    runner.update(held());
    await runner.settled();
    assert.equal(master.calls.at(-1), "status slappart0 I1 error");
    assert.match(master.messages.at(-1) ?? "", /"\.\.\/slappart1\/etc\/x" escapes the partition/);
    assert.ok(!master.calls.some((c) => c.startsWith("publish")), "nothing published");
    await assert.rejects(stat(join(path, "etc/ok.conf")), { code: "ENOENT" }, "not even the files inside");
    assert.equal(runner.servicePid("web"), undefined);
  });

  it("refuses a write through a symbolic link leading out of the partition", async () => {
    const { runner, master, held, answering, path, root } = await setUp(placed());
    await mkdir(join(root, "outside"));
    await mkdir(path, { recursive: true });
    await symlink(join(root, "outside"), join(path, "link"));
    await answering({ files: [{ path: "link/x", content: "x" }] });
    runner.update(held());
    await runner.settled();
    assert.equal(master.calls.at(-1), "status slappart0 I1 error");
    assert.match(master.messages.at(-1) ?? "", /"link\/x" escapes the partition/);
    await assert.rejects(stat(join(root, "outside", "x")), { code: "ENOENT" });
  });

  it("ends in error when a profile process requests as another partition or publishes for an instance not attached to it; nothing is requested", async () => {
    const { runner, master, held, answering } = await setUp(placed());
    await answering({ requests: [{ releaseUrl: "file:///db", reference: "db", partitionId: "slappart1" }] });
    runner.update(held());
    await runner.settled();
    assert.match(master.messages.at(-1) ?? "", /asked to request db as partition slappart1: it requests only as its own partition slappart0/);
    assert.ok(!master.calls.some((c) => c.startsWith("request")), "no request made");
    await answering({ publishShared: { I7: { url: "u" } } });
    runner.reprocess();
    runner.update(held());
    await runner.settled();
    assert.match(master.messages.at(-1) ?? "", /publish for I7, which is not a shared instance attached to this instance/);
    assert.ok(!master.calls.some((c) => c.startsWith("publish")), "nothing published");
  });

  it("makes the requests a profile process declared, as its partition, and ends waiting for one not ready", async () => {
    const { runner, master, held, answering } = await setUp(placed());
    await answering({ requests: [{ releaseUrl: "file:///db", reference: "db" }], waiting: { reference: "db", reason: "requested" } });
    runner.update(held());
    await runner.settled();
    assert.deepEqual(master.calls, ["status slappart0 I1 processing", "request slappart0 db", "status slappart0 I1 waiting"]);
    assert.equal(master.messages.at(-1), "waiting for db: not placed yet");
  });

  it("kills a profile process in flight when halted: its processing ends at once and records nothing", async () => {
    const { runner, master, held, path, root } = await setUp(placed());
    await writeFile(join(softwareDir(root, RELEASE), "profile.mjs"), 'import { writeFileSync } from "node:fs";\nexport default async function deploy(slap) { writeFileSync(slap.partition.path + "/entered", ""); await new Promise(() => {}); }\n');
    runner.update(held());
    await eventually("the profile to be entered", () => stat(join(path, "entered")).then(() => true), 10_000, 20);
    const started = Date.now();
    runner.halt();
    await runner.settled();
    assert.ok(Date.now() - started < 5_000, "halting did not wait for the profile's 10 min timeout");
    assert.deepEqual(master.calls, ["status slappart0 I1 processing"], "no error reported for an interrupted processing");
    await assert.rejects(readFile(join(nodeStateDir(path), STATE_FILE)), "no state saved");
  });
});
