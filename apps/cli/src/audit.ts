import { z } from "zod";
import { HELP, printHelp, splitArgv, validate, type Command, type Io } from "./args.js";
import { MasterClient, clientHelp, clientOptions, connectionOf } from "./client.js";

const auditOptions = { ...clientOptions, json: { type: "boolean" } } as const;
const withReference = { options: auditOptions, positionals: ["reference"] } as const;
const withoutReference = { options: auditOptions } as const;

const AuditArgs = z.object({
  reference: z.string().min(1).max(512).optional(),
  json: z.boolean().default(false),
});

/** `<reference>` is optional: parsed with it when an argument is left over, without it otherwise. */
export function parseAuditArgs(argv: readonly string[], env: Io["env"]) {
  let split;
  try {
    split = splitArgv(withoutReference, argv);
  } catch {
    split = splitArgv(withReference, argv);
  }
  if (split === HELP) return HELP;
  const args = validate(AuditArgs, { ...split.values, ...split.positionals }, { reference: "<reference>", json: "--json" });
  return { ...args, connection: connectionOf(split.values, env) };
}

/** The parts of an event a timeline shows; anything else in the record is ignored. */
const TimelineEvent = z.looseObject({
  id: z.string(),
  type: z.string(),
  time: z.string(),
  correlationId: z.string(),
  causationId: z.string().optional(),
  actor: z.looseObject({ kind: z.string() }).optional(),
  aggregate: z.looseObject({ kind: z.string(), instanceId: z.string().optional() }).optional(),
  data: z.record(z.string(), z.unknown()).optional(),
});

/** A value as text: strings as they are, anything else as JSON. */
const text = (value: unknown): string => (typeof value === "string" ? value : value === undefined ? "" : JSON.stringify(value));

function actorText(actor: z.infer<typeof TimelineEvent>["actor"]): string {
  if (actor === undefined) return "?";
  const a = actor as Record<string, unknown>;
  switch (actor.kind) {
    case "user":
      return `user ${text(a.userId)}`;
    case "partition":
      return `partition ${text(a.computerId)}/${text(a.partitionId)}`;
    case "node":
      return `node ${text(a.computerId)}`;
    default:
      return `${actor.kind} ${text(a.name ?? "")}`.trim();
  }
}

function detail(event: z.infer<typeof TimelineEvent>): string {
  const data = event.data ?? {};
  switch (event.type) {
    case "InstanceRequestedStateChanged":
      return text(data.requestedState);
    case "PartitionAllocated":
    case "PartitionReleased":
      return event.aggregate === undefined ? "" : `${text((event.aggregate as Record<string, unknown>).computerId)}/${text((event.aggregate as Record<string, unknown>).partitionId)}`;
    case "InstanceStatusReported":
      return [data.status, data.message].filter((x) => x !== undefined).map(text).join(": ");
    case "InstanceBanged":
      return text(data.message ?? "").split("\n")[0] ?? "";
    case "ConnectionParametersPublished":
      return Object.keys((data.parameters as Record<string, unknown> | undefined) ?? {}).join(", ");
    default:
      return "";
  }
}

/**
 * `slap audit`: asks the master to rebuild every read model from the event log and compare it
 * with the live one (exit 1 on any difference). `slap audit <reference>`: the history of one
 * instance — every event about it, with time, actor, cause and correlation — as a timeline.
 */
export const auditCommand: Command = {
  name: "audit",
  summary: "rebuild the read models from the log and compare (or: one instance's history)",
  help: `usage: slap audit [--json]
       slap audit <reference> [--json]

Without a reference (admin): the master rebuilds its read models from the event log, up to the
position the live ones are at, and compares them; every difference is listed and the exit code
is 1 (none is expected: read models are pure folds of the log).
With a reference: every event about the instance you requested under it (its own stream, and the
allocations and releases of its partition), oldest first, with time, actor, cause and correlation.

options:
  --json    machine-readable output
${clientHelp}`,
  async run(argv, io) {
    const args = parseAuditArgs(argv, io.env);
    if (args === HELP) return printHelp(io, auditCommand);
    const client = new MasterClient(args.connection, io.fetch);
    if (args.reference === undefined) {
      const report = await client.audit();
      if (args.json) io.stdout.write(`${JSON.stringify(report)}\n`);
      else {
        io.stdout.write(`rebuilt from the log up to position ${report.rebuiltUpTo} in ${report.rebuildMs} ms (live read models at ${report.position})\n`);
        for (const model of report.models) {
          io.stdout.write(`${model.name}: ${model.differences.length === 0 ? "equal" : `${model.differences.length} difference(s)`}\n`);
          for (const d of model.differences) io.stdout.write(`  ${d.path}: live ${JSON.stringify(d.live)}, rebuilt ${JSON.stringify(d.rebuilt)}\n`);
        }
      }
      return report.equal ? 0 : 1;
    }
    const { instance } = await client.byReference(args.reference, false);
    const history: Array<{ position: number; event: z.infer<typeof TimelineEvent> }> = [];
    let after = 0;
    for (;;) {
      const page = await client.events({ after, limit: 5_000 });
      for (const record of page.events) {
        const event = TimelineEvent.safeParse(record.event);
        if (!event.success) continue;
        const about = event.data.aggregate?.instanceId === instance.instanceId || event.data.data?.instanceId === instance.instanceId;
        if (about) history.push({ position: record.position, event: event.data });
      }
      if (page.next === after || page.events.length === 0) break;
      after = page.next;
    }
    if (args.json) {
      io.stdout.write(`${JSON.stringify({ instance: instance.instanceId, reference: instance.reference, history })}\n`);
      return 0;
    }
    io.stdout.write(`history of ${instance.reference} [${instance.instanceId}], ${history.length} events\n`);
    for (const { position, event } of history) {
      io.stdout.write(
        `#${position} ${event.time} ${event.type.padEnd(30)} ${detail(event).padEnd(24).slice(0, 48)} by ${actorText(event.actor)}; cause ${event.causationId ?? "?"}, correlation ${event.correlationId}\n`,
      );
    }
    return 0;
  },
};
