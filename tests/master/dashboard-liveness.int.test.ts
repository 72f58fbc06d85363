import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { chromium, type Browser, type Page } from "playwright-core";
import { pino } from "pino";
import { as, callJson, tempDir, testToken, tokenFile } from "@slap/testkit";
import { DASHBOARD_SOURCE, dashboardFiles } from "@slap/dashboard";
import { runMaster, type RunningMaster } from "@slap/master";
import { withAllocator } from "../alongside.fixture.js";

// The dashboard shows a node that stopped answering, in its computer's box and on the cards of
// the instances placed on it. The node here is the test speaking with the node's token: it sends
// heartbeats, then stops.
const CHROMIUM = process.env.CHROMIUM_PATH ?? "/usr/bin/chromium";
const KVDB = "examples/software/kvdb";
const computer = `COMP-DL-${randomBytes(3).toString("hex")}`;
const STALE_AFTER_MS = 3_000;
const SINCE = /^node unresponsive since (\d{4}-\d\d-\d\d )?\d\d:\d\d:\d\d UTC$/;

describe("the dashboard shows an unresponsive node", () => {
  let dir: { path: string; dispose(): Promise<void> };
  let master: RunningMaster | undefined;
  let browser: Browser | undefined;
  let page: Page;
  let heartbeats: NodeJS.Timeout | undefined;
  const heartbeat = () => void call("POST", `/v1/computers/${computer}/heartbeat`, as.node(computer)).catch(() => undefined);
  const call = (method: string, path: string, headers: Record<string, string>, body?: unknown) => callJson(`${master!.url}${path}`, method, headers, body);

  before(async () => {
    dir = await tempDir("slap-dashboard-liveness-");
    const tokens = tokenFile(join(dir.path, "data"), { users: ["demo"], computers: [computer] });
    master = await runMaster(
      { data: join(dir.path, "data"), tokens, port: 0, host: "127.0.0.1", staleAfterMs: STALE_AFTER_MS, logLevel: "silent" },
      { logger: pino({ level: "silent" }), alongside: withAllocator, dashboard: await dashboardFiles() },
    );
    const node = as.node(computer);
    const registered = await call("POST", "/v1/computers", node, { computerId: computer, partitions: [{ partitionId: "slappart0", address: "127.0.0.1", ports: { from: 22_400, to: 22_409 } }] });
    assert.equal(registered.status, 200, JSON.stringify(registered.body));
    assert.equal((await call("POST", `/v1/computers/${computer}/supply`, as.admin(), { releaseUrl: KVDB })).status, 200);
    assert.equal((await call("POST", `/v1/computers/${computer}/software`, node, { releaseUrl: KVDB, status: "available" })).status, 200);
    const requested = await call("POST", "/v1/requests", as.user("demo"), { releaseUrl: KVDB, reference: "db" });
    const id = requested.body.instanceId as string;
    const placed = async () => ((await call("GET", `/v1/instances/${id}`, as.admin())).body.instance as { placement: unknown } | undefined)?.placement ?? null;
    for (const deadline = Date.now() + 15_000; (await placed()) === null; ) {
      assert.ok(Date.now() < deadline, "the instance is placed");
      await new Promise((r) => setTimeout(r, 100));
    }
    heartbeats = setInterval(heartbeat, 300);
    browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args: ["--no-sandbox"] });
    page = await browser.newPage({ viewport: { width: 1440, height: 1000 } });
    page.setDefaultTimeout(15_000);
  });

  after(async () => {
    clearInterval(heartbeats);
    await browser?.close();
    await master?.stop();
    await dir?.dispose();
  });

  const box = () => page.locator(`[data-computer="${computer}"] [data-role=liveness]`);
  const card = () => page.locator(`li.node[data-reference="db"] > article`);

  it("shows a node heard from as responsive", async () => {
    await page.goto(`${master!.url}/dashboard#token=${testToken.admin}`);
    await page.waitForSelector(`[data-computer="${computer}"] [data-role=liveness][data-state=responsive]`);
    assert.equal(await box().innerText(), "node responsive");
    await page.waitForSelector(`li.node[data-reference="db"]`);
    assert.equal(await card().locator("[data-role=node-liveness]").count(), 0);
  });

  it("shows \"node unresponsive since …\" on the computer and its instance's card once the node is silent, without a reload", async () => {
    await page.evaluate("window.sameDocument = true");
    clearInterval(heartbeats);
    await page.waitForSelector(`[data-computer="${computer}"] [data-role=liveness][data-state=unresponsive]`);
    assert.match(await box().innerText(), SINCE);
    await page.waitForSelector(`li.node[data-reference="db"] > article [data-role=node-liveness][data-state=unresponsive]`);
    assert.match(await card().locator("[data-role=node-liveness] .unresponsive").innerText(), SINCE);
    assert.equal(await card().locator("[data-role=node-badge]").innerText(), "node unresponsive");
    assert.equal(await page.evaluate("window.sameDocument"), true, "the page was not reloaded");
  });

  it("shows it responsive again after its next heartbeat", async () => {
    assert.equal((await call("POST", `/v1/computers/${computer}/heartbeat`, as.node(computer))).status, 200);
    heartbeats = setInterval(heartbeat, 300);
    await page.waitForSelector(`[data-computer="${computer}"] [data-role=liveness][data-state=responsive]`);
    await page.waitForFunction(`document.querySelectorAll('li.node[data-reference="db"] > article [data-role=node-liveness]').length === 0`);
    assert.equal(await card().locator("[data-role=node-badge]").count(), 0);
  });

  it("writes what it shows as text, never as HTML", async () => {
    const source = await readFile(DASHBOARD_SOURCE, "utf8");
    assert.doesNotMatch(source, /innerHTML|outerHTML|insertAdjacentHTML|document\.write/);
  });
});
