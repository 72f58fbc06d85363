// The runner of a JS profile (DESIGN.md, "Profile processes"): `node profile-runner.mjs <profile.mjs>`
// runs one processing; `node profile-runner.mjs --serve` is a warm host that runs many, one at a time.
// The node spawns it as the partition's user, writes the processing's input as JSON on stdin, and
// reads one JSON answer on stdout. It gives the module's default export the `slap` object of the
// instance profile API, whose calls only collect declarations: the node checks and applies them
// once this process has answered. Plain JS with no dependency, so it starts fast.
import { randomBytes } from "node:crypto";
import { readFile } from "node:fs/promises";
import { createInterface } from "node:readline";
import { isAbsolute, join, normalize, relative, sep } from "node:path";
import { pathToFileURL } from "node:url";

class Waiting extends Error {
  name = "Waiting";
  constructor(reference, reason) {
    super(`waiting for ${reference}: ${reason}`);
    this.reference = reference;
    this.reason = reason;
  }
}

/** The same check as the node's `insidePartition` (core/paths.ts); the node checks again. */
function inside(root, path) {
  const escape = () => new Error(`path ${JSON.stringify(path)} escapes the partition: use a relative path inside it`);
  if (typeof path !== "string" || path === "" || isAbsolute(path) || path.includes("\0")) throw escape();
  const normalized = normalize(path);
  if (normalized === ".." || normalized.startsWith(`..${sep}`) || normalized.split(/[\\/]/).includes("..")) throw escape();
  const full = join(root, normalized);
  const back = relative(root, full);
  if (back === "" || back.startsWith("..") || isAbsolute(back)) throw escape();
  return { full, relative: back };
}

const NAME = /^[A-Za-z0-9_.-]{1,128}$/;
function checkName(kind, name) {
  if (typeof name !== "string" || !NAME.test(name) || name.startsWith(".")) throw new Error(`invalid ${kind} name ${JSON.stringify(name)}: use 1-128 characters of A-Z, a-z, 0-9, _, . or -`);
}
function checkDeclaration(kind, name, d) {
  checkName(kind, name);
  if (!Array.isArray(d?.command) || d.command.length === 0 || !d.command.every((a) => typeof a === "string")) {
    throw new Error(`${kind} ${name}: command must be a non-empty argv array of strings (never a shell string)`);
  }
}
const stringMap = (values) => Object.fromEntries(Object.entries(values).map(([k, v]) => [k, String(v)]));

/** A logger with pino's methods, writing JSON lines on stderr (the node logs them). */
function logger(bindings) {
  const line = (level) => (first, msg) => {
    const fields = typeof first === "object" && first !== null ? first : {};
    const message = typeof first === "string" ? first : msg;
    process.stderr.write(`${JSON.stringify({ level, ...bindings, ...fields, ...(message === undefined ? {} : { msg: String(message) }) })}\n`);
  };
  return { trace: line("trace"), debug: line("debug"), info: line("info"), warn: line("warn"), error: line("error"), fatal: line("fatal"), child: (more) => logger({ ...bindings, ...more }) };
}

async function readInput() {
  const chunks = [];
  for await (const chunk of process.stdin) chunks.push(chunk);
  return JSON.parse(Buffer.concat(chunks).toString("utf8"));
}

