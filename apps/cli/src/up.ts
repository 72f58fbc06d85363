import { chmod, readFile } from "node:fs/promises";
import { join } from "node:path";
import { pino } from "pino";
import { describeSettings, usageOf, type ConfigDescription, type ConfigOf, type InstanceView, type Settings } from "@slap/events";
import { MASTER_SETTINGS, newToken, openOrCreateTokenFile } from "@slap/master";
import { NODE_SETTINGS, portsFitRule } from "@slap/node";
import { CliError, HELP, logLevelOf, printHelp, readSettings, settingsArgv, splitArgv, until, type Command, type Io } from "./args.js";
import { DEFAULT_MASTER } from "./client.js";

/**
 * The flags of `slap up`: the master's and the node's own settings it passes on (same flags,
 * variables and checks as `slap master` and `slap node`), narrowed where one process on one
 * machine running the example pair needs it.
 */
const UP_SETTINGS = {
  data: { ...MASTER_SETTINGS.data, help: "event log, partitions, software" },
  port: { ...MASTER_SETTINGS.port, help: "the master's HTTP port" },
  partitions: {
    ...NODE_SETTINGS.partitions,
    // The webapp and its kvdb take one partition each; a demo on one machine needs no more than 1000.
    schema: NODE_SETTINGS.partitions.schema.min(2, "must be at least 2: the webapp and its kvdb take one each").max(1_000, "must be at most 1000"),
    help: "partitions of the node",
  },
  computer: { ...NODE_SETTINGS.computer, default: "COMP-0", help: "the node's computer id" },
  portBase: NODE_SETTINGS.portBase,
} as const satisfies Settings;

const UP_CONFIG: ConfigDescription<typeof UP_SETTINGS> = { settings: UP_SETTINGS, rules: [portsFitRule] };
type UpArgs = ConfigOf<typeof UP_SETTINGS>;

/** The releases `slap up` supplies, and what it requests: the tutorial's pair. */
export const UP_RELEASES = ["examples/software/kvdb", "examples/software/webapp"] as const;
export const UP_REFERENCE = "my-webapp";
/** Who requests the pair: the admin of the data folder's token file, so `npx slap show my-webapp` finds it afterwards. */
export const UP_USER = "admin";
const USER = UP_USER;

export function parseUpArgs(argv: readonly string[], env: Io["env"]): UpArgs | typeof HELP {
  const split = splitArgv(settingsArgv(UP_SETTINGS), argv);
  if (split === HELP) return HELP;
  return readSettings(UP_CONFIG, split.values, env);
}

