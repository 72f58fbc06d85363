/**
 * The CLI's contract, end to end as a process: `node bin/slap.mjs …` against a fake master
 * (node:http, canned API.md answers). The master itself is tested by its own integration tests.
 */
import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { mkdirSync, writeFileSync } from "node:fs";
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { tempDir } from "@slap/testkit";

const root = fileURLToPath(new URL("../../../", import.meta.url));
const ADMIN = "slap_admin-token-written-by-the-master";
const ALICE = "token-of-alice-0123456789";

/** Where the CLI looks for the master's admin.token (SLAP_DATA): the test's own, never the repository's ./data. */
let data: Awaited<ReturnType<typeof tempDir>>;
let aliceTokenFile = "";
before(async () => {
  data = await tempDir("slap-cli-int-");
  mkdirSync(join(data.path, "with-admin"));
  writeFileSync(join(data.path, "with-admin", "admin.token"), `${ADMIN}\n`, { mode: 0o600 });
  aliceTokenFile = join(data.path, "alice.token");
  writeFileSync(aliceTokenFile, `${ALICE}\n`, { mode: 0o600 });
});
after(() => data.dispose());
/** SLAP_DATA with the master's admin.token in it. */
const withAdmin = () => ({ SLAP_DATA: join(data.path, "with-admin") });
/** SLAP_DATA without an admin.token: the CLI has no token unless given one. */
const withoutToken = () => ({ SLAP_DATA: join(data.path, "empty") });

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

function slap(args: string[], env: Record<string, string> = {}): Promise<Run> {
  const { SLAP_MASTER: _m, SLAP_TOKEN: _t, SLAP_TOKEN_FILE: _f, SLAP_DATA: _d, ...inherited } = process.env;
  const child = spawn(process.execPath, ["bin/slap.mjs", ...args], { cwd: root, env: { ...inherited, ...withoutToken(), ...env }, stdio: ["ignore", "pipe", "pipe"] });
  let stdout = "";
  let stderr = "";
  child.stdout.setEncoding("utf8").on("data", (chunk: string) => (stdout += chunk));
  child.stderr.setEncoding("utf8").on("data", (chunk: string) => (stderr += chunk));
  return new Promise((resolve, reject) => {
    child.on("error", reject);
    child.on("close", (code) => resolve({ code, stdout, stderr }));
  });
}

const pending = (reason: string) => ({ status: "pending", instanceId: "I1", reference: "db", reason, retryAfterMs: 1000 });
const ready = { status: "ready", instanceId: "I1", reference: "db", connection: { url: "http://10.0.0.1:8080", dsn: "kv://a=b" } };

/**
 * A master that answers pending to the first request and ready afterwards; its watch turns ready
 * after two reasons. Like the real one, it answers 401 to a call without a bearer token.
 */
class FakeMaster {
  requests: Array<{ body: unknown; authorization: string | undefined; wait: string | null }> = [];
  private server: Server = createServer((req, res) => void this.handle(req, res));
  private open = new Set<ServerResponse>();
  url = "";

  async start(): Promise<void> {
    await new Promise<void>((resolve) => this.server.listen(0, "127.0.0.1", resolve));
    this.url = `http://127.0.0.1:${(this.server.address() as { port: number }).port}`;
  }

  async stop(): Promise<void> {
    for (const res of this.open) res.destroy();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? "/", this.url);
    let text = "";
    for await (const chunk of req) text += String(chunk);
    const send = (status: number, body: unknown): void => {
      res.writeHead(status, { "content-type": "application/json" }).end(JSON.stringify(body));
    };
    const authorization = req.headers.authorization;
    if (authorization === undefined || !authorization.startsWith("Bearer ")) {
      return send(401, { error: { code: "Unauthorized", message: "missing credentials: send the header Authorization: Bearer <token>" } });
    }
    if (req.method === "POST" && url.pathname === "/v1/requests") {
      this.requests.push({ body: JSON.parse(text) as unknown, authorization, wait: url.searchParams.get("wait") });
      const { reference } = JSON.parse(text) as { reference: string };
      if (reference === "stuck") return send(202, { ...pending("stuck"), instanceId: "STUCK", reference });
      const body = this.requests.filter((r) => (r.body as { reference: string }).reference === reference).length === 1 ? pending("no computer has rel installed") : ready;
      return send(body.status === "pending" ? 202 : 200, body);
    }
    if (req.method === "GET" && url.pathname === "/v1/instances/I1/watch") {
      this.open.add(res);
      res.on("close", () => this.open.delete(res));
      res.writeHead(200, { "content-type": "text/event-stream" });
      const answer = (a: unknown): boolean => res.write(`event: answer\ndata: ${JSON.stringify(a)}\n\n`);
      answer(pending("no computer has rel installed"));
      setTimeout(() => answer(pending("allocated to COMP-1/slappart0, waiting for connection parameters")), 100);
      setTimeout(() => answer(ready), 200);
      return;
    }
    if (req.method === "GET" && url.pathname === "/v1/instances/STUCK/watch") {
      this.open.add(res);
      res.on("close", () => this.open.delete(res));
      res.writeHead(200, { "content-type": "text/event-stream" });
      res.write(`event: answer\ndata: ${JSON.stringify({ ...pending("stuck"), instanceId: "STUCK" })}\n\n`);
      return;
    }
    send(404, { error: { code: "NotFound", message: `no route ${req.method} ${url.pathname}` } });
  }
}

