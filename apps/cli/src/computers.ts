import { z } from "zod";
import { ComputerId, ReleaseUrl } from "@slap/events";
import { HELP, positionalLabels, printHelp, splitArgv, validate, type Command, type Io } from "./args.js";
import { MasterClient, asOfHeader, asOfHelp, clientHelp, clientOptions, connectionOf, parseListingArgs, type ComputerView, type InstanceList } from "./client.js";
import { livenessIn, livenessText, table } from "./format.js";

// ---------------------------------------------------------------------------------------------
// slap supply
// ---------------------------------------------------------------------------------------------

const supplyArgv = {
  options: { ...clientOptions, computer: { type: "string" }, destroy: { type: "boolean" } },
  positionals: ["release"],
} as const;

const SupplyArgs = z.object({
  release: ReleaseUrl,
  computer: z.string({ error: "is required" }).pipe(ComputerId),
  destroy: z.boolean().default(false),
});

export function parseSupplyArgs(argv: readonly string[], env: Io["env"]) {
  const split = splitArgv(supplyArgv, argv);
  if (split === HELP) return HELP;
  const args = validate(SupplyArgs, { ...split.values, ...split.positionals }, positionalLabels(supplyArgv.positionals));
  return {
    release: args.release,
    computerId: args.computer,
    state: args.destroy ? ("destroyed" as const) : ("available" as const),
    connection: connectionOf(split.values, env),
  };
}

export const supplyCommand: Command = {
  name: "supply",
  summary: "install a release on a computer (or remove it with --destroy); admin only",
  help: `usage: slap supply <release> --computer ID [--destroy]

Asks the node of computer ID to install the software release <release> (a path, file:// or
http(s):// URL), or with --destroy to remove it. The node reports the build status; see
slap computers.

options:
  --computer ID    the computer (required)
  --destroy        remove the release instead of installing it
${clientHelp}`,
  async run(argv, io) {
    const args = parseSupplyArgs(argv, io.env);
    if (args === HELP) return printHelp(io, supplyCommand);
    const { position } = await new MasterClient(args.connection, io.fetch).supply(args.computerId, args.release, args.state);
    const what = args.state === "available" ? `supplied ${args.release} to` : `asked to remove ${args.release} from`;
    io.stdout.write(position === 0 ? `nothing to change: ${args.release} is already so on ${args.computerId}\n` : `${what} ${args.computerId} (log position ${position})\n`);
    return 0;
  },
};

// ---------------------------------------------------------------------------------------------
// slap computers
// ---------------------------------------------------------------------------------------------

export const computersCommand: Command = {
  name: "computers",
  summary: "computers, their partitions (free/used) and releases",
  help: `usage: slap computers [--json] [--as-of WHEN]

Lists the registered computers: whether each computer's node answers (responsive, unresponsive
since when, or unknown just after the master started), each partition with its address, ports
and the instance it holds (or free), and each release supplied to the computer with its build
status. With --as-of, as they were then (without liveness: it is now, not history), under a
first line "as of WHEN (log position N)".

options:
  --json         print the master's answer as JSON (with --as-of: with "asOf": { time, position })
${asOfHelp}
${clientHelp}`,
  async run(argv, io) {
    const args = parseListingArgs(argv, io.env);
    if (args === HELP) return printHelp(io, computersCommand);
    const client = new MasterClient(args.connection, io.fetch);
    const { computers, asOf } = await client.computers(args["as-of"]);
    if (args.json) {
      io.stdout.write(`${JSON.stringify(asOf === undefined ? { computers } : { computers, asOf }, null, 2)}\n`);
      return 0;
    }
    if (asOf !== undefined) io.stdout.write(`${asOfHeader(asOf)}\n`);
    // References make the partition table readable; the list holds only what the user may see (as of the same position).
    const hasHolders = computers.some((c) => Object.values(c.partitions).some((p) => p.instanceId !== null));
    const list = hasHolders ? await client.instances(asOf === undefined ? undefined : { at: asOf.position }) : undefined;
    for (const line of computersLines(computers, list)) io.stdout.write(`${line}\n`);
    return 0;
  },
};

/** The text of `slap computers`. */
export function computersLines(computers: readonly ComputerView[], list?: InstanceList): string[] {
  if (computers.length === 0) return ["no computers registered"];
  const references = new Map((list?.instances ?? []).map((i) => [i.instanceId, i.reference]));
  const lines: string[] = [];
  const byNumber = (a: string, b: string): number => a.localeCompare(b, "en", { numeric: true });
  for (const computer of [...computers].sort((a, b) => byNumber(a.computerId, b.computerId))) {
    const partitions = Object.values(computer.partitions).sort((a, b) => byNumber(a.partitionId, b.partitionId));
    const used = partitions.filter((p) => p.instanceId !== null || (p.supersededClaim ?? null) !== null).length;
    const named = computer.name === null ? "" : ` (${computer.name})`;
    const network = computer.networkId === null ? "" : `, network ${computer.networkId}`;
    if (lines.length > 0) lines.push("");
    lines.push(`${computer.computerId}${named}: ${partitions.length} partitions, ${partitions.length - used} free, ${used} used${network}`);
    const liveness = livenessIn(computer);
    if (liveness !== undefined) lines.push(`  node ${livenessText(liveness)}`);
    lines.push(
      ...table(
        [
          ["PARTITION", "ADDRESS", "PORTS", "HOLDS"],
          ...partitions.map((p) => {
            const reference = p.instanceId === null ? undefined : references.get(p.instanceId);
            const holds =
              p.instanceId !== null
                ? reference === undefined
                  ? p.instanceId
                  : `${reference} [${p.instanceId}]`
                : (p.supersededClaim ?? null) !== null
                  ? "(a superseded claim, being released)"
                  : "free";
            return [p.partitionId, p.address, `${p.ports.from}-${p.ports.to}`, holds];
          }),
        ],
        "  ",
      ),
    );
    const software = Object.values(computer.software).sort((a, b) => a.releaseUrl.localeCompare(b.releaseUrl));
    if (software.length === 0) {
      lines.push("  no releases supplied");
      continue;
    }
    lines.push(
      ...table(
        [["RELEASE", "SUPPLIED", "STATUS"], ...software.map((s) => [s.releaseUrl, s.supplied ? "yes" : "no (removed)", s.status])],
        "  ",
      ),
    );
  }
  return lines;
}
