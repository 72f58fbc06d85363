import { z } from "zod";
import { pino } from "pino";
import { computersProjection, instancesProjection, ProjectionRunner } from "@slap/events";
import { EmbeddedEventStore } from "@slap/eventstore-embedded";
import { demoStory } from "./demo-story.js";
import { HELP, fromEnv, logLevelOf, printHelp, splitArgv, until, validate, type Command } from "./args.js";
import { eventLine } from "./events.js";
import { mask } from "./format.js";

const demoArgv = { options: { data: { type: "string" } } } as const;
const DemoArgs = z.object({ data: z.string().min(1).default("./data") });

export const demoCommand: Command = {
  name: "demo",
  summary: "write a demo story into an embedded log, print the read models, follow the log",
  help: `usage: slap demo [--data DIR]

Runs without a master: opens the embedded event log in DIR (default ./data, env SLAP_DATA),
writes the demo story once if the log is empty (a computer, two releases, a webapp that
requested its kvdb), prints the read models built from it and follows the log (Ctrl-C stops).

options:
  --data DIR    the embedded log's folder`,
  async run(argv, io) {
    const split = splitArgv(demoArgv, argv);
    if (split === HELP) return printHelp(io, demoCommand);
    const args = validate(DemoArgs, { data: split.values.data ?? fromEnv(io.env, "SLAP_DATA") }, { data: "--data (or SLAP_DATA)" });
    const out = (line: string): void => void io.stdout.write(`${line}\n`);
    const logger = pino({ level: logLevelOf(io.env) }, pino.destination(2));
    const store = await EmbeddedEventStore.open({ dir: args.data, logger });
    try {
      const stop = io.stopSignal();
      if ((await store.head()) === 0) {
        for (const events of demoStory(new Date())) await store.append(events, { expectedVersion: "any" });
        out(`wrote the demo story to ${args.data}`);
      } else {
        out(`${args.data} already holds ${await store.head()} commits; nothing re-created`);
      }
      const computers = new ProjectionRunner(store, computersProjection, { logger });
      const instances = new ProjectionRunner(store, instancesProjection, { logger });
      await Promise.all([computers.start(), instances.start()]);
      for (const computer of Object.values(computers.state.computers)) {
        const free = Object.values(computer.partitions).filter((p) => p.instanceId === null).length;
        const releases = Object.values(computer.software)
          .map((s) => `${s.releaseUrl} (${s.status})`)
          .join(", ");
        out(`computer ${computer.computerId}: ${Object.keys(computer.partitions).length} partitions, ${free} free; ${releases}`);
      }
      for (const i of Object.values(instances.state.instances)) {
        const where = i.placement === null ? "not placed" : `${i.placement.computerId}/${i.placement.partitionId}`;
        out(`instance ${i.reference} [${i.instanceId}] tree ${i.treeId}: ${where}, ${i.status?.status ?? "no status"}, connection ${JSON.stringify(mask(i.connection))}`);
      }
      out("following the event log (Ctrl-C to stop)");
      const subscription = store.subscribe({ after: await store.head() });
      const printing = (async () => {
        for await (const commit of subscription) {
          for (const event of commit.events) out(eventLine({ position: commit.position, streamKey: commit.streamKey, event }, false));
        }
      })();
      await until(stop);
      await subscription.close();
      await printing;
      await Promise.all([computers.stop(), instances.stop()]);
      return 0;
    } finally {
      await store.close();
    }
  },
};
