import { z } from "zod";
import { pino } from "pino";
import { ComputerId, EVENT_TYPES, InstanceId, TreeId, follow, type Commit, type EventType } from "@slap/events";
import { EmbeddedEventStore } from "@slap/eventstore-embedded";
import { CliError, HELP, UsageError, atMostOne, logLevelOf, printHelp, quoted, splitArgv, until, validate, type Command, type Io } from "./args.js";
import { MasterClient, clientHelp, clientOptions, connectionOf, type Connection, type EventQuery, type EventRecord } from "./client.js";
import { resolveInstance } from "./resolve.js";

const eventsArgv = {
  options: {
    ...clientOptions,
    data: { type: "string" },
    follow: { type: "boolean" },
    json: { type: "boolean" },
    instance: { type: "string" },
    tree: { type: "string" },
    computer: { type: "string" },
    filter: { type: "string" },
    type: { type: "string" },
    since: { type: "string" },
  },
} as const;

const EventsArgs = z.object({
  data: z.string().min(1).optional(),
  follow: z.boolean().default(false),
  json: z.boolean().default(false),
  /** An id, a reference or a path (resolve.ts); an id only with --data, where there are no read models. */
  instance: z.string().min(1).max(4_096).optional(),
  tree: TreeId.optional(),
  computer: ComputerId.optional(),
  filter: z
    .string()
    .regex(/^[A-Za-z0-9_*>.-]{1,256}$/, "must be a subject filter such as tree.<id>.> or computer.<id>.>")
    .optional(),
  type: z.enum(EVENT_TYPES as unknown as [EventType, ...EventType[]], { error: "must be an event type, e.g. InstanceRequested" }).optional(),
  since: z.iso.datetime({ offset: true, error: "must be an ISO time, e.g. 2025-01-31T12:00:00Z" }).optional(),
});

export interface EventsArgs {
  /** The master to ask, or (`--data`) the embedded log to read directly when no master runs. */
  source: { kind: "master"; connection: Connection } | { kind: "embedded"; dir: string };
  follow: boolean;
  json: boolean;
  /** `--instance` as given, to be resolved by the master (an id, a reference, a path); its events are `follow.instance(id)`. */
  instance?: string;
  filter?: string;
  type?: EventType;
  since?: string;
}

export function parseEventsArgs(argv: readonly string[], env: Io["env"]): EventsArgs | typeof HELP {
  const split = splitArgv(eventsArgv, argv);
  if (split === HELP) return HELP;
  const args = validate(EventsArgs, split.values);
  atMostOne({ instance: args.instance, tree: args.tree, computer: args.computer, filter: args.filter });
  if (args.data !== undefined) atMostOne({ data: args.data, master: split.values.master });
  if (args.data !== undefined && args.instance !== undefined && !InstanceId.safeParse(args.instance).success) {
    throw new UsageError(`--instance ${quoted(args.instance)}: with --data, an instance id (there is no master to find a reference)`);
  }
  const filter =
    args.instance !== undefined && args.data !== undefined
      ? follow.instance(args.instance)
      : args.tree !== undefined
        ? follow.tree(args.tree)
        : args.computer !== undefined
          ? follow.computer(args.computer)
          : args.filter;
  return {
    source: args.data === undefined ? { kind: "master", connection: connectionOf(split.values, env) } : { kind: "embedded", dir: args.data },
    follow: args.follow,
    json: args.json,
    ...(args.instance === undefined || args.data !== undefined ? {} : { instance: args.instance }),
    ...(filter === undefined ? {} : { filter }),
    ...(args.type === undefined ? {} : { type: args.type }),
    ...(args.since === undefined ? {} : { since: args.since }),
  };
}

/** One event as `slap events` prints it: a line of text, or (`--json`) one JSON object per line. */
export function eventLine(record: EventRecord, json: boolean): string {
  const { position, streamKey, event } = record;
  if (json) return JSON.stringify({ position, stream: streamKey, ...event });
  return `#${position} ${event.time} ${event.type.padEnd(30)} ${streamKey}  correlation=${event.correlationId}`;
}

