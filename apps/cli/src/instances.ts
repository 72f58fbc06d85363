import { readFileSync } from "node:fs";
import { parse as parseYaml } from "yaml";
import { z } from "zod";
import { ParameterMap, READINESS, ReleaseUrl, RequestedState, StringMap, readinessOf, type JsonValue } from "@slap/events";
import { EXIT, HELP, UsageError, quoted, jsonKeyValues, keyValues, positionalLabels, printHelp, splitArgv, validate, type Command, type Io } from "./args.js";
import {
  AsOfArg,
  MasterClient,
  MasterFailure,
  isMasterFailure,
  UnexpectedAnswer,
  asOfHeader,
  asOfHelp,
  asOfOption,
  clientHelp,
  clientOptions,
  connectionOf,
  type Answer,
  type Connection,
  type InstanceList,
  type InstanceView,
  type RequestBody,
} from "./client.js";
import { resolveInstance } from "./resolve.js";
import { forest, keyValueLines, livenessText, mask, nodeLivenessIn, seconds, StatusLine, table } from "./format.js";

// ---------------------------------------------------------------------------------------------
// slap request
// ---------------------------------------------------------------------------------------------

const DEFAULT_TIMEOUT_S = 600;

const requestArgv = {
  options: {
    ...clientOptions,
    type: { type: "string" },
    param: { type: "string", multiple: true },
    "param-json": { type: "string", multiple: true },
    "parameters-file": { type: "string" },
    sla: { type: "string", multiple: true },
    shared: { type: "boolean" },
    state: { type: "string" },
    "no-wait": { type: "boolean" },
    json: { type: "boolean" },
    timeout: { type: "string" },
  },
  positionals: ["release", "reference"],
} as const;

const RequestArgs = z.object({
  release: ReleaseUrl,
  reference: z.string().min(1).max(512),
  type: z.string().min(1).max(128).default("default"),
  param: ParameterMap,
  sla: StringMap,
  shared: z.boolean().default(false),
  state: RequestedState.default("started"),
  "no-wait": z.boolean().default(false),
  json: z.boolean().default(false),
  timeout: z.coerce.number({ error: "must be a number of seconds" }).positive().max(86_400).default(DEFAULT_TIMEOUT_S),
});

export interface RequestArgs {
  connection: Connection;
  body: RequestBody;
  wait: boolean;
  json: boolean;
  timeoutMs: number;
}

/**
 * `slap request` arguments; `--param`/`--sla` are `k=v` (split on the first `=`); the parameters
 * of `--parameters-file` come first, and a `--param` (or `--param-json k=<json>`, a typed value)
 * of the same name wins over the file.
 */
export function parseRequestArgs(argv: readonly string[], env: Io["env"]): RequestArgs | typeof HELP {
  const split = splitArgv(requestArgv, argv);
  if (split === HELP) return HELP;
  const { values, positionals } = split;
  const file = typeof values["parameters-file"] === "string" ? readParametersFile(values["parameters-file"]) : {};
  const args = validate(
    RequestArgs,
    {
      ...values,
      ...positionals,
      param: { ...file, ...keyValues("param", values.param as string[] | undefined), ...jsonKeyValues("param-json", values["param-json"] as string[] | undefined) },
      sla: keyValues("sla", values.sla as string[] | undefined),
    },
    positionalLabels(requestArgv.positionals),
  );
  return {
    connection: connectionOf(values, env),
    body: {
      releaseUrl: args.release,
      reference: args.reference,
      softwareType: args.type,
      parameters: args.param,
      sla: args.sla,
      shared: args.shared,
      state: args.state,
    },
    wait: !args["no-wait"],
    json: args.json,
    timeoutMs: args.timeout * 1000,
  };
}

/**
 * The parameters in a `--parameters-file`: a JSON or YAML object (YAML 1.2, of which JSON is a
 * part, read with the `yaml` package) of names to values, kept as typed (numbers, booleans,
 * lists, objects: the release's schema says which it takes).
 */
