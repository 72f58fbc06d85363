import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import {
  EventStoreError,
  FileCheckpointStore,
  ProjectionRunner,
  computersProjection,
  instancesProjection,
  rebuild,
  type EventStore,
  type Projection,
} from "@slap/events";
import { EmbeddedEventStore } from "@slap/eventstore-embedded";
import { JetStreamEventStore } from "@slap/eventstore-jetstream";
import { story } from "./fixtures.js";
import { startNatsServer, type NatsServer } from "./nats-server.js";
import { captureLogger, tempDir } from "./temp.js";

/** Every projection of the system: each one must rebuild to exactly what was built live. */
const projections: Array<Projection<unknown>> = [
  computersProjection,
  instancesProjection,
];

interface Backend {
  name: string;
  open: () => Promise<{ store: EventStore; injectMalformed: (streamKey: string) => Promise<void> }>;
}

let server: NatsServer;
const cleanups: Array<() => Promise<void>> = [];
let streams = 0;

const backends: Backend[] = [
  {
    name: "embedded",
    async open() {
      const dir = await tempDir();
      const store = await EmbeddedEventStore.open({ dir: dir.path, logger: captureLogger().logger });
      cleanups.push(async () => {
        await store.close();
        await dir.dispose();
      });
      return { store, injectMalformed: (key) => store.appendRawForTesting(key, "01JD0000000000000000000099", Buffer.from("[{}]")).then(() => undefined) };
    },
  },
  {
    name: "jetstream",
    async open() {
      streams += 1;
      const subjectPrefix = `p${streams}.ev`;
      const store = await JetStreamEventStore.connect({ servers: server.url, streamName: `P${streams}`, subjectPrefix, logger: captureLogger().logger });
      const raw = await JetStreamEventStore.connect({ servers: server.url, streamName: `P${streams}`, subjectPrefix, logger: captureLogger().logger });
      cleanups.push(async () => {
        await store.close();
        await raw.close();
      });
      return { store, injectMalformed: (key) => raw.publishRawForTesting(key, Buffer.from("[{}]")) };
    },
  },
];

before(async () => {
  server = await startNatsServer();
});
after(async () => {
  for (const cleanup of cleanups.reverse()) await cleanup();
  await server.dispose();
});

for (const backend of backends) {
  describe(`projections over the ${backend.name} store`, () => {
    for (const projection of projections) {
      it(`rebuilds the ${projection.name} read model equal to the one built live, malformed commits skipped`, async () => {
        const { store, injectMalformed } = await backend.open();
        const runner = new ProjectionRunner(store, projection, { logger: captureLogger().logger });
        await runner.start();
        const appends = story(3);
        let last = 0;
        for (const [i, events] of appends.entries()) {
          last = (await store.append(events, { expectedVersion: "any" })).position;
          if (i === 10) await injectMalformed("tree.WEB0.instance.WEB0");
        }
        await runner.waitFor(last);
        const rebuilt = await rebuild(store, projection);
        assert.equal(rebuilt.position, last);
        assert.deepEqual(rebuilt.state, runner.state);
        assert.notDeepEqual(runner.state, projection.initial());
        await runner.stop();
      });

      it(`resumes the ${projection.name} read model from a checkpoint and still equals a rebuild`, async () => {
        const { store } = await backend.open();
        const dir = await tempDir();
        cleanups.push(() => dir.dispose());
        const checkpoints = new FileCheckpointStore(dir.path);
        const appends = story(2);
        const half = Math.floor(appends.length / 2);
        for (const events of appends.slice(0, half)) await store.append(events, { expectedVersion: "any" });
        const first = new ProjectionRunner(store, projection, { logger: captureLogger().logger, checkpoints, checkpointEvery: 5 });
        await first.start();
        await first.stop();
        const saved = await checkpoints.load(projection.name);
        assert.equal(saved?.position, await store.head());

        let last = 0;
        for (const events of appends.slice(half)) last = (await store.append(events, { expectedVersion: "any" })).position;
        const captured = captureLogger();
        const second = new ProjectionRunner(store, projection, { logger: captured.logger, checkpoints });
        await second.start();
        await second.waitFor(last);
        assert.ok(captured.lines.some((l) => l.msg === "projection resumed from its checkpoint"));
        assert.deepEqual(second.state, (await rebuild(store, projection)).state);
        await second.stop();
      });
    }
  });
}

describe("projection runner", () => {
  it("subscribes again from its last position when the subscription fails with a retryable error", async () => {
    const { store } = await backends[0]!.open();
    let failed = false;
    const flaky: EventStore = {
      append: (events, options) => store.append(events, options),
      readStream: (key) => store.readStream(key),
      readAll: (options) => store.readAll(options),
      head: () => store.head(),
      close: () => store.close(),
      subscribe(options) {
        const inner = store.subscribe(options);
        const iterate = async function* () {
          let n = 0;
          for await (const commit of inner) {
            if (!failed && ++n === 5) {
              failed = true;
              throw new EventStoreError("connection lost", { retryable: true });
            }
            yield commit;
          }
        };
        return { [Symbol.asyncIterator]: iterate, close: () => inner.close() };
      },
    };
    const captured = captureLogger();
    const runner = new ProjectionRunner(flaky, instancesProjection, { logger: captured.logger });
    await runner.start();
    let last = 0;
    for (const events of story(2)) last = (await store.append(events, { expectedVersion: "any" })).position;
    await runner.waitFor(last);
    assert.ok(failed);
    assert.ok(captured.lines.some((l) => l.msg === "projection subscription failed; subscribing again"));
    assert.deepEqual(runner.state, (await rebuild(store, instancesProjection)).state);
    await runner.stop();
  });
});

describe("projection runner listeners", () => {
  it("keeps folding when a listener throws, and logs it", async () => {
    const { store } = await backends[0]!.open();
    const captured = captureLogger();
    const runner = new ProjectionRunner(store, instancesProjection, { logger: captured.logger });
    await runner.start();
    runner.onCommit(() => {
      throw new Error("listener bug");
    });
    let last = 0;
    for (const events of story(1)) last = (await store.append(events, { expectedVersion: "any" })).position;
    await runner.waitFor(last);
    assert.equal(runner.position, last);
    assert.ok(captured.lines.some((l) => l.msg === "a read-model listener failed; the read model goes on"));
    await runner.stop();
  });
});
