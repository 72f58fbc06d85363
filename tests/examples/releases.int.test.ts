// Integration tests of the example releases (kvdb, webapp, redis). The node runtime is tested on
// its own; here each profile runs against a small fake `slap` (a stub of the instance profile API of
// services/node/DESIGN.md) that records declarations and writes into a temporary partition, and
// the declared services are then started for real.
import assert from "node:assert/strict";
import { spawn, type ChildProcess } from "node:child_process";
import { createHash, randomBytes } from "node:crypto";
import { existsSync } from "node:fs";
import { cp, mkdir, mkdtemp, readFile, rm, stat, writeFile } from "node:fs/promises";
import { connect } from "node:net";
import { tmpdir } from "node:os";
import { dirname, isAbsolute, join, relative, resolve } from "node:path";
import { after, before, describe, it } from "node:test";
import { fileURLToPath, pathToFileURL } from "node:url";
import { freePortBlock } from "@slap/testkit";

const here = fileURLToPath(new URL("../../examples/software/", import.meta.url));
const repoRoot = resolve(here, "..", "..");

// ---------------------------------------------------------------------------------------------
// The fake slap

type Params = Record<string, string>;
interface Declared {
  command: string[];
  env?: Record<string, string>;
  cwd?: string;
}
type PromiseSpec = { http: string } | { tcp: { host: string; port: number } } | { command: string[] };
interface RequestCall {
  releaseUrl: string;
  reference: string;
  opts: Record<string, unknown>;
}
interface SharedInstance {
  instanceId: string;
  reference: string;
  parameters: Params;
}
interface Manifest {
  name: string;
  install: string[][];
  profiles: Record<string, string | { command: string[] }>;
  parameters?: { properties?: Record<string, { type: string; default?: string }> };
}

class Waiting extends Error {
  constructor(readonly reference: string) {
    super(`waiting for ${reference}`);
    this.name = "Waiting";
  }
}

interface FakeOptions {
  software: string;
  partition: string;
  port: number;
  parameters?: Params;
  address?: string;
  /** connection parameters returned by slap.request, by reference (absent → Waiting) */
  connections?: Record<string, Params>;
  sharedInstances?: SharedInstance[];
}

class FakeSlap {
  readonly parameters: Params;
  readonly instance: { instanceId: string; treeId: string; reference: string; softwareType: string; releaseUrl: string };
  readonly partition: { computerId: string; partitionId: string; path: string; address: string; ports: { from: number; to: number } };
  readonly software: string;
  readonly sharedInstances: SharedInstance[];
  readonly services = new Map<string, Declared>();
  readonly runs = new Map<string, Declared>();
  readonly promises = new Map<string, PromiseSpec>();
  readonly requests: RequestCall[] = [];
  published: Params | undefined;
  readonly publishedShared = new Map<string, Params>();
  readonly destroying = false;
  readonly log = { info: () => undefined, warn: () => undefined, error: () => undefined, debug: () => undefined };
  private readonly connections: Record<string, Params>;

  constructor(manifest: Manifest, opts: FakeOptions) {
    const params: Params = {};
    for (const [name, prop] of Object.entries(manifest.parameters?.properties ?? {})) {
      if (prop.default !== undefined) params[name] = prop.default;
    }
    for (const [name, value] of Object.entries(opts.parameters ?? {})) if (value !== "") params[name] = value;
    this.parameters = params;
    this.software = opts.software;
    this.partition = {
      computerId: "COMP-test",
      partitionId: "slappart0",
      path: opts.partition,
      address: opts.address ?? "127.0.0.1",
      ports: { from: opts.port, to: opts.port },
    };
    this.instance = { instanceId: `SOFTINST-${manifest.name}`, treeId: "TREE-test", reference: manifest.name, softwareType: "default", releaseUrl: `examples/software/${manifest.name}` };
    this.sharedInstances = opts.sharedInstances ?? [];
    this.connections = opts.connections ?? {};
  }

