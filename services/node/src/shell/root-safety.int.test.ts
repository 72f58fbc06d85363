// Root-safe file handling (DESIGN.md, "Root-safe file handling"): what a tenant plants in its own
// partition never makes the node, as root, reach a file or a process that is not the partition's.
// The attacks run as a real partition user when the tests run as root (as CI does).
import assert from "node:assert/strict";
import { spawn, type ChildProcess } from "node:child_process";
import { mkdir, readdir, readFile, stat, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { captureLogger, eventually, processGone, tempDir } from "@slap/testkit";
import { inFolder, openPartitionLog, ownTreeBeneath, readTailBeneath, emptyFolder, PlantedLinkError } from "./beneath.js";
import { writeDeclaredFile } from "./declarations.js";
import { pidFileOf, prepareNodeStateDir } from "./partition-state.js";
import { reapLeftovers, SERVICE_MARK, Supervisor, type ServiceExit } from "./supervisor.js";
import { ensureUser, removeUser, type PartitionUser } from "./users.js";

const ROOT = process.getuid?.() === 0;
const USER_NAME = `slap-rsafe-${process.pid % 100_000}`;

let dir: { path: string; dispose(): Promise<void> };
let partition: string;
/** A root-owned secret outside the partition (what /etc/shadow would be). */
let secret: string;
let user: PartitionUser | undefined;
const started: ChildProcess[] = [];

before(async () => {
  dir = await tempDir("slap-rsafe-");
  partition = join(dir.path, "slappart0");
  await mkdir(partition, { mode: 0o750 });
  await prepareNodeStateDir(partition);
  secret = join(dir.path, "secret");
  await writeFile(secret, "root's secret\n", { mode: 0o600 });
  if (ROOT) user = await ensureUser(USER_NAME);
});

after(async () => {
  for (const child of started) if (child.exitCode === null && child.signalCode === null) child.kill("SIGKILL");
  await dir.dispose();
  if (ROOT) await removeUser(USER_NAME);
});

/** The secret is as it was: root's, mode 0600, its content. */
async function secretIntact(): Promise<void> {
  const s = await stat(secret);
  if (ROOT) assert.equal(s.uid, 0, "the secret is still root's");
  assert.equal(s.mode & 0o7777, 0o600, "the secret's mode is unchanged");
  assert.equal(await readFile(secret, "utf8"), "root's secret\n", "the secret's content is unchanged");
}

/** Runs `script` with sh in the partition, as its user (as a tenant's service would). */
function asTenant(script: string): Promise<number | null> {
  return new Promise((resolve, reject) => {
    const child = spawn("sh", ["-c", script], { cwd: partition, stdio: "ignore", ...(user === undefined ? {} : { uid: user.uid, gid: user.gid }) });
    child.once("error", reject);
    child.once("exit", resolve);
  });
}

describe("root-safe file handling in a partition", () => {
  before(async () => {
    if (user !== undefined) await ownTreeBeneath(partition, user);
  });

  it("a log swapped for a link to a root file: the node opens a fresh log, the root file stays root's and unread", async () => {
    const first = await openPartitionLog(partition, "web", user);
    await first.close();
    assert.equal(await asTenant(`rm var/log/web.log && ln -s ${secret} var/log/web.log`), 0);
    const reopened = await openPartitionLog(partition, "web", user);
    await reopened.write("a new line\n");
    await reopened.close();
    await secretIntact();
    const log = await stat(join(partition, "var", "log", "web.log"));
    assert.ok(log.isFile(), "the log is a file again");
    if (user !== undefined) assert.equal(log.uid, user.uid);
    assert.equal(await asTenant(`rm var/log/web.log && ln -s ${secret} var/log/web.log`), 0);
    assert.equal(await readTailBeneath(partition, "var/log/web.log", 2_048), undefined, "the tail of a log that is a link is not read (it would quote the secret in a bang)");
  });

  it("a log folder swapped for a link to a root folder: replaced by a folder, nothing created where it pointed", async () => {
    const outside = join(dir.path, "outside");
    await mkdir(outside, { mode: 0o755 });
    assert.equal(await asTenant(`rm -rf var/log && ln -s ${outside} var/log`), 0);
    const log = await openPartitionLog(partition, "web", user);
    await log.close();
    assert.deepEqual(await readdirSafe(outside), [], "nothing created in the folder the link pointed to");
    assert.ok((await stat(join(partition, "var", "log"))).isDirectory());
  });

  it("a declared file whose folder is swapped for a link is refused; the target is untouched", async () => {
    assert.equal(await asTenant(`mkdir -p etc && rm -rf etc/conf && ln -s ${dir.path} etc/conf`), 0);
    await assert.rejects(writeDeclaredFile(partition, { path: "etc/conf/secret", content: "tenant's\n", encoding: "utf8", once: false }, user), /escapes the partition/);
    await secretIntact();
    assert.equal(await asTenant(`ln -sf ${secret} etc/app.conf`), 0);
    await assert.rejects(writeDeclaredFile(partition, { path: "etc/app.conf", content: "tenant's\n", encoding: "utf8", once: false }, user), /escapes the partition/);
    await secretIntact();
  });

  it("giving the tree to its user and wiping it follow no link: the root file stays root's and in place", async () => {
    assert.equal(await asTenant(`mkdir -p srv && ln -sf ${secret} srv/shadow && ln -sfn ${dir.path} srv/up`), 0);
    if (user !== undefined) await ownTreeBeneath(partition, user);
    await secretIntact();
    await inFolder(partition, "", (handle) => emptyFolder(handle));
    await secretIntact();
    assert.deepEqual(await readdirSafe(partition), [], "the partition is empty");
    assert.ok((await stat(join(dir.path, "outside"))).isDirectory(), "what a link in the partition pointed to is not removed");
  });

  it("a FIFO in place of a file never blocks the node", async () => {
    assert.equal(await asTenant("mkdir -p etc && mkfifo etc/pipe.conf"), 0);
    await assert.rejects(writeDeclaredFile(partition, { path: "etc/pipe.conf", content: "x", encoding: "utf8", once: false }, user), /escapes the partition|not a regular file/);
    await assert.rejects(inFolder(partition, "etc/pipe.conf", () => Promise.resolve()), PlantedLinkError);
  });
});

describe("a restarted node stops leftovers by what the process shows, never on a file's word", () => {
  /** A `sleep` started as `as` (a user, or root when undefined), with `mark` in its environment. */
  function sleeper(mark: string | undefined, as: PartitionUser | undefined): ChildProcess {
    const child = spawn("sleep", ["300"], {
      env: { PATH: process.env.PATH ?? "/usr/bin:/bin", ...(mark === undefined ? {} : { [SERVICE_MARK]: mark }) },
      stdio: "ignore",
      ...(as === undefined ? {} : { uid: as.uid, gid: as.gid }),
    });
    started.push(child);
    return child;
  }

  it("a pid file naming a process that is not the partition's service kills nothing; the partition's own is stopped", async () => {
    await prepareNodeStateDir(partition);
    const bystander = sleeper(undefined, undefined);
    const own = sleeper(`${partition}#web`, user);
    // A process claiming the partition's mark without being its user (partition users on) is not its service.
    const impostor = sleeper(`${partition}#db`, ROOT ? undefined : user);
    await eventually("the sleepers to run", () => Promise.resolve(own.pid !== undefined && bystander.pid !== undefined ? true : undefined));
    await writeFile(pidFileOf(partition, "nats"), JSON.stringify({ pid: bystander.pid, command: ["sleep", "300"] }));
    await writeFile(pidFileOf(partition, "web"), JSON.stringify({ pid: own.pid, command: ["sleep", "300"] }));
    await writeFile(pidFileOf(partition, "db"), JSON.stringify({ pid: impostor.pid, command: ["sleep", "300"] }));
    const { logger } = captureLogger();
    const reaped = await reapLeftovers(partition, logger, [], user);
    await eventually("the partition's own leftover to be gone", () => Promise.resolve(processGone(own.pid!) ? true : undefined));
    assert.ok(!processGone(bystander.pid!), "the process a pid file named, without the partition's mark, runs on");
    if (ROOT) assert.ok(!processGone(impostor.pid!), "a root process carrying the partition's mark is not its user's: it runs on");
    assert.equal(reaped, ROOT ? 1 : 2);
  });

  it("pid files live where the partition's user cannot write", async () => {
    const folder = join(dir.path, "state");
    const s = await stat(folder);
    assert.equal(s.mode & 0o777, 0o700);
    if (ROOT) assert.notEqual(await asTenant(`echo x > ${pidFileOf(partition, "forged")}`), 0, "the tenant cannot write a pid file");
  });
});

describe("a supervised service that plants a link at its log and exits", () => {
  if (ROOT) it("is restarted with a fresh log; the root file stays root's and nothing of it is quoted in the exit report", async () => {
    const exits: ServiceExit[] = [];
    const { logger } = captureLogger();
    const supervisor = new Supervisor(partition, logger, (exit) => exits.push(exit));
    supervisor.setOwner(user);
    await ownTreeBeneath(partition, user!);
    try {
      await supervisor.apply(
        new Map([["evil", { command: ["sh", "-c", `echo starting; if [ ! -e var/log/planted ]; then touch var/log/planted; rm var/log/evil.log; ln -s ${secret} var/log/evil.log; exit 3; fi; exec sleep 300`], env: { PATH: "/usr/bin:/bin" }, cwd: partition }]]),
      );
      await eventually("the service to have exited and been restarted", () => Promise.resolve(exits.length >= 1 && supervisor.pid("evil") !== undefined ? true : undefined), 20_000);
      await secretIntact();
      assert.doesNotMatch(exits[0]!.logTail, /root's secret/);
      assert.ok((await stat(join(partition, "var", "log", "evil.log"))).isFile());
    } finally {
      await supervisor.close();
    }
  });
});

async function readdirSafe(path: string): Promise<string[]> {
  return (await readdir(path)).sort();
}