export function readParametersFile(path: string): Record<string, JsonValue> {
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch (error) {
    throw new UsageError(`--parameters-file: cannot read ${quoted(path)}: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}`);
  }
  let document: unknown;
  try {
    document = parseYaml(text);
  } catch (error) {
    throw new UsageError(`--parameters-file ${quoted(path)}: not JSON or YAML: ${(error as Error).message.split("\n")[0]}`);
  }
  if (typeof document !== "object" || document === null || Array.isArray(document)) {
    throw new UsageError(`--parameters-file ${quoted(path)}: must be an object of parameter names to values`);
  }
  // Through JSON: what YAML has beyond it (dates, undefined) becomes what a request carries.
  return JSON.parse(JSON.stringify(document)) as Record<string, JsonValue>;
}

/** What `request` prints and its exit code, for an answer. */
export interface Outcome {
  code: number;
  stdout: string[];
  stderr: string[];
}

/**
 * The result of a request: `ready` exits 0 with the connection parameters (`key = value`
 * lines), `destroyed` exits 0, `pending` exits 2 with the reason (ask again: the request is
 * idempotent), and 1 when it is blocked (nothing progresses until its cause is fixed). With
 * `json`, stdout is exactly one object `{ status, instance, connection, reason, blocked }` and
 * stderr stays quiet.
 */
export function outcomeOf(answer: Answer, json: boolean): Outcome {
  const blocked = answer.status === "pending" ? answer.blocked : undefined;
  const code = blocked !== undefined ? EXIT.error : answer.status === "pending" ? EXIT.pending : EXIT.ok;
  if (json) {
    const line = {
      status: answer.status,
      instance: answer.instanceId,
      connection: answer.status === "ready" ? answer.connection : null,
      reason: answer.status === "pending" ? answer.reason : null,
      blocked: blocked ?? null,
    };
    return { code, stdout: [JSON.stringify(line)], stderr: [] };
  }
  switch (answer.status) {
    case "ready":
      return { code, stdout: keyValueLines(answer.connection), stderr: [`ready: ${answer.reference} [${answer.instanceId}]`] };
    case "destroyed":
      return { code, stdout: [`destroyed: ${answer.reference} [${answer.instanceId}]`], stderr: [] };
    case "pending":
      if (blocked !== undefined) return { code, stdout: [], stderr: [`slap request: blocked: ${blocked} (the request stands: fixing the cause makes it progress)`] };
      return { code, stdout: [`pending: ${answer.reason}`], stderr: [] };
  }
}

export interface Settled {
  answer: Answer;
  timedOut: boolean;
  interrupted: boolean;
}

/**
 * Requests, then waits until the answer is final (`ready` or `destroyed`), the time is up or
 * `stop` aborts: first by watching the instance (server-sent events), and if the master ends
 * or refuses the watch, by asking again with a long poll (`?wait=`).
 */
export async function settle(
  client: MasterClient,
  body: RequestBody,
  options: { timeoutMs: number; stop: AbortSignal; onAnswer: (answer: Answer) => void },
): Promise<Settled> {
  const deadline = Date.now() + options.timeoutMs;
  // A timer of our own, not AbortSignal.timeout: it holds the process until the deadline, and is cleared after.
  const timer = new AbortController();
  const timeout = setTimeout(() => timer.abort(), options.timeoutMs);
  const signal = AbortSignal.any([timer.signal, options.stop]);
  // Blocked is final too: waiting would not help.
  const final = (a: Answer): boolean => a.status !== "pending" || a.blocked !== undefined;
  let answer: Answer | undefined;
  const seen = (a: Answer): boolean => {
    answer = a;
    options.onAnswer(a);
    return final(a);
  };
  const settled = (): Settled => {
    if (answer === undefined) throw new MasterFailure(new UnexpectedAnswer("no answer from the master", 0), "no answer from the master");
    return { answer, timedOut: timer.signal.aborted && !final(answer), interrupted: options.stop.aborted && !final(answer) };
  };
  try {
    if (seen(await client.request(body, { signal }))) return settled();
    try {
      for await (const a of client.watch(answer!.instanceId, signal)) if (seen(a)) return settled();
    } catch (error) {
      if (signal.aborted || isMasterFailure(error, UnexpectedAnswer)) throw error;
      // The watch is refused or lost: go on with long polls, which fail loudly if the master is gone.
    }
    for (let remaining = deadline - Date.now(); remaining > 0 && !signal.aborted; remaining = deadline - Date.now()) {
      if (seen(await client.request(body, { waitMs: Math.min(60_000, Math.ceil(remaining)), signal }))) return settled();
    }
  } catch (error) {
    if (!signal.aborted || answer === undefined) throw error;
  } finally {
    clearTimeout(timeout);
  }
  return settled();
}

