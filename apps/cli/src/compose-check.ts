/**
 * Checks a docker-compose document against the code, without a container engine: every slap
 * service's command is a real `slap` command whose arguments and environment its own parser
 * accepts, sets only the environment variables that command reads (`Command.env`), and the
 * services line up — published ports, health checks, URLs between services, volumes, networks,
 * `depends_on`, and the Dockerfile of the build. Used by `compose.test.ts` on docker-compose.yml.
 */
import { z } from "zod";
import { HELP, type Command, type Io } from "./args.js";
import { parseAllocatorArgs, parseMasterArgs, parseNodeArgs } from "./services.js";

const Strings = z.array(z.string());
const Environment = z.union([
  z.record(z.string(), z.union([z.string(), z.number(), z.boolean(), z.null()])),
  z.array(z.string()).transform((pairs) => Object.fromEntries(pairs.map((pair) => [pair.split("=")[0] ?? "", pair.split("=").slice(1).join("=")]))),
]);

const Service = z.looseObject({
  image: z.string().optional(),
  build: z.union([z.string(), z.looseObject({ context: z.string(), dockerfile: z.string().optional() })]).optional(),
  entrypoint: z.union([z.string(), Strings]).optional(),
  command: z.union([z.string(), Strings]).optional(),
  environment: Environment.optional(),
  ports: z.array(z.union([z.string(), z.number()])).optional(),
  volumes: z.array(z.string()).optional(),
  networks: z.union([Strings, z.record(z.string(), z.looseObject({ ipv4_address: z.string().optional() }).nullable())]).optional(),
  depends_on: z.union([Strings, z.record(z.string(), z.looseObject({ condition: z.string().optional() }))]).optional(),
  healthcheck: z.looseObject({ test: z.union([z.string(), Strings]) }).optional(),
  secrets: z.array(z.union([z.string(), z.looseObject({ source: z.string(), target: z.string().optional() })])).optional(),
  env_file: z.union([z.string(), Strings]).optional(),
});
type Service = z.infer<typeof Service>;

const ComposeDocument = z.looseObject({
  services: z.record(z.string(), Service),
  volumes: z.record(z.string(), z.unknown().nullable()).optional(),
  networks: z.record(z.string(), z.unknown().nullable()).optional(),
  secrets: z.record(z.string(), z.looseObject({ file: z.string().optional() }).nullable()).optional(),
});

export interface ComposeContext {
  /** The `slap` commands (the CLI's dispatch table). */
  commands: readonly Command[];
  /** Reads a file of the build context (`<context>/<path>`); undefined when it does not exist. */
  readFile(context: string, path: string): string | undefined;
}

/** The ports nats-server listens on by default (client; `-m` gives the monitoring one). */
const NATS_CLIENT_PORT = 4222;

/** The parsers of the services' configuration: the same code `slap <command>` runs. */
const parsers: Readonly<Record<string, (argv: readonly string[], env: Io["env"]) => unknown>> = {
  master: parseMasterArgs,
  allocator: parseAllocatorArgs,
  node: parseNodeArgs,
};

