import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { appendFile, chmod, readFile, readdir, stat, truncate, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { describe, it } from "node:test";
import { captureLogger, eventStoreContract, fixtures, tempDir, type CapturedLogger } from "@slap/testkit";
import { EmbeddedEventStore } from "./store.js";

eventStoreContract("embedded", () => {
  const dirs: Array<{ dispose(): Promise<void> }> = [];
  return {
    async open() {
      const dir = await tempDir("slap-embedded-");
      dirs.push(dir);
      const captured = captureLogger();
      let store = await EmbeddedEventStore.open({ dir: dir.path, logger: captured.logger });
      return {
        store,
        captured,
        async reopen() {
          await store.close();
          store = await EmbeddedEventStore.open({ dir: dir.path, logger: captured.logger });
          return store;
        },
        async injectRaw(streamKey, body) {
          await store.appendRawForTesting(streamKey, fixtures.newId(), body);
        },
      };
    },
    async dispose() {
      for (const dir of dirs) await dir.dispose();
    },
  };
});

async function ids(store: EmbeddedEventStore): Promise<string[]> {
  const out: string[] = [];
  for await (const commit of store.readAll()) for (const e of commit.events) out.push(e.id);
  return out;
}

const tornWarnings = (c: CapturedLogger) => c.lines.filter((l) => l.level === 40 && /torn tail/.test(l.msg ?? ""));

describe("embedded event store on disk", () => {
  it("keeps the log private to the service that owns it: 0600, in a folder it makes 0700; an older 0644 log is made 0600", async () => {
    const parent = await tempDir("slap-embedded-mode-");
    try {
      const dir = join(parent.path, "data");
      const store = await EmbeddedEventStore.open({ dir, logger: captureLogger().logger });
      await store.close();
      assert.equal((await stat(dir)).mode & 0o777, 0o700);
      assert.equal((await stat(join(dir, "events.log"))).mode & 0o777, 0o600);
      await chmod(join(dir, "events.log"), 0o644);
      await (await EmbeddedEventStore.open({ dir, logger: captureLogger().logger })).close();
      assert.equal((await stat(join(dir, "events.log"))).mode & 0o777, 0o600);
    } finally {
      await parent.dispose();
    }
  });

  it("cuts a torn last record when opened, says so in the log, and keeps the cut bytes aside", async () => {
    const dir = await tempDir();
    const first = fixtures.instanceRequested("A");
    const second = fixtures.instanceRequested("B");
    let store = await EmbeddedEventStore.open({ dir: dir.path, logger: captureLogger().logger });
    await store.append([first], { expectedVersion: 0 });
    await store.append([second], { expectedVersion: 0 });
    await store.close();
    const log = join(dir.path, "events.log");
    const { size } = await stat(log);
    await truncate(log, size - 7);

    const captured = captureLogger();
    store = await EmbeddedEventStore.open({ dir: dir.path, logger: captured.logger });
    assert.deepEqual(await ids(store), [first.id]);
    const [warning] = tornWarnings(captured);
    assert.ok(warning, JSON.stringify(captured.lines));
    assert.equal(typeof warning.offset, "number");
    assert.ok((await readdir(dir.path)).some((f) => f.startsWith("events.log.torn-")));
    const third = fixtures.instanceBanged("A");
    await store.append([third], { expectedVersion: "any" });
    await store.close();

    const again = captureLogger();
    store = await EmbeddedEventStore.open({ dir: dir.path, logger: again.logger });
    assert.deepEqual(await ids(store), [first.id, third.id]);
    assert.equal(tornWarnings(again).length, 0);
    await store.close();
    await dir.dispose();
  });

  it("cuts garbage appended after the last record and keeps every whole record", async () => {
    const dir = await tempDir();
    let store = await EmbeddedEventStore.open({ dir: dir.path, logger: captureLogger().logger });
    const events = Array.from({ length: 5 }, (_, i) => fixtures.instanceRequested(`I${i}`));
    for (const e of events) await store.append([e], { expectedVersion: 0 });
    await store.close();
    await appendFile(join(dir.path, "events.log"), Buffer.from([0x20, 0, 0, 0, 1, 2, 3, 4, 5, 6]));
    const captured = captureLogger();
    store = await EmbeddedEventStore.open({ dir: dir.path, logger: captured.logger });
    assert.deepEqual(await ids(store), events.map((e) => e.id));
    assert.equal(tornWarnings(captured).length, 1);
    await store.close();
    await dir.dispose();
  });

  it("refuses to open a log damaged in the middle, cutting nothing, rather than drop the records after it", async () => {
    const dir = await tempDir();
    let store = await EmbeddedEventStore.open({ dir: dir.path, logger: captureLogger().logger });
    for (let i = 0; i < 10; i++) await store.append([fixtures.instanceRequested(`I${i}`)], { expectedVersion: 0 });
    await store.close();
    const log = join(dir.path, "events.log");
    const bytes = await readFile(log);
    const damaged = Buffer.from(bytes);
    damaged[Math.floor(bytes.length / 3)]! ^= 0xff;
    await writeFile(log, damaged);
    await assert.rejects(EmbeddedEventStore.open({ dir: dir.path, logger: captureLogger().logger }), /valid record follows/);
    assert.deepEqual(await readFile(log), damaged);
    await writeFile(log, bytes);
    store = await EmbeddedEventStore.open({ dir: dir.path, logger: captureLogger().logger });
    assert.equal(await store.head(), 10);
    await store.close();
    await dir.dispose();
  });

  it("refuses a second opener of the same data folder while the first is alive", async () => {
    const dir = await tempDir();
    const store = await EmbeddedEventStore.open({ dir: dir.path, logger: captureLogger().logger });
    await assert.rejects(EmbeddedEventStore.open({ dir: dir.path, logger: captureLogger().logger }), /in use by process/);
    await store.close();
    const reopened = await EmbeddedEventStore.open({ dir: dir.path, logger: captureLogger().logger });
    await reopened.close();
    await dir.dispose();
  });

  it("refuses a file that is not an event log", async () => {
    const dir = await tempDir();
    await appendFile(join(dir.path, "events.log"), "hello, I am not a log");
    await assert.rejects(EmbeddedEventStore.open({ dir: dir.path, logger: captureLogger().logger }), /bad magic/);
    await dir.dispose();
  });

  it("loses nothing acknowledged when the writer is killed with SIGKILL mid-append, again and again", async () => {
    const dir = await tempDir();
    const acknowledged: string[] = [];
    for (let round = 0; round < 4; round++) {
      const child = spawn(process.execPath, ["--import", "tsx", join(import.meta.dirname, "crash-writer.fixture.ts"), dir.path], {
        stdio: ["ignore", "pipe", "inherit"],
      });
      let buffered = "";
      const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
      child.stdout.on("data", (chunk: Buffer) => {
        buffered += chunk.toString();
        const lines = buffered.split("\n");
        buffered = lines.pop() ?? "";
        for (const line of lines) if (line.startsWith("ack ")) acknowledged.push(line.slice(4));
      });
      const before = acknowledged.length;
      while (acknowledged.length < before + 200 + round * 97) await new Promise((r) => setTimeout(r, 5));
      child.kill("SIGKILL");
      await exited;
    }
    const captured = captureLogger();
    const store = await EmbeddedEventStore.open({ dir: dir.path, logger: captured.logger });
    const stored = new Set(await ids(store));
    const missing = acknowledged.filter((id) => !stored.has(id));
    assert.deepEqual(missing, []);
    assert.ok(acknowledged.length >= 800);
    await store.close();
    assert.ok((await readFile(join(dir.path, "events.log"))).length > 0);
    await dir.dispose();
  });
});

describe("embedded event store lifecycle", () => {
  it("ends a subscription cleanly when the store closes during its catch-up", async () => {
    const dir = await tempDir();
    const store = await EmbeddedEventStore.open({ dir: dir.path, logger: captureLogger().logger });
    const events = Array.from({ length: 3_000 }, (_, i) => fixtures.instanceRequested(`I${i}`));
    await Promise.all(events.map((e) => store.append([e], { expectedVersion: 0 })));
    const subscription = store.subscribe();
    let seen = 0;
    for await (const commit of subscription) {
      seen += commit.events.length;
      if (seen === 10) await store.close();
    }
    assert.ok(seen >= 10 && seen < events.length, `saw ${seen}`);
    await dir.dispose();
  });
});