export const requestCommand: Command = {
  name: "request",
  summary: "request an instance and wait until it is ready",
  help: `usage: slap request <release> <reference> [options]

Requests an instance of <release> under <reference> (idempotent: asking again with the same
arguments changes nothing; other parameters update the instance), then waits until it is ready
and prints its connection parameters as "key = value" lines.

options:
  --type T             software type (default "default")
  --param k=v          an instance parameter; repeat for more; the value may contain "="
  --param-json k=JSON  a typed parameter: --param-json replicas=3 --param-json tls=true
  --parameters-file F  the instance parameters from a file: a JSON or YAML object of
                       name: value, kept as typed; --param of the same name wins over it
  --sla k=v            a placement constraint, e.g. --sla computer_guid=COMP-1; repeatable
  --shared             ask for a shared instance (a slave) served by a host instance
  --state S            started (default), stopped or destroyed
  --no-wait            ask once and answer at once (exit 2 while pending: run it again)
  --timeout SECONDS    how long to wait (default ${DEFAULT_TIMEOUT_S})
  --json               print one JSON object:
                       { "status": "pending"|"ready"|"destroyed", "instance": ID,
                         "connection": {...}|null, "reason": string|null,
                         "blocked": string|null }
${clientHelp}

exit codes: 0 ready (or destroyed), 1 an error, or blocked: nothing can progress (an unknown SLA
key, a release that failed to install on every computer supplied with it, parameters its schema
refuses) until the cause is fixed (the request stands, still pending); 2 still pending (run it
again), 64 a usage error.`,
  async run(argv, io) {
    const args = parseRequestArgs(argv, io.env);
    if (args === HELP) return printHelp(io, requestCommand);
    const client = new MasterClient(args.connection, io.fetch);
    if (!args.wait) return emit(io, outcomeOf(await client.request(args.body), args.json));
    const status = new StatusLine(io.stderr);
    const result = await settle(client, args.body, {
      timeoutMs: args.timeoutMs,
      stop: io.stopSignal(),
      onAnswer: (answer) => {
        if (!args.json && answer.status === "pending") status.update(`pending: ${answer.reason}`);
      },
    });
    status.done();
    if (result.interrupted) {
      io.stderr.write("slap request: interrupted; the request stands (ask again to follow it)\n");
      return EXIT.interrupted;
    }
    const outcome = outcomeOf(result.answer, args.json);
    if (result.timedOut && !args.json) outcome.stderr.push(`slap request: still pending after ${seconds(args.timeoutMs)}`);
    return emit(io, outcome);
  },
};

function emit(io: Io, outcome: Outcome): number {
  for (const line of outcome.stderr) io.stderr.write(`${line}\n`);
  for (const line of outcome.stdout) io.stdout.write(`${line}\n`);
  return outcome.code;
}

// ---------------------------------------------------------------------------------------------
// slap show
// ---------------------------------------------------------------------------------------------

const showArgv = {
  options: { ...clientOptions, ...asOfOption, json: { type: "boolean" }, secrets: { type: "boolean" } },
  positionals: ["instance"],
} as const;