/** The problems found in `document` (a parsed docker-compose.yml), each naming its service; empty when it lines up. */
export function checkCompose(document: unknown, context: ComposeContext): string[] {
  const parsed = ComposeDocument.safeParse(document);
  if (!parsed.success) return parsed.error.issues.map((issue) => `${issue.path.join(".")}: ${issue.message}`);
  const { services } = parsed.data;
  const declaredVolumes = new Set(Object.keys(parsed.data.volumes ?? {}));
  const declaredNetworks = new Set(Object.keys(parsed.data.networks ?? {}));
  const declaredSecrets = new Set(Object.keys(parsed.data.secrets ?? {}));
  const problems: string[] = [];
  const listening = new Map<string, number>(); // service → the port its clients use
  const entrypoints = new Map<string, string[]>();
  /** Whether nats-server runs with a configuration (its users): then every slap service needs its credentials. */
  let isNatsAuthenticated = false;

  // First pass: what each service is, and where it listens.
  for (const [name, service] of Object.entries(services)) {
    const say = (problem: string): void => {
      problems.push(`${name}: ${problem}`);
    };
    if (service.image === undefined && service.build === undefined) say("has neither image nor build");
    if (service.build !== undefined) {
      const build = typeof service.build === "string" ? { context: service.build } : service.build;
      const dockerfile = build.dockerfile ?? "Dockerfile";
      const text = context.readFile(build.context, dockerfile);
      if (text === undefined) say(`build: no ${dockerfile} in ${build.context}`);
      else entrypoints.set(name, entrypointOf(text));
    }
    const command = argvOf(service.command);
    if (isNats(service)) {
      listening.set(name, Number(flagValue(command, "-p", "--port") ?? NATS_CLIENT_PORT));
      if (flagValue(command, "-c", "--config") !== undefined) isNatsAuthenticated = true;
    }
    if (command[0] === "master") {
      try {
        const master = parseMasterArgs(command.slice(1), environmentOf(service));
        if (master !== HELP) listening.set(name, master.port);
      } catch {
        // reported below
      }
    }
  }

  for (const [name, service] of Object.entries(services)) {
    const say = (problem: string): void => {
      problems.push(`${name}: ${problem}`);
    };
    const command = argvOf(service.command);
    const environment = environmentOf(service);
    const entrypoint = service.entrypoint === undefined ? entrypoints.get(name) : argvOf(service.entrypoint);
    const mounts = mountTargets(service, declaredVolumes, say);
    const addresses = networkAddresses(service, declaredNetworks, say);
    const secrets = secretPaths(service, declaredSecrets, say);
    // A file of credentials named in the environment must be one of the service's secrets.
    for (const variable of ["SLAP_TOKENS", "SLAP_TOKEN_FILE"]) {
      const path = environment[variable];
      if (path !== undefined && path !== "" && !secrets.has(path)) say(`${variable} ${path} is not one of its secrets (${[...secrets].join(", ") || "none"})`);
    }
    if (environment.SLAP_TOKEN !== undefined) say("SLAP_TOKEN holds a token in the compose file: give it as a secret file (SLAP_TOKEN_FILE)");

    // depends_on
    const dependsOn = Array.isArray(service.depends_on) ? Object.fromEntries(service.depends_on.map((d) => [d, {}])) : (service.depends_on ?? {});
    for (const [target, condition] of Object.entries(dependsOn)) {
      const other = services[target];
      if (other === undefined) say(`depends_on ${target}: no such service`);
      else if ((condition as { condition?: string }).condition === "service_healthy" && other.healthcheck === undefined) say(`depends_on ${target} (service_healthy): ${target} has no healthcheck`);
    }

    if (isNats(service)) {
      const store = flagValue(command, "-sd", "--store_dir");
      const config = flagValue(command, "-c", "--config");
      if (config === undefined) say("nats-server runs without a configuration (-c): no users, anyone may publish on the log");
      else if (!secrets.has(config)) say(`its configuration ${config} is not one of its secrets (${[...secrets].join(", ") || "none"})`);
      if (!command.includes("-js") && !command.includes("--jetstream")) say("nats-server runs without JetStream (-js)");
      if (store === undefined) say("nats-server has no JetStream store directory (-sd)");
      else if (!mounts.has(store)) say(`the JetStream store ${store} is not on a volume`);
      const monitor = flagValue(command, "-m", "--http_port");
      if (service.healthcheck !== undefined && (monitor === undefined || !testOf(service).includes(`:${monitor}/`))) say(`the healthcheck does not ask the monitoring port (-m ${monitor ?? "missing"})`);
      continue;
    }
    if (entrypoint === undefined) continue; // another image: not ours to check
    if (!entrypoint.some((arg) => arg.endsWith("bin/slap.mjs"))) {
      say(`entrypoint ${JSON.stringify(entrypoint)} does not run bin/slap.mjs`);
      continue;
    }
    const commandName = command[0];
    const slap = context.commands.find((c) => c.name === commandName);
    if (slap === undefined) {
      say(`command ${JSON.stringify(commandName ?? "")} is not a slap command`);
      continue;
    }
    const reads = new Set(slap.env ?? []);
    for (const variable of Object.keys(environment)) if (!reads.has(variable)) say(`environment ${variable}: slap ${slap.name} does not read it (it reads ${[...reads].join(", ")})`);

    const parse = parsers[slap.name];
    if (parse === undefined) continue;
    let config: Record<string, unknown>;
    try {
      const result = parse(command.slice(1), environment);
      if (result === HELP) continue;
      config = result as Record<string, unknown>;
    } catch (error) {
      say(`slap ${slap.name} refuses its configuration: ${error instanceof Error ? error.message : String(error)}`);
      continue;
    }

    // Where it reaches the others: NATS_URL and SLAP_MASTER name a service and the port it listens on.
    for (const key of ["nats", "master"] as const) {
      const value = config[key];
      if (typeof value !== "string") continue;
      for (const url of value.split(",")) {
        const { hostname, port, protocol } = new URL(url.trim());
        const expected = Number(port === "" ? (protocol === "nats:" ? NATS_CLIENT_PORT : 80) : port);
        const target = listening.get(hostname);
        if (services[hostname] === undefined) say(`${key} ${url}: ${hostname} is not a service`);
        else if (target === undefined) say(`${key} ${url}: ${hostname} listens on no port`);
        else if (target !== expected) say(`${key} ${url}: ${hostname} listens on ${target}`);
      }
    }

    if (slap.name === "master") {
      const port = Number(config.port);
      const host = String(config.host);
      if (host === "127.0.0.1" || host === "localhost") say(`listens on ${host}: unreachable from the other containers (HOST=0.0.0.0)`);
      for (const published of service.ports ?? []) {
        const containerPort = Number(String(published).split(":").at(-1)?.split("/")[0]);
        if (containerPort !== port) say(`ports ${published}: the master listens on ${port}`);
        // Tokens travel in clear over plain HTTP: beyond the host, only behind a TLS proxy.
        if (!String(published).startsWith("127.0.0.1:")) say(`ports ${published}: publish on the host's loopback only (127.0.0.1:…): the API is plain HTTP, its tokens would cross the network in clear (put a TLS proxy in front)`);
      }
      if (service.healthcheck !== undefined && !testOf(service).includes(`:${port}/healthz`)) say(`the healthcheck does not ask :${port}/healthz`);
    } else if ((service.ports ?? []).length > 0) {
      say(`publishes ports ${JSON.stringify(service.ports)} but slap ${slap.name} listens on none`);
    }
    if (slap.name === "allocator" && config.nats !== undefined && !mounts.has(String(config.data))) say(`its checkpoints (${String(config.data)}) are not on a volume`);
    const envFiles = typeof service.env_file === "string" ? [service.env_file] : (service.env_file ?? []);
    if (slap.name === "node") {
      if (envFiles.length > 0) say("has an env_file: a node needs no NATS credentials (it talks to the master only, over HTTP)");
    } else if (isNatsAuthenticated && envFiles.length === 0) say("no env_file with its NATS credentials (NATS_USER, NATS_PASSWORD): nats-server requires a user");
    if (slap.name === "master" && config.tokens === undefined) say(`no SLAP_TOKENS: it would create its token file in ${String(config.data)}, inside the container`);
    if (slap.name === "node") {
      if (!mounts.has(String(config.root))) say(`its root ${String(config.root)} is not on a volume`);
      const address = config.address as string | undefined;
      if (address !== undefined && !addresses.has(address)) say(`SLAP_ADDRESS ${address} is not its address on a network (${[...addresses].join(", ") || "none fixed"})`);
    }
  }

  // Names that must differ between services.
  for (const [what, variable, command] of [
    ["computer id", "SLAP_COMPUTER", "node"],
    ["allocator replica", "ALLOCATOR_REPLICA", "allocator"],
  ] as const) {
    const seen = new Map<string, string>();
    for (const [name, service] of Object.entries(services)) {
      if (argvOf(service.command)[0] !== command) continue;
      const value = environmentOf(service)[variable] ?? "";
      const other = seen.get(value);
      if (other !== undefined) problems.push(`${name}: ${what} ${JSON.stringify(value)} is also ${other}'s`);
      seen.set(value, name);
    }
  }
  return problems;
}