describe("slap as a process, against a fake master", () => {
  const master = new FakeMaster();
  before(() => master.start());
  after(() => master.stop());

  it("request --no-wait --json exits 2 with the pending object, then 0 with the connection", async () => {
    master.requests = [];
    const env = { SLAP_MASTER: master.url, ...withAdmin() };
    const first = await slap(["request", "rel", "db", "--param", "a=b=c", "--no-wait", "--json"], env);
    assert.equal(first.code, 2, first.stderr);
    assert.deepEqual(JSON.parse(first.stdout), { status: "pending", instance: "I1", connection: null, reason: "no computer has rel installed", blocked: null });
    assert.equal(first.stderr, "");
    const second = await slap(["request", "rel", "db", "--param", "a=b=c", "--no-wait", "--json"], env);
    assert.equal(second.code, 0, second.stderr);
    assert.deepEqual(JSON.parse(second.stdout), { status: "ready", instance: "I1", connection: ready.connection, reason: null, blocked: null });
    assert.deepEqual(master.requests[0], {
      body: { releaseUrl: "rel", reference: "db", softwareType: "default", parameters: { a: "b=c" }, sla: {}, shared: false, state: "started" },
      authorization: `Bearer ${ADMIN}`,
      wait: null,
    });
  });

  it("request waits on the watch, printing each reason once, then the connection parameters", async () => {
    master.requests = [];
    const run = await slap(["request", "rel", "db", "--token-file", aliceTokenFile], { SLAP_MASTER: master.url, ...withAdmin() });
    assert.equal(run.code, 0, run.stderr);
    assert.equal(run.stdout, "dsn = kv://a=b\nurl = http://10.0.0.1:8080\n");
    assert.equal(
      run.stderr,
      "pending: no computer has rel installed\npending: allocated to COMP-1/slappart0, waiting for connection parameters\nready: db [I1]\n",
    );
    assert.equal(master.requests[0]?.authorization, `Bearer ${ALICE}`, "--token-file wins over the admin.token");
  });

  it("request exits 2 with the last reason when still pending after --timeout", async () => {
    const run = await slap(["request", "rel", "stuck", "--timeout", "1", "--json"], { SLAP_MASTER: master.url, SLAP_TOKEN: ALICE });
    assert.equal(run.code, 2, run.stderr);
    assert.deepEqual(JSON.parse(run.stdout), { status: "pending", instance: "STUCK", connection: null, reason: "stuck", blocked: null });
  });

  it("an unknown route or a rejected request is one line and exit 1", async () => {
    const run = await slap(["show", "nothing"], { SLAP_MASTER: master.url, SLAP_TOKEN: ALICE });
    assert.equal(run.code, 1);
    assert.equal(run.stderr, "slap show: NotFound: no route GET /v1/references/nothing\n");
  });

  it("without a token, the master's 401 is one line saying how to give one, exit 1", async () => {
    const run = await slap(["instances"], { SLAP_MASTER: master.url });
    assert.equal(run.code, 1);
    assert.equal(run.stdout, "");
    assert.equal(
      run.stderr,
      `slap instances: Unauthorized: missing credentials: send the header Authorization: Bearer <token> (the master at ${master.url} refused it; give your token with SLAP_TOKEN, --token-file or SLAP_TOKEN_FILE, and --master or SLAP_MASTER for another master)\n`,
    );
  });

  it("an unreadable --token-file is a usage error naming it, exit 64", async () => {
    const missing = join(data.path, "missing.token");
    const run = await slap(["instances", "--token-file", missing], { SLAP_MASTER: master.url });
    assert.equal(run.code, 64);
    assert.equal(run.stderr, `slap instances: --token-file: cannot read "${missing}": ENOENT (see slap instances --help)\n`);
  });

  it("a master that cannot be reached is one line and exit 1", async () => {
    const gone = new FakeMaster();
    await gone.start();
    const url = gone.url;
    await gone.stop();
    const run = await slap(["request", "rel", "db", "--no-wait", "--json"], { SLAP_MASTER: url });
    assert.equal(run.code, 1);
    assert.equal(run.stdout, "");
    assert.equal(run.stderr, `slap request: cannot reach the master at ${url} (is it running? slap master)\n`);
  });

  it("a usage error is one line naming the argument, exit 64 (not 2: still pending), and --help exits 0", async () => {
    const bad = await slap(["request", "rel", "db", "--param", "debug"]);
    assert.equal(bad.code, 64);
    assert.equal(bad.stderr, 'slap request: --param "debug": expected key=value (see slap request --help)\n');
    const help = await slap(["request", "--help"]);
    assert.equal(help.code, 0);
    assert.match(help.stdout, /^usage: slap request <release> <reference>/);
  });
});