/** `<instance>`: an id, a reference, or a path of references (`my-webapp/kvdb`): see resolve.ts. */
const InstanceName = z.string().min(1).max(4_096);

const instanceHelp = `<instance> is the instance's id, its reference (when one instance of your trees has it; your
own root of that name first), or its path from the root of its tree: my-webapp/kvdb.`;

const ShowArgs = z.object({
  instance: InstanceName,
  json: z.boolean().default(false),
  secrets: z.boolean().default(false),
  "as-of": AsOfArg.optional(),
});

export function parseShowArgs(argv: readonly string[], env: Io["env"]) {
  const split = splitArgv(showArgv, argv);
  if (split === HELP) return HELP;
  const args = validate(ShowArgs, { ...split.values, ...split.positionals }, positionalLabels(showArgv.positionals));
  return { ...args, connection: connectionOf(split.values, env) };
}

export const showCommand: Command = {
  name: "show",
  summary: "show one instance: where it runs, its status, promises, connection, tree",
  help: `usage: slap show <instance> [--json] [--secrets] [--as-of WHEN]

Shows an instance of your trees: release, software type, requested state,
where it runs and whether that computer's node answers (responsive, or unresponsive since
when), the answer a request would get now, its node's status and promises, parameters,
connection parameters (secrets masked unless --secrets: see "Secrets" in the README), requester,
shared instances it hosts and its instance tree. With --as-of, all of it as it was then (but
the node's liveness, which is now, not history), under a first line "as of WHEN (log position N)".
${instanceHelp}

options:
  --json         print the master's answer as JSON (with --as-of: with "asOf": { time, position })
  --secrets      show secret connection values
${asOfHelp}
${clientHelp}`,
  async run(argv, io) {
    const args = parseShowArgs(argv, io.env);
    if (args === HELP) return printHelp(io, showCommand);
    const client = new MasterClient(args.connection, io.fetch);
    const details = await resolveInstance(client, args.instance, { secrets: args.secrets, ...(args["as-of"] === undefined ? {} : { asOf: args["as-of"] }) });
    if (args.json) {
      io.stdout.write(`${JSON.stringify(details, null, 2)}\n`);
      return 0;
    }
    // The tree as of the same position as the instance, even if the log grows in between.
    const list = await client.instances(details.asOf === undefined ? undefined : { at: details.asOf.position });
    if (details.asOf !== undefined) io.stdout.write(`${asOfHeader(details.asOf)}\n`);
    for (const line of showLines(details.instance, details.answer, details.sharedInstances, list, args.secrets)) io.stdout.write(`${line}\n`);
    return 0;
  },
};

