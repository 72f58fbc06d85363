// Child process of crash.int.test.ts: opens the store in <dir> and appends commits until it is
// killed — bursts awaited one at a time (with the expected version once the stream's version is
// known) and pipelined bursts. Prints "ready" once open, then, only after an append resolved,
// "ack <position> <streamKey> <first event id> <content hash>".
import { pino } from "pino";
import { seededRandom } from "@slap/testkit";
import { generateCommit, type Generated } from "./crash-commits.fixture.js";
import { EmbeddedEventStore } from "./store.js";

const [dir, seedArg] = process.argv.slice(2);
if (dir === undefined || seedArg === undefined) throw new Error("usage: crash-appender <dir> <seed>");
const random = seededRandom(Number(seedArg));
const store = await EmbeddedEventStore.open({ dir, logger: pino({ level: "silent" }) });
process.stdout.write("ready\n");

const versions = new Map<string, number>();
const append = async (commit: Generated, pipelined: boolean): Promise<void> => {
  const known = versions.get(commit.streamKey);
  const expectedVersion = pipelined || known === undefined ? "any" : known;
  const { position } = await store.append(commit.events, { expectedVersion });
  versions.set(commit.streamKey, Math.max(versions.get(commit.streamKey) ?? 0, position));
  process.stdout.write(`ack ${position} ${commit.streamKey} ${commit.events[0]!.id} ${commit.hash}\n`);
};

for (;;) {
  if (random.chance(0.5)) {
    for (let n = random.int(1, 6); n > 0; n--) await append(generateCommit(random), false);
  } else {
    const burst = Array.from({ length: random.int(2, 40) }, () => generateCommit(random));
    await Promise.all(burst.map((commit) => append(commit, true)));
  }
}