function environmentOf(service: Service): Record<string, string> {
  return Object.fromEntries(Object.entries(service.environment ?? {}).map(([k, v]) => [k, v === null ? "" : String(v)]));
}

function argvOf(value: string | string[] | undefined): string[] {
  if (value === undefined) return [];
  return typeof value === "string" ? value.split(/\s+/).filter((a) => a !== "") : value;
}

function isNats(service: Service): boolean {
  return service.image?.startsWith("nats:") === true || service.image?.startsWith("nats@") === true || service.image === "nats";
}

function flagValue(argv: readonly string[], ...names: string[]): string | undefined {
  const at = argv.findIndex((arg) => names.includes(arg));
  return at < 0 ? undefined : argv[at + 1];
}

function testOf(service: Service): string {
  const test = service.healthcheck?.test ?? "";
  return typeof test === "string" ? test : test.join(" ");
}

/** The Dockerfile's ENTRYPOINT in exec form (`["node", "bin/slap.mjs"]`); the last one counts. */
export function entrypointOf(dockerfile: string): string[] {
  const lines = dockerfile.split("\n").filter((line) => /^\s*ENTRYPOINT\s/i.test(line));
  const last = lines.at(-1);
  if (last === undefined) return [];
  const body = last.replace(/^\s*ENTRYPOINT\s+/i, "").trim();
  try {
    const parsed: unknown = JSON.parse(body);
    return Array.isArray(parsed) ? parsed.map(String) : [];
  } catch {
    return argvOf(body);
  }
}