export const eventsCommand: Command = {
  name: "events",
  summary: "the event log: every fact, in order (--follow: live)",
  help: `usage: slap events [--follow] [--json] [--instance I | --tree ID | --computer ID] [--type T] [--since ISO]

Prints the events of the log, oldest first, one per line: position, time, type, stream and
correlation id.

options:
  --follow         keep printing new events as they are appended (Ctrl-C stops)
  --json           one JSON object per line: { position, stream, ...event }
  --instance I     only that instance's events: its id, reference or path (my-webapp/kvdb),
                   as slap show takes it (an unknown one is an error, not an empty list)
  --tree ID        only the events of that instance tree
  --computer ID    only that computer's events (registration, software, partitions)
  --filter F       a raw subject filter instead (tree.<id>.>, tree.*.instance.<id>, computer.<id>.>)
  --type T         only events of that type, e.g. InstanceRequested
  --since ISO      only events at or after that time, e.g. 2025-01-31T12:00:00Z
  --data DIR       read the embedded log in DIR directly instead of asking a master
                   (only while no master uses that folder)
${clientHelp}`,
  async run(argv, io) {
    const args = parseEventsArgs(argv, io.env);
    if (args === HELP) return printHelp(io, eventsCommand);
    const print = (record: EventRecord): void => void io.stdout.write(`${eventLine(record, args.json)}\n`);
    return args.source.kind === "master" ? fromMaster(new MasterClient(args.source.connection, io.fetch), args, print, io) : fromEmbedded(args.source.dir, args, print, io);
  },
};

const PAGE = 1_000;

async function fromMaster(client: MasterClient, args: EventsArgs, print: (record: EventRecord) => void, io: Io): Promise<number> {
  const filter = args.instance === undefined ? args.filter : follow.instance((await resolveInstance(client, args.instance)).instance.instanceId);
  const query: EventQuery = {
    ...(filter === undefined ? {} : { filter }),
    ...(args.type === undefined ? {} : { type: args.type }),
    ...(args.since === undefined ? {} : { since: args.since }),
  };
  let after = 0;
  for (;;) {
    const page = await client.events({ ...query, after, limit: PAGE });
    for (const record of page.events) print(record);
    if (page.next <= after) break;
    after = page.next;
  }
  if (!args.follow) return 0;
  const stop = io.stopSignal();
  try {
    for await (const record of client.eventStream({ ...query, after }, stop)) print(record);
  } catch (error) {
    if (stop.aborted) return 0;
    throw error;
  }
  if (stop.aborted) return 0;
  throw new CliError("the master ended the event stream");
}

/** The log read in-process (the former `slap events --data`): no master may hold the folder. */
async function fromEmbedded(dir: string, args: EventsArgs, print: (record: EventRecord) => void, io: Io): Promise<number> {
  const logger = pino({ level: logLevelOf(io.env) }, pino.destination(2));
  const store = await EmbeddedEventStore.open({ dir, logger }).catch((error: unknown) => {
    const message = error instanceof Error ? error.message : String(error);
    const hint = /in use/.test(message) ? "; while a master holds it, ask the master instead (slap events without --data)" : "";
    throw new CliError(`cannot open the event log in ${dir}: ${message}${hint}`, 1, { cause: error });
  });
  try {
    const since = args.since === undefined ? undefined : Date.parse(args.since);
    const options = args.filter === undefined ? {} : { filter: args.filter };
    const show = (commit: Commit): void => {
      for (const event of commit.events) {
        if (since !== undefined && Date.parse(event.time) < since) continue;
        if (args.type !== undefined && event.type !== args.type) continue;
        print({ position: commit.position, streamKey: commit.streamKey, event });
      }
    };
    if (!args.follow) {
      for await (const commit of store.readAll(options)) show(commit);
      return 0;
    }
    const stop = io.stopSignal();
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