  private inside(path: string): string {
    if (isAbsolute(path)) throw new Error(`absolute path refused: ${path}`);
    const full = resolve(this.partition.path, path);
    const rel = relative(this.partition.path, full);
    if (rel.startsWith("..") || isAbsolute(rel)) throw new Error(`path escapes the partition: ${path}`);
    return full;
  }

  async write(path: string, content: string | Buffer, opts: { mode?: number } = {}): Promise<void> {
    const full = this.inside(path);
    await mkdir(dirname(full), { recursive: true });
    const current = await readFile(full).catch(() => undefined);
    if (current?.equals(Buffer.from(content))) return;
    await writeFile(full, content, { mode: opts.mode ?? 0o644 });
  }

  async render(template: string, path: string, values: Record<string, unknown>): Promise<void> {
    const text = await readFile(join(this.software, template), "utf8");
    const out = text.replace(/\{\{\s*([A-Za-z0-9_-]+)\s*\}\}/g, (_m, name: string) => {
      if (!(name in values)) throw new Error(`template ${template}: no value for {{${name}}}`);
      return String(values[name]);
    });
    await this.write(path, out);
  }

  async once(path: string, create: () => string | Promise<string>, opts: { mode?: number } = {}): Promise<string> {
    const full = this.inside(path);
    if (existsSync(full)) return readFile(full, "utf8");
    const content = await create();
    await this.write(path, content, opts);
    return content;
  }

  secret(name: string, { length = 24 }: { length?: number } = {}): Promise<string> {
    assert.match(name, /^[A-Za-z0-9_.-]+$/, `secret name ${name}`);
    return this.once(`etc/secrets/${name}`, () => randomBytes(length).toString("base64url").slice(0, length), { mode: 0o600 });
  }

  service(name: string, decl: Declared): void {
    assert.ok(Array.isArray(decl.command) && decl.command.every((a) => typeof a === "string"), "command is an argv array");
    this.services.set(name, decl);
  }

  run(name: string, decl: Declared): void {
    this.runs.set(name, decl);
  }

  promise(name: string, spec: PromiseSpec): void {
    this.promises.set(name, spec);
  }

  request(releaseUrl: string, reference: string, opts: Record<string, unknown> = {}): Params {
    this.requests.push({ releaseUrl, reference, opts });
    const connection = this.connections[reference];
    if (!connection) throw new Waiting(reference);
    return connection;
  }

  publish(parameters: Params): void {
    this.published = parameters;
  }

  publishShared(instanceId: string, parameters: Params): void {
    this.publishedShared.set(instanceId, parameters);
  }
}

// ---------------------------------------------------------------------------------------------
// helpers

const children = new Set<ChildProcess>();
let scratch = "";

/** Installs a release as the node does: a copy under <root>/software/<hash>/, not the repo folder. */
async function install(name: string): Promise<{ software: string; manifest: Manifest }> {
  const url = `examples/software/${name}`;
  const software = join(scratch, "software", createHash("sha256").update(url).digest("hex").slice(0, 16));
  if (!existsSync(software)) await cp(join(here, name), software, { recursive: true });
  const manifest = JSON.parse(await readFile(join(software, "slap-release.json"), "utf8")) as Manifest;
  return { software, manifest };
}

async function deploy(name: string, opts: Omit<FakeOptions, "software">): Promise<FakeSlap> {
  const { software, manifest } = await install(name);
  const slap = new FakeSlap(manifest, { ...opts, software });
  const profile = manifest.profiles["default"];
  assert.ok(typeof profile === "string", `${name}: default profile is a module`);
  const mod = (await import(pathToFileURL(join(software, profile)).href)) as { default: (slap: FakeSlap) => Promise<void> };
  await mod.default(slap);
  return slap;
}

async function partition(name: string): Promise<string> {
  const path = join(scratch, name);
  await mkdir(path, { recursive: true, mode: 0o750 });
  return path;
}