/** The container paths mounted from named volumes (each must be declared) or host paths. */
function mountTargets(service: Service, declared: ReadonlySet<string>, say: (problem: string) => void): Set<string> {
  const targets = new Set<string>();
  for (const volume of service.volumes ?? []) {
    const [source = "", target] = volume.split(":");
    if (target === undefined) continue; // an anonymous volume
    const named = !source.startsWith(".") && !source.startsWith("/") && !source.startsWith("~");
    if (named && !declared.has(source)) say(`volume ${source}: not declared under volumes`);
    targets.add(target);
  }
  return targets;
}

/** Where a service's secrets are mounted (`/run/secrets/<name>` unless a target is given); each must be declared. */
function secretPaths(service: Service, declared: ReadonlySet<string>, say: (problem: string) => void): Set<string> {
  const paths = new Set<string>();
  for (const secret of service.secrets ?? []) {
    const { source, target } = typeof secret === "string" ? { source: secret, target: undefined } : secret;
    if (!declared.has(source)) say(`secret ${source}: not declared under secrets`);
    paths.add(target === undefined ? `/run/secrets/${source}` : target.startsWith("/") ? target : `/run/secrets/${target}`);
  }
  return paths;
}

/** The fixed addresses of a service on its networks (each network must be declared). */
function networkAddresses(service: Service, declared: ReadonlySet<string>, say: (problem: string) => void): Set<string> {
  const addresses = new Set<string>();
  const networks = Array.isArray(service.networks) ? Object.fromEntries(service.networks.map((n) => [n, null])) : (service.networks ?? {});
  for (const [network, settings] of Object.entries(networks)) {
    if (network !== "default" && !declared.has(network)) say(`network ${network}: not declared under networks`);
    if (settings?.ipv4_address !== undefined) addresses.add(settings.ipv4_address);
  }
  return addresses;
}