/** The text of `slap show`. */
export function showLines(instance: InstanceView, answer: Answer, shared: readonly InstanceView[], list: InstanceList, secrets: boolean): string[] {
  const byId = new Map(list.instances.map((i) => [i.instanceId, i]));
  const name = (id: string): string => {
    const other = byId.get(id);
    return other === undefined ? `[${id}]` : `${other.reference} [${id}]`;
  };
  const rows: string[][] = [
    ["release", instance.releaseUrl],
    ["software type", instance.softwareType],
    ["requested state", instance.requestedState + (instance.shared ? " (shared)" : "")],
    ["answer", answer.status === "pending" ? `${answer.blocked === undefined ? "pending" : "blocked"}: ${answer.reason}` : answer.status],
    ["runs on", placementOf(instance, name)],
  ];
  const health = instance.health;
  if (health !== null && health !== undefined) rows.push(["health", `${health.ok ? "ok" : "failing"} since ${health.since}${health.message === null ? "" : `: ${health.message}`}`]);
  const node = nodeLivenessIn(instance);
  if (node !== undefined) rows.push(["node", livenessText(node)]);
  const status = instance.status;
  if (status !== null) {
    rows.push(["node status", `${status.status} at ${status.at}${status.message === null ? "" : `: ${status.message}`}`]);
    if (status.waitingFor.length > 0) rows.push(["waiting for", status.waitingFor.join(", ")]);
    if (status.promises.length > 0) {
      const failing = status.promises.filter((p) => !p.ok);
      rows.push(["promises", `${status.promises.length - failing.length} ok, ${failing.length} failing`]);
      for (const p of failing) rows.push(["", `✗ ${p.name}: ${p.message}`]);
    }
    if (status.processes.length > 0) rows.push(["processes", status.processes.map((p) => `${p.name} ${p.state}`).join(", ")]);
  } else {
    rows.push(["node status", "none reported yet"]);
  }
  rows.push(["requester", instance.requester.kind === "user" ? `user ${instance.requester.userId}` : `instance ${name(instance.requester.instanceId)}`]);
  rows.push(["requested at", instance.requestedAt], ["updated at", instance.updatedAt], ["serial", String(instance.serial)]);
  if (instance.lastBang !== null) rows.push(["last bang", `${instance.lastBang.at}: ${instance.lastBang.message}`]);

  const lines = [`${instance.reference}  [${instance.instanceId}]`, ...table(rows, "  ")];
  const section = (title: string, map: Readonly<Record<string, unknown>> | null, empty: string): void => {
    lines.push(`${title}:`);
    const entries = map === null ? [] : keyValueLines(map, "  ");
    lines.push(...(entries.length > 0 ? entries : [`  (${empty})`]));
  };
  section("parameters", instance.parameters, "none");
  section("sla", instance.sla, "none");
  section("connection", instance.connection === null ? null : secrets ? instance.connection : mask(instance.connection), "not published yet");
  if (shared.length > 0) {
    lines.push("shared instances:");
    for (const s of shared) lines.push(`  ${s.reference}  [${s.instanceId}]  ${readiness(s)}`);
  }
  const tree = list.instances.filter((i) => i.treeId === instance.treeId);
  if (tree.length > 1 || tree[0]?.instanceId !== instance.instanceId) {
    lines.push(`tree ${instance.treeId}:`);
    const marked = instanceRows(tree, list).map((row) => {
      const id = row[row.length - 1];
      return id === instance.instanceId ? [...row.slice(0, -1), `${id}  ← this one`] : row;
    });
    lines.push(...table(marked, "  "));
  }
  return lines;
}

// ---------------------------------------------------------------------------------------------
// slap instances
// ---------------------------------------------------------------------------------------------

const instancesArgv = {
  options: { ...clientOptions, ...asOfOption, json: { type: "boolean" }, all: { type: "boolean" }, status: { type: "string" }, computer: { type: "string" }, release: { type: "string" } },
} as const;


const InstancesArgs = z.object({
  json: z.boolean().default(false),
  all: z.boolean().default(false),
  status: z.enum(READINESS, { error: `must be one of ${READINESS.join(", ")}` }).optional(),
  computer: z.string().min(1).max(64).optional(),
  release: z.string().min(1).max(2_048).optional(),
  "as-of": AsOfArg.optional(),
});
export type InstanceFilter = Pick<z.output<typeof InstancesArgs>, "all" | "status" | "computer" | "release">;

export function parseInstancesArgs(argv: readonly string[], env: Io["env"]) {
  const split = splitArgv(instancesArgv, argv);
  if (split === HELP) return HELP;
  return { ...validate(InstancesArgs, split.values), connection: connectionOf(split.values, env) };
}

/**
 * The instances `slap instances` lists: destroyed ones only with `all` (or `--status destroyed`);
 * then those of that status, on that computer (a shared instance: its host's), of that release.
 * Trees keep only the instances kept.
 */
