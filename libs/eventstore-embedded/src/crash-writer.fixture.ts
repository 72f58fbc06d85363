// Child process for the SIGKILL test: appends pipelined commits forever and prints
// "ack <event id>" for each one the store acknowledged. The test kills it at a random point.
import { pino } from "pino";
import { fixtures } from "@slap/testkit";
import { EmbeddedEventStore } from "./store.js";

const dir = process.argv[2];
if (dir === undefined) throw new Error("usage: crash-writer <dir>");
const store = await EmbeddedEventStore.open({ dir, logger: pino({ level: "silent" }) });
for (;;) {
  const batch = Array.from({ length: 32 }, () => fixtures.instanceRequested(fixtures.newId()));
  await Promise.all(
    batch.map(async (event) => {
      await store.append([event], { expectedVersion: 0 });
      process.stdout.write(`ack ${event.id}\n`);
    }),
  );
}