/** Starts a declared service as the node would (argv, env merged over the node's, cwd). */
function start(decl: Declared, partitionPath: string): { child: ChildProcess; output: () => string } {
  const [command, ...args] = decl.command;
  assert.ok(command);
  const child = spawn(command, args, {
    cwd: decl.cwd ?? partitionPath,
    env: { ...process.env, ...decl.env },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let out = "";
  child.stdout?.on("data", (d: Buffer) => (out += d.toString()));
  child.stderr?.on("data", (d: Buffer) => (out += d.toString()));
  children.add(child);
  child.once("exit", () => children.delete(child));
  return { child, output: () => out };
}

async function stop(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise((ok) => child.once("exit", ok));
  child.kill("SIGTERM");
  const timer = setTimeout(() => child.kill("SIGKILL"), 3000);
  await exited;
  clearTimeout(timer);
}

async function waitFor(what: string, check: () => Promise<boolean>, output: () => string, ms = 10_000): Promise<void> {
  const deadline = Date.now() + ms;
  for (;;) {
    if (await check().catch(() => false)) return;
    if (Date.now() > deadline) throw new Error(`${what} not ready after ${ms} ms; output:\n${output()}`);
    await new Promise((ok) => setTimeout(ok, 50));
  }
}

const httpOk = (url: string) => async () => (await fetch(url, { signal: AbortSignal.timeout(1000) })).ok;

/** One raw RESP exchange: sends the commands, resolves with the replies' first lines. */
async function resp(port: number, commands: string[][]): Promise<string[]> {
  return new Promise((ok, fail) => {
    const socket = connect(port, "127.0.0.1");
    let buffer = "";
    const timer = setTimeout(() => {
      socket.destroy();
      fail(new Error(`RESP timeout, got ${JSON.stringify(buffer)}`));
    }, 5000);
    socket.on("error", (e) => {
      clearTimeout(timer);
      fail(e);
    });
    socket.on("data", (d: Buffer) => {
      buffer += d.toString();
      const lines = buffer.split("\r\n").filter((l) => l !== "");
      if (lines.length >= commands.length) {
        clearTimeout(timer);
        socket.end();
        ok(lines.slice(0, commands.length));
      }
    });
    socket.on("connect", () => {
      socket.write(
        commands.map((c) => `*${c.length}\r\n${c.map((a) => `$${Buffer.byteLength(a)}\r\n${a}\r\n`).join("")}`).join(""),
      );
    });
  });
}

before(async () => {
  scratch = await mkdtemp(join(tmpdir(), "slap-releases-"));
});

after(async () => {
  await Promise.all([...children].map((c) => stop(c)));
  await rm(scratch, { recursive: true, force: true });
});

// ---------------------------------------------------------------------------------------------
// manifests and profiles

describe("release manifests", () => {
  for (const name of ["kvdb", "webapp", "redis", "shell-site"]) {
    it(`${name}: slap-release.json is well formed and lists existing files`, async () => {
      const manifest = JSON.parse(await readFile(join(here, name, "slap-release.json"), "utf8")) as Manifest & { files?: string[] };
      assert.equal(manifest.name, name);
      assert.match(manifest.name, /^[A-Za-z0-9_-]{1,64}$/);
      assert.ok(manifest.install.every((step) => Array.isArray(step) && step.every((a) => typeof a === "string")));
      for (const profile of Object.values(manifest.profiles)) {
        if (typeof profile === "string") continue;
        assert.ok(profile.command.length > 0 && profile.command.every((a) => typeof a === "string"), `${name}: a command profile is an argv`);
        assert.ok((await stat(join(here, name, profile.command[0]!))).mode & 0o111, `${name}/${profile.command[0]} is executable`);
      }
      const files = Object.values(manifest.profiles).map((p) => (typeof p === "string" ? p : p.command[0]!));
      for (const file of [...files, ...(manifest.files ?? [])]) {
        assert.ok((await stat(join(here, name, file))).isFile(), `${name}/${file}`);
      }
    });
  }

  it("webapp's default kvdb-url resolves from the repository root to the kvdb release", async () => {
    const manifest = JSON.parse(await readFile(join(here, "webapp", "slap-release.json"), "utf8")) as Manifest;
    const url = manifest.parameters?.properties?.["kvdb-url"]?.default;
    assert.equal(url, "examples/software/kvdb");
    assert.ok(existsSync(join(repoRoot, url, "slap-release.json")));
  });
});

describe("shell-site: a shell-script profile on the profile protocol", () => {
  it("reads the input on stdin and prints its declarations: the page, http.server on the first port, a promise, the URL", async () => {
    const path = await partition("shell-site-profile");
    const input = {
      protocol: 1,
      parameters: { title: "a title" },
      instance: { instanceId: "I1", treeId: "I1", reference: "site", softwareType: "default", releaseUrl: "examples/software/shell-site" },
      partition: { computerId: "C", partitionId: "slappart0", path, address: "127.0.0.1", ports: { from: 20_000, to: 20_004 } },
      software: join(here, "shell-site"),
      sharedInstances: [],
      destroying: false,
      requests: {},
    };
    const child = spawn(join(here, "shell-site", "instance.sh"), [], { cwd: path, stdio: ["pipe", "pipe", "inherit"] });
    child.stdin.end(JSON.stringify(input));
    let out = "";
    child.stdout.on("data", (chunk: Buffer) => (out += chunk.toString()));
    const code = await new Promise<number | null>((done) => child.on("close", done));
    assert.equal(code, 0);
    const answer = JSON.parse(out) as { files: Array<{ path: string; content: string }>; services: Record<string, { command: string[] }>; promises: Record<string, unknown>; publish: Record<string, string> };
    assert.deepEqual(answer.files.map((f) => f.path), ["srv/www/index.html"]);
    assert.match(answer.files[0]!.content, /<h1>a title<\/h1>/);
    assert.deepEqual(answer.services.http!.command.slice(1), ["-m", "http.server", "20000", "--bind", "127.0.0.1", "--directory", `${path}/srv/www`]);
    assert.deepEqual(answer.promises, { page: { http: "http://127.0.0.1:20000/" } });
    assert.deepEqual(answer.publish, { url: "http://127.0.0.1:20000/", title: "a title" });
  });
});

describe("profiles with a fake slap", () => {
  it("kvdb: declares its service and promise, publishes url and password, keeps the password", async () => {
    const path = await partition("kvdb-profile");
    const slap = await deploy("kvdb", { partition: path, port: 20010, address: "10.0.0.5" });
    const config = JSON.parse(await readFile(join(path, "etc/kvdb.json"), "utf8")) as Record<string, unknown>;
    assert.deepEqual(
      { host: config["host"], port: config["port"], dataFile: config["dataFile"], maxKeys: config["maxKeys"] },
      { host: "10.0.0.5", port: 20010, dataFile: join(path, "srv/kvdb/data.json"), maxKeys: 10000 },
    );
    assert.ok(existsSync(join(path, "srv/kvdb")));
    const service = slap.services.get("kvdb");
    assert.deepEqual(service?.command, [process.execPath, join(slap.software, "server.mjs"), join(path, "etc/kvdb.json")]);
    assert.deepEqual(slap.promises.get("http"), { http: "http://10.0.0.5:20010/healthz" });
    const password = slap.published?.["password"];
    assert.ok(password && password.length >= 16);
    assert.equal(config["password"], password);
    assert.deepEqual(slap.published, { url: "http://10.0.0.5:20010", password });
    assert.equal((await stat(join(path, "etc/secrets/password"))).mode & 0o777, 0o600);

    const again = await deploy("kvdb", { partition: path, port: 20010, address: "10.0.0.5" });
    assert.equal(again.published?.["password"], password, "the password is generated once");
    assert.deepEqual(again.services.get("kvdb"), service, "an unchanged deployment declares the same service");
  });

  it("kvdb: publishes a password and key prefix to each shared instance, by its instance id (two users' shared `db` get distinct prefixes)", async () => {
    const path = await partition("kvdb-shared");
    const sharedInstances = [
      { instanceId: "SOFTINST-a", reference: "db", parameters: {} },
      { instanceId: "SOFTINST-b", reference: "db", parameters: {} },
    ];
    const slap = await deploy("kvdb", { partition: path, port: 20011, sharedInstances, parameters: { "max-keys": "5" } });
    const a = slap.publishedShared.get("SOFTINST-a");
    const b = slap.publishedShared.get("SOFTINST-b");
    assert.equal(a?.["prefix"], "SOFTINST-a/");
    assert.equal(b?.["prefix"], "SOFTINST-b/");
    assert.equal(a?.["url"], "http://127.0.0.1:20011");
    assert.ok(a?.["password"] && b?.["password"] && a["password"] !== b["password"]);
    assert.notEqual(a["password"], slap.published?.["password"]);
    const config = JSON.parse(await readFile(join(path, "etc/kvdb.json"), "utf8")) as { maxKeys: number; tenants: unknown[] };
    assert.equal(config.maxKeys, 5);
    assert.equal(config.tenants.length, 2);
    const again = await deploy("kvdb", { partition: path, port: 20011, sharedInstances });
    assert.equal(again.publishedShared.get("SOFTINST-a")?.["password"], a["password"]);
    assert.notDeepEqual(again.services.get("kvdb")?.env, slap.services.get("kvdb")?.env, "a config change changes the declaration");
  });

  it("webapp: waits for its kvdb, then declares its service with the kvdb connection", async () => {
    const path = await partition("webapp-profile");
    await assert.rejects(deploy("webapp", { partition: path, port: 20020 }), (e: Error) => e.name === "Waiting" && /kvdb/.test(e.message));

    const connections = { kvdb: { url: "http://10.0.0.6:20010", password: "s3cret" } };
    const slap = await deploy("webapp", { partition: path, port: 20020, connections });
    assert.equal(slap.requests[0]?.releaseUrl, "examples/software/kvdb");
    assert.equal(slap.requests[0]?.reference, "kvdb");
    const config = JSON.parse(await readFile(join(path, "etc/webapp.json"), "utf8")) as Record<string, unknown>;
    assert.equal(config["kvdbUrl"], "http://10.0.0.6:20010");
    assert.equal(config["kvdbPassword"], "s3cret");
    assert.deepEqual(slap.services.get("webapp")?.command, [process.execPath, join(slap.software, "server.mjs"), join(path, "etc/webapp.json")]);
    assert.deepEqual(slap.promises.get("http"), { http: "http://127.0.0.1:20020/healthz" });
    assert.deepEqual(slap.published, { url: "http://127.0.0.1:20020" });

    const other = await deploy("webapp", { partition: path, port: 20020, connections: { db: connections.kvdb }, parameters: { "kvdb-url": "https://example.org/kvdb/", "kvdb-reference": "db" } });
    assert.deepEqual(other.requests.map((r) => [r.releaseUrl, r.reference]), [["https://example.org/kvdb/", "db"]]);
  });

  it("redis: renders redis.conf, declares redis-server and a tcp promise, publishes a redis URL", async () => {
    const path = await partition("redis-profile");
    const slap = await deploy("redis", { partition: path, port: 20030, parameters: { maxmemory: "32mb" } });
    const conf = await readFile(join(path, "etc/redis.conf"), "utf8");
    const password = slap.published?.["password"];
    assert.ok(password);
    for (const line of ["bind 127.0.0.1", "port 20030", `requirepass "${password}"`, `dir "${join(path, "srv/redis")}"`, "daemonize no", "save 60 1", "appendonly yes", "maxmemory 32mb"]) {
      assert.ok(conf.split("\n").includes(line), `redis.conf has "${line}":\n${conf}`);
    }
    assert.ok(!conf.includes("{{"), "every placeholder is rendered");
    assert.deepEqual(slap.services.get("redis")?.command, ["redis-server", join(path, "etc/redis.conf")]);
    assert.deepEqual(slap.promises.get("tcp"), { tcp: { host: "127.0.0.1", port: 20030 } });
    assert.deepEqual(slap.published, { url: `redis://:${encodeURIComponent(password)}@127.0.0.1:20030`, host: "127.0.0.1", port: "20030", password });
    const again = await deploy("redis", { partition: path, port: 20030, parameters: { maxmemory: "32mb" } });
    assert.equal(again.published?.["password"], password, "the password is generated once");
  });
});

// ---------------------------------------------------------------------------------------------
// the services, running

describe("kvdb and webapp servers", () => {
  let kvdb: FakeSlap;
  let kvdbPath = "";
  let kvdbUrl = "";
  let password = "";
  let running: { child: ChildProcess; output: () => string } | undefined;

  const startKvdb = async () => {
    const decl = kvdb.services.get("kvdb");
    assert.ok(decl);
    running = start(decl, kvdbPath);
    await waitFor("kvdb", httpOk(`${kvdbUrl}/healthz`), running.output);
  };
  const kv = (key: string, init: RequestInit & { password?: string } = {}) =>
    fetch(`${kvdbUrl}/kv/${encodeURIComponent(key)}`, {
      ...init,
      headers: init.password === undefined ? {} : { authorization: `Bearer ${init.password}` },
    });

  before(async () => {
    kvdbPath = await partition("kvdb-live");
    const sharedInstances = [{ instanceId: "SOFTINST-t", reference: "tenant", parameters: {} }];
    kvdb = await deploy("kvdb", { partition: kvdbPath, port: await freePortBlock(1), parameters: { "max-keys": "4" }, sharedInstances });
    kvdbUrl = kvdb.published?.["url"] ?? "";
    password = kvdb.published?.["password"] ?? "";
    await startKvdb();
  });

  after(async () => {
    if (running) await stop(running.child);
  });

  it("kvdb: /healthz needs no auth; /kv needs the bearer password", async () => {
    assert.equal((await fetch(`${kvdbUrl}/healthz`)).status, 200);
    assert.equal((await kv("a")).status, 401);
    assert.equal((await kv("a", { password: "wrong" })).status, 401);
    assert.equal((await kv("a", { method: "PUT", body: "x" })).status, 401);
    assert.equal((await kv("a", { password })).status, 404);
  });

  it("kvdb: PUT then GET, DELETE, max-keys and shared-instance prefixes", async () => {
    assert.equal((await kv("greeting", { method: "PUT", body: "hello, wörld", password })).status, 200);
    const got = await kv("greeting", { password });
    assert.equal(got.status, 200);
    assert.equal(await got.text(), "hello, wörld");
    assert.equal((await kv("gone", { method: "PUT", body: "1", password })).status, 200);
    assert.equal((await kv("gone", { method: "DELETE", password })).status, 200);
    assert.equal((await kv("gone", { password })).status, 404);

    const tenant = kvdb.publishedShared.get("SOFTINST-t");
    assert.ok(tenant?.["password"]);
    assert.equal((await kv("SOFTINST-t/x", { method: "PUT", body: "t", password: tenant["password"] })).status, 200);
    assert.equal((await kv("greeting", { password: tenant["password"] })).status, 403);

    // 2 keys now (greeting, SOFTINST-t/x); max-keys is 4
    assert.equal((await kv("k3", { method: "PUT", body: "3", password })).status, 200);
    assert.equal((await kv("k4", { method: "PUT", body: "4", password })).status, 200);
    assert.equal((await kv("k5", { method: "PUT", body: "5", password })).status, 507);
    assert.equal((await kv("k4", { method: "PUT", body: "4 again", password })).status, 200, "an existing key can be rewritten");
    assert.equal((await kv("k4", { method: "DELETE", password })).status, 200);
    assert.equal((await kv("k3", { method: "DELETE", password })).status, 200);
  });

  it("kvdb: data survives a restart of the process", async () => {
    assert.equal((await kv("durable", { method: "PUT", body: "still here", password })).status, 200);
    assert.ok(running);
    await stop(running.child);
    const data = JSON.parse(await readFile(join(kvdbPath, "srv/kvdb/data.json"), "utf8")) as Record<string, string>;
    assert.equal(data["durable"], "still here");
    await startKvdb();
    assert.equal(await (await kv("durable", { password })).text(), "still here");
    assert.equal(await (await kv("greeting", { password })).text(), "hello, wörld");
  });

  it("webapp: the page shows a visit counter kept in the kvdb", async () => {
    const path = await partition("webapp-live");
    const webapp = await deploy("webapp", { partition: path, port: await freePortBlock(1), connections: { kvdb: { url: kvdbUrl, password } } });
    const decl = webapp.services.get("webapp");
    assert.ok(decl);
    const web = start(decl, path);
    try {
      const url = webapp.published?.["url"] ?? "";
      await waitFor("webapp", httpOk(`${url}/healthz`), web.output);
      const visits: number[] = [];
      for (let i = 0; i < 3; i++) {
        const res = await fetch(`${url}/`);
        assert.equal(res.status, 200);
        const html = await res.text();
        const match = /connected to kvdb at (\S+): visits = (\d+)/.exec(html);
        assert.ok(match, html);
        assert.equal(match[1], kvdbUrl);
        visits.push(Number(match[2]));
      }
      assert.deepEqual(visits, [1, 2, 3]);
      const key = `webapp/${webapp.instance.instanceId}/visits`;
      assert.equal(await (await kv(key, { password })).text(), "3", "the counter lives in the kvdb");
      assert.equal((await fetch(`${url}/nope`)).status, 404);
    } finally {
      await stop(web.child);
    }
  });

  it("webapp: /healthz fails when the kvdb password is wrong", async () => {
    const path = await partition("webapp-badpass");
    const webapp = await deploy("webapp", { partition: path, port: await freePortBlock(1), connections: { kvdb: { url: kvdbUrl, password: "wrong" } } });
    const decl = webapp.services.get("webapp");
    assert.ok(decl);
    const web = start(decl, path);
    try {
      const url = webapp.published?.["url"] ?? "";
      await waitFor("webapp", async () => (await fetch(`${url}/healthz`)).status === 503, web.output);
      assert.equal((await fetch(`${url}/`)).status, 503);
    } finally {
      await stop(web.child);
    }
  });
});

describe("redis server", () => {
  it("redis-server starts from the rendered config and answers AUTH + PING", async () => {
    const which = spawn("redis-server", ["--version"], { stdio: "ignore" });
    const found = await new Promise<boolean>((ok) => {
      which.once("error", () => ok(false));
      which.once("exit", (code) => ok(code === 0));
    });
    assert.ok(found, "redis-server must be on PATH (apt-get install -y redis-server)");

    const path = await partition("redis-live");
    const port = await freePortBlock(1);
    const slap = await deploy("redis", { partition: path, port });
    const decl = slap.services.get("redis");
    assert.ok(decl);
    const password = slap.published?.["password"] ?? "";
    const redis = start(decl, path);
    try {
      await waitFor("redis", async () => (await resp(port, [["PING"]]))[0]?.startsWith("-NOAUTH") ?? false, redis.output);
      assert.match((await resp(port, [["AUTH", "wrong"]]))[0] ?? "", /^-(WRONGPASS|ERR)/);
      assert.deepEqual(await resp(port, [["AUTH", password], ["PING"]]), ["+OK", "+PONG"]);
      assert.deepEqual(await resp(port, [["AUTH", password], ["SET", "k", "v"]]), ["+OK", "+OK"]);
      assert.ok(existsSync(join(path, "srv/redis/appendonlydir")), "the append-only file is in the partition's srv/redis");
    } finally {
      await stop(redis.child);
    }
    assert.equal(redis.child.exitCode ?? 0, 0, redis.output());
  });
});