function createSlap(input) {
  const root = input.partition.path;
  const answer = { files: [], services: {}, runs: {}, promises: {}, requests: [], publishShared: {} };
  /** What this run declared to write, by relative path: read back by `once` and `write`. */
  const written = new Map();
  const declare = (path, content, options) => {
    const { full, relative: rel } = inside(root, path);
    const bytes = typeof content === "string" ? Buffer.from(content) : Buffer.from(content);
    const text = typeof content === "string";
    answer.files = answer.files.filter((f) => f.path !== rel);
    answer.files.push({ path: rel, content: text ? content : bytes.toString("base64"), encoding: text ? "utf8" : "base64", ...(options.mode === undefined ? {} : { mode: options.mode }), once: options.once === true });
    written.set(rel, bytes);
    return full;
  };
  const once = async (path, create, mode) => {
    const { full, relative: rel } = inside(root, path);
    const pending = written.get(rel);
    if (pending !== undefined) return pending.toString("utf8");
    const existing = await readFile(full, "utf8").catch((error) => {
      if (error.code === "ENOENT") return undefined;
      throw error;
    });
    if (existing !== undefined) return existing;
    const content = await create();
    declare(path, content, { mode, once: true });
    return typeof content === "string" ? content : Buffer.from(content).toString("utf8");
  };
  const slap = {
    parameters: Object.freeze({ ...input.parameters }),
    instance: input.instance,
    partition: input.partition,
    software: input.software,
    sharedInstances: input.sharedInstances,
    destroying: input.destroying,
    log: logger({ instanceId: input.instance.instanceId, partitionId: input.partition.partitionId }),
    async write(path, content, options = {}) {
      return declare(path, content, options);
    },
    async render(template, path, values) {
      const text = await readFile(inside(input.software, template).full, "utf8");
      const rendered = text.replace(/\{\{\s*([A-Za-z0-9_.-]+)\s*\}\}/g, (match, name) => {
        const value = values[name];
        if (value === undefined) throw new Error(`template ${template}: no value for {{${name}}}`);
        return String(value);
      });
      return declare(path, rendered, {});
    },
    once: (path, create) => once(path, create),
    async secret(name, options = {}) {
      checkName("secret", name);
      const length = options.length ?? 24;
      return once(join("etc", "secrets", name), () => randomBytes(length).toString("base64url").slice(0, length), 0o600);
    },
    service(name, declaration) {
      checkDeclaration("service", name, declaration);
      answer.services[name] = declaration;
    },
    run(name, declaration) {
      checkDeclaration("run", name, declaration);
      answer.runs[name] = declaration;
    },
    promise(name, check) {
      checkName("promise", name);
      answer.promises[name] = check;
    },
    async request(releaseUrl, reference, options = {}) {
      answer.requests = answer.requests.filter((r) => r.reference !== reference);
      const picked = Object.fromEntries(["parameters", "softwareType", "sla", "shared", "state"].filter((k) => options[k] !== undefined).map((k) => [k, options[k]]));
      answer.requests.push({ releaseUrl, reference, ...picked });
      const known = Object.hasOwn(input.requests, reference) ? input.requests[reference] : undefined;
      if (known?.status === "ready") return known.connection;
      if (known?.status === "destroyed") return {};
      throw new Waiting(reference, known?.reason ?? "requested");
    },
    publish(parameters) {
      answer.publish = { ...answer.publish, ...stringMap(parameters) };
    },
    publishShared(instanceId, parameters) {
      if (!input.sharedInstances.some((s) => s.instanceId === instanceId)) throw new Error(`${instanceId} is not a shared instance attached to this instance`);
      answer.publishShared[instanceId] = { ...answer.publishShared[instanceId], ...stringMap(parameters) };
    },
  };
  return { slap, answer };
}

/**
 * Runs the profile module at `profilePath` once with `input`: its answer (declarations, a waiting
 * request, or an error) and whether it succeeded. `fresh`: the module is evaluated again (a warm
 * host runs one profile many times; what it imports is evaluated once per host).
 */
async function runProfile(profilePath, input, fresh) {
  const { slap, answer } = createSlap(input);
  try {
    const url = pathToFileURL(profilePath).href;
    const module = await import(fresh === undefined ? url : `${url}?run=${fresh}`);
    if (typeof module.default !== "function") throw new Error(`profile ${profilePath} has no default export function`);
    await module.default(slap);
    return { answer, ok: true };
  } catch (error) {
    if (error instanceof Waiting) return { answer: { requests: answer.requests, waiting: { reference: error.reference, reason: error.reason } }, ok: true };
    return { answer: { error: error instanceof Error ? error.message : String(error) }, ok: false };
  }
}

const reply = (answer, code) => process.stdout.write(`${JSON.stringify(answer)}\n`, () => process.exit(code));

/**
 * `--serve`: a warm host (DESIGN.md, "Warm profile hosts"). One request per line on stdin,
 * `{"profile": "<profile.mjs>", "input": {…}}`, taken one at a time; one answer per line on
 * stdout. A line that is not such a request ends the host (the node never sends one).
 */
async function serve() {
  // As below: a profile awaiting what never settles hangs until the node's timeout.
  setInterval(() => {}, 2 ** 30);
  let runs = 0;
  for await (const line of createInterface({ input: process.stdin, crlfDelay: Infinity })) {
    let request;
    try {
      request = JSON.parse(line);
      if (typeof request?.profile !== "string" || typeof request.input !== "object" || request.input === null) throw new Error("not a request");
    } catch (error) {
      return reply({ error: `profile host: bad request: ${error.message}` }, 1);
    }
    const { answer } = await runProfile(request.profile, request.input, ++runs);
    await new Promise((done) => process.stdout.write(`${JSON.stringify(answer)}\n`, done));
  }
}

if (process.argv[2] === "--serve") await serve();
else {
  let input;
  try {
    input = await readInput();
  } catch (error) {
    reply({ error: `profile runner: bad input: ${error.message}` }, 1);
  }
  if (input !== undefined) {
    // A profile awaiting what never settles (a top-level await included) must hang until the node's
    // timeout, not end this process with Node's "unsettled top-level await" exit.
    setInterval(() => {}, 2 ** 30);
    const { answer, ok } = await runProfile(process.argv[2], input, undefined);
    reply(answer, ok ? 0 : 1);
  }
}
