import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { connect } from "node:net";
import { after, before, describe, it } from "node:test";
import { fileURLToPath } from "node:url";
import { as, captureLogger, freePortBlock } from "@slap/testkit";
import type { RunningMaster } from "@slap/master";
import { startDeployment, type Deployment } from "./deployment.fixture.js";

/** The repository root: the example releases' default URLs are relative to it. */
const REPO = fileURLToPath(new URL("../../", import.meta.url));
const KVDB = "examples/software/kvdb";
const WEBAPP = "examples/software/webapp";
const REDIS = "examples/software/redis";

/** Asks until the answer is ready (or 30 s pass), as `slap request` does, with long polls. */
async function requestReady(masterUrl: string, body: Record<string, unknown>): Promise<{ status: string; connection?: Record<string, string> }> {
  let answer: { status: string; connection?: Record<string, string> } = { status: "pending" };
  const deadline = Date.now() + 30_000;
  while (answer.status !== "ready" && Date.now() < deadline) {
    const response = await fetch(`${masterUrl}/v1/requests?wait=5000`, {
      method: "POST",
      headers: { ...as.user("alice"), "content-type": "application/json" },
      body: JSON.stringify(body),
    });
    answer = (await response.json()) as typeof answer;
  }
  return answer;
}

/** AUTH then PING over RESP: the answers redis gives. */
function redisPing(host: string, port: number, password: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = connect({ host, port }, () => socket.write(`AUTH ${password}\r\nPING\r\n`));
    let seen = "";
    socket.on("data", (chunk: Buffer) => {
      seen += chunk.toString();
      if (seen.split("\r\n").length >= 3) {
        socket.end();
        resolve(seen);
      }
    });
    socket.on("error", reject);
  });
}

describe("the example releases on a real node (webapp requests its kvdb; redis)", () => {
  let deployment: Deployment;
  let master: RunningMaster;
  const { logger } = captureLogger();
  // Unique: as root the node makes one unix user per partition, named from the computer id (removed in after()).
  const computer = `COMP-EX-${randomBytes(4).toString("hex")}`;
  const alice = { ...as.user("alice"), "content-type": "application/json" };

  before(async () => {
    deployment = await startDeployment({ computer, node: { partitions: 3, portBase: await freePortBlock(300), cwd: REPO }, releases: [KVDB, WEBAPP, REDIS], logger });
    master = deployment.master;
  });

  after(() => deployment.stop());

  it("deploys the webapp and its kvdb; the page counts visits in the kvdb", async () => {
    let answer: { status: string; instanceId?: string; connection?: Record<string, string> } = { status: "pending" };
    const deadline = Date.now() + 30_000;
    while (answer.status !== "ready" && Date.now() < deadline) {
      const response = await fetch(`${master.url}/v1/requests?wait=5000`, { method: "POST", headers: alice, body: JSON.stringify({ releaseUrl: WEBAPP, reference: "shop" }) });
      answer = (await response.json()) as typeof answer;
    }
    assert.equal(answer.status, "ready", JSON.stringify(answer));
    const url = answer.connection!.url!;
    const first = await (await fetch(`${url}/`)).text();
    const second = await (await fetch(`${url}/`)).text();
    assert.match(first, /visits = 1/);
    assert.match(second, /visits = 2/);
  });

  it("runs redis-server from PATH in a partition, with its password, answering AUTH and PING", async () => {
    const answer = await requestReady(master.url, { releaseUrl: REDIS, reference: "cache" });
    assert.equal(answer.status, "ready", JSON.stringify(answer));
    const { host, port, password } = answer.connection!;
    assert.ok(host !== undefined && port !== undefined && password !== undefined && password.length >= 16, JSON.stringify(answer.connection));
    assert.equal(await redisPing(host, Number(port), password), "+OK\r\n+PONG\r\n");
    assert.match(await redisPing(host, Number(port), "wrong-password"), /^-(WRONGPASS|ERR)/);
  });

  it("a shared kvdb instance is attached to a running kvdb, which publishes its own credentials", async () => {
    let answer: { status: string; instanceId?: string; connection?: Record<string, string> } = { status: "pending" };
    const deadline = Date.now() + 30_000;
    while (answer.status !== "ready" && Date.now() < deadline) {
      const response = await fetch(`${master.url}/v1/requests?wait=5000`, {
        method: "POST",
        headers: alice,
        body: JSON.stringify({ releaseUrl: KVDB, reference: "tenant", shared: true }),
      });
      answer = (await response.json()) as typeof answer;
    }
    assert.equal(answer.status, "ready", JSON.stringify(answer));
    const { url, password, prefix } = answer.connection!;
    assert.equal(prefix, `${answer.instanceId}/`, "confined by its instance id, unique in the cloud (a reference is unique per user only)");
    const put = await fetch(`${url}/kv/${encodeURIComponent(`${prefix}x`)}`, { method: "PUT", headers: { authorization: `Bearer ${password}` }, body: "1" });
    assert.equal(put.status < 300, true, `PUT answered ${put.status}`);
  });
});
