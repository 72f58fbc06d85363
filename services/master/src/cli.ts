#!/usr/bin/env node
/**
 * `slap`: the command line. For now it covers the event log foundation:
 *
 *   slap demo   [--data DIR]                          write a demo story once, print the read models, follow the log
 *   slap events [--data DIR] [--since TIME] [--filter F] [--follow] [--json]
 *
 * Every argument is parsed with zod; a bad one is reported with its name, not a stack trace.
 */
import { parseArgs } from "node:util";
import { z } from "zod";
import { pino } from "pino";
import {
  computersProjection,
  instancesProjection,
  ProjectionRunner,
  type Commit,
  type EventStore,
} from "@slap/events";
import { EmbeddedEventStore } from "@slap/eventstore-embedded";
import { demoStory } from "./demo.js";

const Common = z.object({
  data: z.string().min(1).default("./data"),
});
const EventsArgs = Common.extend({
  since: z.iso.datetime({ offset: true }).optional(),
  filter: z.string().regex(/^[A-Za-z0-9_*>.-]+$/, "must be a subject filter such as tree.<id>.> or computer.<id>.>").optional(),
  follow: z.boolean().default(false),
  json: z.boolean().default(false),
});

const usage = `usage:
  slap demo   [--data DIR]
  slap events [--data DIR] [--since ISO-TIME] [--filter tree.<id>.>|computer.<id>.>] [--follow] [--json]`;

async function main(argv: string[]): Promise<number> {
  const [command, ...rest] = argv;
  const { values } = parseArgs({
    args: rest,
    options: {
      data: { type: "string" },
      since: { type: "string" },
      filter: { type: "string" },
      follow: { type: "boolean" },
      json: { type: "boolean" },
    },
    strict: true,
  });
  const logger = pino({ level: process.env.LOG_LEVEL ?? "warn" }, pino.destination(2));
  switch (command) {
    case "demo":
      return demo(parse(Common, values), logger);
    case "events":
      return events(parse(EventsArgs, values), logger);
    default:
      process.stderr.write(`${command === undefined ? "no command given" : `unknown command ${command}`}\n${usage}\n`);
      return 2;
  }
}

function parse<T extends z.ZodType>(schema: T, values: unknown): z.infer<T> {
  const parsed = schema.safeParse(values);
  if (!parsed.success) {
    throw new UsageError(parsed.error.issues.map((i) => `--${i.path.join(".")}: ${i.message}`).join("\n"));
  }
  return parsed.data;
}

class UsageError extends Error {
  override name = "UsageError";
}

/** Resolves on abort. The timer keeps the process alive meanwhile: nothing else may hold the event loop. */
function until(signalled: AbortSignal): Promise<void> {
  const keepAlive = setInterval(() => undefined, 1 << 30);
  return new Promise((resolve) =>
    signalled.addEventListener(
      "abort",
      () => {
        clearInterval(keepAlive);
        resolve();
      },
      { once: true },
    ),
  );
}

function stopSignal(): AbortSignal {
  const controller = new AbortController();
  for (const signal of ["SIGINT", "SIGTERM"] as const) process.once(signal, () => controller.abort());
  return controller.signal;
}

async function demo(args: z.infer<typeof Common>, logger: pino.Logger): Promise<number> {
  const store = await EmbeddedEventStore.open({ dir: args.data, logger });
  try {
    const stop = stopSignal();
    if ((await store.head()) === 0) {
      for (const events of demoStory(new Date())) await store.append(events, { expectedVersion: "any" });
      console.log(`wrote the demo story to ${args.data}`);
    } else {
      console.log(`${args.data} already holds ${await store.head()} commits; nothing re-created`);
    }
    const computers = new ProjectionRunner(store, computersProjection, { logger });
    const instances = new ProjectionRunner(store, instancesProjection, { logger });
    await Promise.all([computers.start(), instances.start()]);
    for (const computer of Object.values(computers.state.computers)) {
      const free = Object.values(computer.partitions).filter((p) => p.instanceId === null).length;
      const releases = Object.values(computer.software).map((s) => `${s.releaseUrl} (${s.status})`).join(", ");
      console.log(`computer ${computer.computerId}: ${Object.keys(computer.partitions).length} partitions, ${free} free; ${releases}`);
    }
    for (const i of Object.values(instances.state.instances)) {
      const where = i.placement === null ? "not placed" : `${i.placement.computerId}/${i.placement.partitionId}`;
      console.log(`instance ${i.reference} [${i.instanceId}] tree ${i.treeId}: ${where}, ${i.status?.status ?? "no status"}, connection ${JSON.stringify(mask(i.connection))}`);
    }
    console.log("following the event log (Ctrl-C to stop)");
    const subscription = store.subscribe({ after: await store.head() });
    const printing = (async () => {
      for await (const commit of subscription) printCommit(commit, false);
    })();
    await until(stop);
    await subscription.close();
    await printing;
    await Promise.all([computers.stop(), instances.stop()]);
    return 0;
  } finally {
    await store.close();
  }
}

async function events(args: z.infer<typeof EventsArgs>, logger: pino.Logger): Promise<number> {
  const store: EventStore = await EmbeddedEventStore.open({ dir: args.data, logger });
  try {
    const since = args.since === undefined ? undefined : Date.parse(args.since);
    const options = args.filter === undefined ? {} : { filter: args.filter };
    const show = (commit: Commit): void => {
      const events = since === undefined ? commit.events : commit.events.filter((e) => Date.parse(e.time) >= since);
      if (events.length > 0) printCommit({ ...commit, events }, args.json);
    };
    if (!args.follow) {
      for await (const commit of store.readAll(options)) show(commit);
      return 0;
    }
    const stop = stopSignal();
    const subscription = store.subscribe(options);
    const printing = (async () => {
      for await (const commit of subscription) show(commit);
    })();
    await until(stop);
    await subscription.close();
    await printing;
    return 0;
  } finally {
    await store.close();
  }
}

const SECRET = /pass|secret|token|key/i;

/** Masks values whose name looks secret; `slap` never prints them unless asked (a later flag). */
function mask(map: Record<string, string> | null): Record<string, string> | null {
  if (map === null) return null;
  return Object.fromEntries(Object.entries(map).map(([k, v]) => [k, SECRET.test(k) ? "********" : v]));
}

function printCommit(commit: Commit, json: boolean): void {
  for (const event of commit.events) {
    if (json) {
      console.log(JSON.stringify({ position: commit.position, stream: commit.streamKey, ...event }));
      continue;
    }
    console.log(`#${commit.position} ${event.time} ${event.type.padEnd(30)} ${commit.streamKey}  correlation=${event.correlationId}`);
  }
}

process.stdout.on("error", (error: NodeJS.ErrnoException) => {
  if (error.code === "EPIPE") process.exit(0);
  throw error;
});

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (error: unknown) => {
    if (error instanceof UsageError || (error as { code?: string }).code === "ERR_PARSE_ARGS_UNKNOWN_OPTION") {
      process.stderr.write(`${(error as Error).message}\n${usage}\n`);
      process.exitCode = 2;
      return;
    }
    process.stderr.write(`slap: ${(error as Error).message}\n`);
    process.exitCode = 1;
  },
);