export function filterInstances(list: InstanceList, filter: InstanceFilter): InstanceList {
  const byId = new Map(list.instances.map((i) => [i.instanceId, i]));
  const computerOf = (i: InstanceView): string | undefined => i.placement?.computerId ?? (i.host === null ? undefined : byId.get(i.host.instanceId)?.placement?.computerId);
  const kept = list.instances.filter(
    (i) =>
      (filter.all || filter.status === "destroyed" || !i.destroyed) &&
      (filter.status === undefined || readiness(i) === filter.status) &&
      (filter.computer === undefined || computerOf(i) === filter.computer) &&
      (filter.release === undefined || i.releaseUrl === filter.release),
  );
  const ids = new Set(kept.map((i) => i.instanceId));
  return { ...list, instances: kept, trees: list.trees.map((t) => ({ ...t, instanceIds: t.instanceIds.filter((id) => ids.has(id)) })).filter((t) => t.instanceIds.length > 0) };
}

export const instancesCommand: Command = {
  name: "instances",
  summary: "your instance trees: every instance under its requester",
  help: `usage: slap instances [--all] [--status S] [--computer ID] [--release URL] [--json] [--as-of WHEN]

Lists the instances you can see (admin: all), tree by tree, each indented under the instance
that requested it, with its requested state, where it runs and whether it is ready. Destroyed
instances are left out unless --all. With --as-of, as they were then, under a first line
"as of WHEN (log position N)".

options:
  --all          destroyed instances too
  --status S     only those whose STATUS is S: ${READINESS.join(", ")}
  --computer ID  only those running on computer ID (a shared instance: where its host runs)
  --release URL  only those of that release (its URL as requested)
  --json         print the master's answer, filtered, as JSON (with --as-of: with "asOf": { time, position })
${asOfHelp}
${clientHelp}`,
  async run(argv, io) {
    const args = parseInstancesArgs(argv, io.env);
    if (args === HELP) return printHelp(io, instancesCommand);
    const list = filterInstances(await new MasterClient(args.connection, io.fetch).instances(args["as-of"]), args);
    if (args.json) {
      io.stdout.write(`${JSON.stringify(list, null, 2)}\n`);
      return 0;
    }
    if (list.asOf !== undefined) io.stdout.write(`${asOfHeader(list.asOf)}\n`);
    for (const line of instancesLines(list)) io.stdout.write(`${line}\n`);
    return 0;
  },
};

/** The text of `slap instances`: a header, then one row per instance, trees in order. */
export function instancesLines(list: InstanceList): string[] {
  if (list.instances.length === 0) return ["no instances"];
  return table([["REFERENCE", "STATE", "RUNS ON", "STATUS", "INSTANCE"], ...instanceRows(list.instances, list)]);
}

function instanceRows(instances: readonly InstanceView[], list: InstanceList): string[][] {
  const byId = new Map(list.instances.map((i) => [i.instanceId, i]));
  const order = new Map<string, number>();
  for (const tree of list.trees) for (const id of tree.instanceIds) if (!order.has(id)) order.set(id, order.size);
  const sorted = [...instances].sort((a, b) => (order.get(a.instanceId) ?? Infinity) - (order.get(b.instanceId) ?? Infinity));
  const nodes = sorted.map((i) => ({ id: i.instanceId, parentId: i.requester.kind === "instance" ? i.requester.instanceId : null, instance: i }));
  const name = (id: string): string => byId.get(id)?.reference ?? id;
  return forest(nodes).map(({ node: { instance: i }, prefix }) => [
    prefix + i.reference,
    i.requestedState,
    placementOf(i, name) + (nodeLivenessIn(i)?.state === "unresponsive" ? " (node unresponsive)" : ""),
    readiness(i),
    i.instanceId,
  ]);
}

/** Where an instance runs, for people. */
export function placementOf(instance: InstanceView, name: (instanceId: string) => string = (id) => id): string {
  if (instance.placement !== null) return `${instance.placement.computerId}/${instance.placement.partitionId}`;
  if (instance.host !== null) return `shared, hosted by ${name(instance.host.instanceId)}`;
  return instance.shared ? "shared, no host yet" : "not placed";
}

/** One word for where an instance stands, from its record (the list has no answers). */
export const readiness = readinessOf;

// ---------------------------------------------------------------------------------------------
// slap bang
// ---------------------------------------------------------------------------------------------