/** Whether `url` answers HTTP 200 within two minutes (asked every 100 ms), unless stopped first. */
export async function answers(url: string, stop: AbortSignal): Promise<boolean> {
  const deadline = Date.now() + 120_000;
  while (!stop.aborted && Date.now() < deadline) {
    try {
      const response = await fetch(url, { signal: AbortSignal.timeout(2_000) });
      await response.body?.cancel();
      if (response.ok) return true;
    } catch {
      // not listening yet
    }
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  return false;
}

function describe(instance: InstanceView, answer: { status: string; reason?: string }): string {
  const where = instance.placement === null ? "" : ` on ${instance.placement.computerId}/${instance.placement.partitionId}`;
  return answer.status === "pending" ? `pending${where}: ${answer.reason ?? ""}` : `${answer.status}${where}`;
}

/**
 * `slap up`: the whole system in one process over the embedded log — master (with its
 * allocator) and a node — with the tutorial's pair deployed: the example webapp, which requests
 * its kvdb. Progress is printed as events happen; Ctrl-C stops everything; the next start picks
 * up the same state (the supplies and the request are idempotent: nothing is re-created).
 */
export const upCommand: Command = {
  name: "up",
  summary: "run everything in one process (embedded log) and deploy the example webapp with its kvdb",
  help: `usage: slap up ${usageOf(UP_SETTINGS)}

Runs the master (HTTP API, with its allocator) and a node with N partitions in one process, over
the embedded event log in DIR (kept across restarts; the node's partitions and software live in
DIR/srv). The node talks to the master over HTTP as a distributed one does (its computer's
desired state), never to the log. It supplies the example releases ${UP_RELEASES.join(" and ")}, requests the webapp
(${UP_REFERENCE}, which requests its kvdb), prints progress as events happen, then the URLs of
the master's API, of its live dashboard and of the running web app. Ctrl-C (SIGINT) or SIGTERM
stops every process cleanly; the next start picks up the same state without re-creating
anything. Run it from the repository root (the example releases are found there). Nothing but
Node and npm is needed.

${describeSettings(UP_SETTINGS)}

LOG_LEVEL (default warn) sets the level of the services' JSON logs (on stderr).`,
  async run(argv, io) {
    const args = parseUpArgs(argv, io.env);
    if (args === HELP) return printHelp(io, upCommand);
    const [{ runMaster }, { runNode }, { dashboardOrNone, withAllocator }] = await Promise.all([
      import("@slap/master"),
      import("@slap/node"),
      import("./alongside.js"),
    ]);
    const stop = io.stopSignal();
    const logger = pino({ level: logLevelOf(io.env) }, pino.destination(2));
    const say = (line: string): void => {
      io.stdout.write(`[${new Date().toISOString().slice(11, 19)}] ${line}\n`);
    };

    // The token file of the data folder (created with an admin token in admin.token at first
    // start), plus tokens that live only as long as this process: its node's, and an admin one
    // when admin.token is gone (the operator keeps it elsewhere).
    let master: Awaited<ReturnType<typeof runMaster>>;
    let adminToken: string | undefined;
    const tokens = { node: newToken(), user: newToken() };
    try {
      const { credentials } = await openOrCreateTokenFile(join(args.data, "tokens.json"));
      adminToken = await readFile(join(args.data, "admin.token"), "utf8").then((text) => text.trim(), () => undefined);
      if (adminToken !== undefined && credentials.identify(adminToken)?.role === "admin") tokens.user = adminToken;
      else adminToken = undefined;
      master = await runMaster(
        { data: args.data, port: args.port, host: "127.0.0.1", logLevel: "warn" },
        {
          logger,
          ...(await dashboardOrNone((line) => io.stderr.write(`${line}\n`))),
          alongside: withAllocator,
          extraTokens: [
            { role: "node", computer: args.computer, token: tokens.node },
            { role: "admin", token: tokens.user },
          ],
        },
      );
    } catch (error) {
      throw new CliError(`cannot start the master: ${(error as Error).message}`);
    }
    const headBefore = await master.master.store.head();
    say(`master: ${master.url} (API, OpenAPI at ${master.url}/openapi.json); event log in ${args.data} (${headBefore} commits)`);
    // Shown at once: the dashboard is most useful while the deployment is under way.
    say(
      adminToken === undefined
        ? `dashboard: ${master.url}/dashboard (instances, computers and events, live; it asks for a token of ${join(args.data, "tokens.json")})`
        : `dashboard: ${master.url}/dashboard#token=${adminToken} (instances, computers and events, live; as admin)`,
    );
    // The master's URL in the hint: with --port N, the CLI's default (8080) is someone else's.
    const cliMaster = master.url === DEFAULT_MASTER ? "" : `SLAP_MASTER=${master.url} `;
    if (adminToken !== undefined) say(`CLI: ${cliMaster}npx slap instances (reads the admin token from ${join(args.data, "admin.token")}); slap show my-webapp/kvdb, slap --help`);
    else say(`CLI: ${cliMaster}SLAP_TOKEN_FILE=<your token's file> npx slap instances`);

    // Progress: every change of the answer of an instance of the user's trees, as events happen.
    const seen = new Map<string, string>();
    const report = (): void => {
      for (const instance of Object.values(master.master.instances.instances)) {
        const root = master.master.instance(instance.treeId);
        if (root?.requester.kind !== "user" || root.requester.userId !== USER) continue;
        const answer = master.master.answer(instance);
        const line = describe(instance, answer);
        if (seen.get(instance.instanceId) !== line) {
          seen.set(instance.instanceId, line);
          say(`${instance.reference}: ${line}`);
        }
      }
    };
    const unsubscribe = master.master.onChange(report);

    let node: Awaited<ReturnType<typeof runNode>> | undefined;
    try {
      // The partitions' users must traverse the data folder to reach theirs (srv/), and must list
      // or read nothing else in it: the log and the token files are 0600, the folder 0711.
      await chmod(args.data, 0o711);
      node = await runNode(
        { master: master.url, token: tokens.node, computer: args.computer, partitions: args.partitions, root: join(args.data, "srv"), portBase: args.portBase, logLevel: "warn" },
        { logger, handleSignals: false },
      );
      say(`node ${args.computer}: ${args.partitions} partitions in ${join(args.data, "srv")}`);
      const call = async (path: string, body: unknown): Promise<{ status: number; body: unknown }> => {
        const response = await fetch(`${master.url}${path}`, {
          method: "POST",
          headers: { authorization: `Bearer ${tokens.user}`, "content-type": "application/json" },
          body: JSON.stringify(body),
        });
        return { status: response.status, body: await response.json() };
      };
      for (const releaseUrl of UP_RELEASES) {
        const supplied = await call(`/v1/computers/${args.computer}/supply`, { releaseUrl });
        if (supplied.status !== 200) throw new CliError(`cannot supply ${releaseUrl}: ${JSON.stringify(supplied.body)}`);
      }
      const requested = await call("/v1/requests", { releaseUrl: UP_RELEASES[1], reference: UP_REFERENCE, parameters: { title: "slap up" } });
      if (requested.status !== 200 && requested.status !== 202) throw new CliError(`cannot request the webapp: ${JSON.stringify(requested.body)}`);
      const created = (await master.master.store.head()) - headBefore;
      say(headBefore > 0 && created === 0 ? "same state as last time: nothing re-created" : `${created} new events`);
      report();

      const instanceId = (requested.body as { instanceId: string }).instanceId;
      const ready = await Promise.race([master.master.waitForAnswer(instanceId, 120_000), until(stop).then(() => undefined)]);
      const url = ready?.status === "ready" ? ready.connection.url : undefined;
      // After a restart the answer is ready at once (its parameters were published last time):
      // say so only once the node has brought the service back and it answers (its health check,
      // which also proves its kvdb connection; `/` would count a visit).
      if (url !== undefined && (await answers(new URL("/healthz", url).href, stop))) say(`ready: the web app is at ${url}`);
      else if (!stop.aborted) say("the web app is not ready after 2 minutes; it goes on (see the progress above)");
      say("Ctrl-C stops everything");
      await until(stop);
      say("stopping");
    } finally {
      unsubscribe();
      await node?.stop();
      await master.stop();
    }
    return 0;
  },
};