const bangArgv = { options: { ...clientOptions, message: { type: "string" } }, positionals: ["instance"] } as const;
const BangArgs = z.object({ instance: InstanceName, message: z.string().min(1).max(65_536).optional() });

export function parseBangArgs(argv: readonly string[], env: Io["env"]) {
  const split = splitArgv(bangArgv, argv);
  if (split === HELP) return HELP;
  const args = validate(BangArgs, { ...split.values, ...split.positionals }, positionalLabels(bangArgv.positionals));
  return { ...args, connection: connectionOf(split.values, env) };
}

export const bangCommand: Command = {
  name: "bang",
  summary: "make an instance and its requesters up to the root reprocess",
  help: `usage: slap bang <instance> [--message M]

Bangs an instance of your trees: it and every instance that requested it, up to the root of
its tree, are processed again by their nodes.
${instanceHelp}

options:
  --message M    why (default "banged by hand")
${clientHelp}`,
  async run(argv, io) {
    const args = parseBangArgs(argv, io.env);
    if (args === HELP) return printHelp(io, bangCommand);
    const client = new MasterClient(args.connection, io.fetch);
    const { instance } = await resolveInstance(client, args.instance);
    const { position } = await client.bang(instance.instanceId, args.message);
    io.stdout.write(`banged ${instance.reference} [${instance.instanceId}] (log position ${position})\n`);
    return 0;
  },
};

// ---------------------------------------------------------------------------------------------
// slap start | stop | destroy
// ---------------------------------------------------------------------------------------------

const stateArgv = { options: { ...clientOptions, json: { type: "boolean" } }, positionals: ["instance"] } as const;
const StateArgs = z.object({ instance: InstanceName, json: z.boolean().default(false) });

export function parseStateArgs(argv: readonly string[], env: Io["env"]) {
  const split = splitArgv(stateArgv, argv);
  if (split === HELP) return HELP;
  const args = validate(StateArgs, { ...split.values, ...split.positionals }, positionalLabels(stateArgv.positionals));
  return { ...args, connection: connectionOf(split.values, env) };
}

/**
 * `slap start|stop|destroy <instance>`: the requested state only (`POST /v1/instances/:id/state`),
 * never a request: the instance's parameters, SLA and release stay as they are, nothing is
 * created, and a child instance stays in its tree.
 */
function stateCommand(name: "start" | "stop" | "destroy", state: "started" | "stopped" | "destroyed", summary: string, what: string): Command {
  const command: Command = {
    name,
    summary,
    help: `usage: slap ${name} <instance> [--json]

${what} Only the requested state changes: parameters, SLA and release stay as they are,
and nothing is requested anew (slap request would replace the parameters). Answers at once;
follow it with slap show or slap events --follow.
${instanceHelp}

options:
  --json         print the master's answer as JSON
${clientHelp}`,
    async run(argv, io) {
      const args = parseStateArgs(argv, io.env);
      if (args === HELP) return printHelp(io, command);
      const client = new MasterClient(args.connection, io.fetch);
      const { instance } = await resolveInstance(client, args.instance);
      const answer = await client.changeState(instance.instanceId, state);
      if (args.json) io.stdout.write(`${JSON.stringify(answer)}\n`);
      else io.stdout.write(`${instance.reference} [${instance.instanceId}]: requested ${state}; ${answer.status === "pending" ? `pending: ${answer.reason}` : answer.status}\n`);
      return 0;
    },
  };
  return command;
}

export const startCommand = stateCommand("start", "started", "start an instance (its requested state: started)", "Starts an instance of your trees (a root's whole tree follows).");
export const stopCommand = stateCommand("stop", "stopped", "stop an instance's services (its requested state: stopped)", "Stops an instance of your trees (a root's whole tree follows).");
export const destroyCommand = stateCommand(
  "destroy",
  "destroyed",
  "destroy an instance (a root: its whole tree, children first)",
  "Destroys an instance of your trees; a root's whole tree is destroyed, children first.",
);
