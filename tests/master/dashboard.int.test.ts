import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { chmod, copyFile, mkdir } from "node:fs/promises";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { after, before, describe, it } from "node:test";
import { chromium, type Browser, type Page } from "playwright-core";
import { pino } from "pino";
import { EVENT_TYPES } from "@slap/events";
import { removePartitionUsers, runNode, type RunningNode } from "@slap/node";
import { as, callJson, freePortBlock, tempDir, testToken, tokenFile } from "@slap/testkit";
import { dashboardFiles } from "@slap/dashboard";
import { runMaster, type RunningMaster } from "@slap/master";
import { withAllocator } from "../alongside.fixture.js";

/** The repository root: the node resolves the example releases' relative URLs from it. */
const REPO = fileURLToPath(new URL("../../", import.meta.url));
const CHROMIUM = process.env.CHROMIUM_PATH ?? "/usr/bin/chromium";
const KVDB = "examples/software/kvdb";
const WEBAPP = "examples/software/webapp";
// Unique: as root the node makes one unix user per partition, named from the computer id (removed in after()).
const computer = `COMP-DB-${randomBytes(3).toString("hex")}`;
const PARTITIONS = 4;
const demo = as.user("demo");

/** Asks until the answer is ready (or 30 s pass), with long polls, as `slap request` does. */
async function requestReady(masterUrl: string, body: Record<string, unknown>): Promise<Record<string, unknown>> {
  let answer: Record<string, unknown> = { status: "pending" };
  const deadline = Date.now() + 30_000;
  while (answer.status !== "ready" && Date.now() < deadline) {
    answer = (await callJson(`${masterUrl}/v1/requests?wait=5000`, "POST", demo, body)).body;
  }
  assert.equal(answer.status, "ready", JSON.stringify(answer));
  return answer;
}

/** The instance node of `reference` in the graph, once it shows `status`. */
const nodeOf = (reference: string, status = "started"): string => `li.node[data-reference="${reference}"][data-status="${status}"]`;

describe("the live dashboard, in headless Chromium, over a real deployment (master, allocator, node, webapp + kvdb)", () => {
  let dir: { path: string; dispose(): Promise<void> };
  let master: RunningMaster | undefined;
  let node: RunningNode | undefined;
  let browser: Browser | undefined;
  let page: Page;
  const logger = pino({ level: "silent" });

  before(async () => {
    dir = await tempDir("slap-dashboard-");
    // mkdtemp makes it 0700; the partitions' unix users (when root) must traverse it.
    await chmod(dir.path, 0o755);
    const tokens = tokenFile(join(dir.path, "data"), { users: ["demo", "eve"], computers: [computer] });
    master = await runMaster({ data: join(dir.path, "data"), tokens, port: 0, host: "127.0.0.1", logLevel: "silent" }, { logger, alongside: withAllocator, dashboard: await dashboardFiles() });
    node = await runNode(
      { master: master.url, token: testToken.node(computer), computer, partitions: PARTITIONS, root: join(dir.path, "srv"), portBase: await freePortBlock(PARTITIONS * 100), logLevel: "silent" },
      { logger, handleSignals: false },
    );
    for (const releaseUrl of [KVDB, WEBAPP]) {
      const supplied = await callJson(`${master.url}/v1/computers/${computer}/supply`, "POST", as.admin(), { releaseUrl });
      assert.equal(supplied.status, 200, JSON.stringify(supplied.body));
    }
    await requestReady(master.url, { releaseUrl: WEBAPP, reference: "my-webapp" });
    browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args: ["--no-sandbox"] });
    page = await browser.newPage({ viewport: { width: 1440, height: 1000 } });
    page.setDefaultTimeout(10_000);
  });

  after(async () => {
    await browser?.close();
    await node?.stop();
    await master?.stop();
    await removePartitionUsers(computer, PARTITIONS);
    await dir.dispose();
  });

  it("serves the page, its script and its style at / and /dashboard", async () => {
    for (const [path, type] of [
      ["/", "text/html"],
      ["/dashboard", "text/html"],
      ["/dashboard/dashboard.mjs", "text/javascript"],
      ["/dashboard/dashboard.css", "text/css"],
    ] as const) {
      const response = await fetch(`${master!.url}${path}`);
      assert.equal(response.status, 200, path);
      assert.match(response.headers.get("content-type") ?? "", new RegExp(`^${type}`), path);
      assert.ok((await response.text()).length > 100, path);
    }
  });

  it("shows the webapp and, requested by it, its kvdb: both started, placed, with processes, promises and masked secrets", async () => {
    await page.goto(`${master!.url}/dashboard#token=${testToken.admin}`);
    assert.equal(await page.title(), "slap dashboard");
    await page.waitForFunction("!location.hash.includes('token')", undefined, { timeout: 10_000 });
    assert.equal(new URL(page.url()).hash, "", "the token is taken out of the address bar");
    await page.waitForSelector("#user:text-is('admin')");
    const kvdb = `${nodeOf("my-webapp")} ${nodeOf("kvdb")}`;
    await page.waitForSelector(kvdb, { timeout: 10_000 });
    await page.waitForSelector("#live[data-state=live]", { timeout: 10_000 });

    const card = (selector: string) => page.locator(`${selector} > article`);
    for (const selector of [nodeOf("my-webapp"), kvdb]) {
      assert.match(await card(selector).locator("[data-role=placement]").innerText(), new RegExp(`^${computer} / \\S+$`));
      assert.equal(await card(selector).locator(".process[data-state=running]").count(), 1, selector);
      assert.equal(await card(selector).locator(".promise[data-ok=true]").count(), 1, selector);
    }
    assert.equal(await card(kvdb).locator("[data-role=requester]").innerText(), "requested by my-webapp");
    assert.equal(await card(nodeOf("my-webapp")).locator("[data-role=requester]").innerText(), "requested by user demo");
    assert.match(await card(nodeOf("my-webapp")).locator("tr[data-parameter=url] td").innerText(), /^http:\/\//);

    // The kvdb's password: masked on the page, the real one nowhere in it.
    assert.equal(await card(kvdb).locator("tr[data-parameter=password] td").innerText(), "********");
    const secrets = await callJson(`${master!.url}/v1/references/my-webapp?secrets=1`, "GET", demo);
    assert.equal(secrets.status, 200);
    const all = await callJson(`${master!.url}/v1/instances?secrets=1`, "GET", as.admin());
    const password = (all.body.instances as Array<{ reference: string; connection: Record<string, string> | null }>).find((i) => i.reference === "kvdb")?.connection?.password;
    assert.ok(password !== undefined && password.length >= 8);
    assert.equal((await page.content()).includes(password), false, "the kvdb password must not reach the page");

    // Computers: the partitions held, the releases installed.
    const box = page.locator(`[data-computer="${computer}"]`);
    assert.equal(await box.locator(".partition").count(), PARTITIONS);
    assert.equal(await box.locator(".partition.used").count(), 2);
    assert.equal(await box.locator(`li[data-release="${KVDB}"] .badge`).first().innerText(), "available");
  });

  it("updates live when a new instance is requested, without reload: graph, computers and event feed", async () => {
    await page.evaluate("window.sameDocument = true");
    const before = Number(await page.locator("#position").innerText());
    await requestReady(master!.url, { releaseUrl: KVDB, reference: "extra-kvdb" });

    await page.waitForSelector(nodeOf("extra-kvdb"), { timeout: 10_000 });
    await page.waitForSelector(`#feed li[data-type=InstanceRequested]:has-text("extra-kvdb")`, { timeout: 10_000 });
    await page.waitForSelector(`[data-computer="${computer}"] .partition[data-partition].used >> nth=2`, { timeout: 10_000 });
    assert.equal(await page.evaluate("window.sameDocument"), true, "the page was not reloaded");
    assert.ok(Number(await page.locator("#position").innerText()) > before);
    assert.equal(await page.locator(`${nodeOf("extra-kvdb")} > article [data-role=requester]`).innerText(), "requested by user demo");
  });

  it("filters the event feed by type, instance, tree and computer", async () => {
    const attributes = async (selector: string, name: string) => Promise.all((await page.locator(selector).all()).map((l) => l.getAttribute(name)));
    const types = (await attributes("select[name=type] option", "value")).filter(Boolean);
    assert.deepEqual(types.sort(), [...EVENT_TYPES].sort(), "the dashboard lists every event type");
    const shownTypes = () => attributes("#feed li.event", "data-type");

    await page.selectOption("select[name=type]", "PartitionAllocated");
    const allocated = await shownTypes();
    assert.equal(allocated.length, 3, JSON.stringify(allocated));
    assert.ok(allocated.every((t) => t === "PartitionAllocated"));

    const extra = (await callJson(`${master!.url}/v1/references/extra-kvdb`, "GET", demo)).body as { instance: { instanceId: string } };
    await page.selectOption("select[name=instance]", extra.instance.instanceId);
    assert.equal(await page.locator("#feed li.event").count(), 1);
    await page.selectOption("select[name=type]", "");
    const aboutExtra = await page.locator("#feed li.event .summary").allInnerTexts();
    assert.ok(aboutExtra.length >= 4 && aboutExtra.every((s) => s.includes("extra-kvdb")), JSON.stringify(aboutExtra));

    await page.selectOption("select[name=instance]", "");
    const webapp = (await callJson(`${master!.url}/v1/references/my-webapp`, "GET", demo)).body as { instance: { treeId: string } };
    await page.selectOption("select[name=tree]", webapp.instance.treeId);
    const inTree = await page.locator("#feed li.event .summary").allInnerTexts();
    assert.ok(inTree.some((s) => s.startsWith("kvdb")) && inTree.some((s) => s.startsWith("my-webapp")), JSON.stringify(inTree));
    assert.ok(!inTree.some((s) => s.includes("extra-kvdb")), JSON.stringify(inTree));

    await page.selectOption("select[name=tree]", "");
    await page.selectOption("select[name=computer]", computer);
    assert.ok((await shownTypes()).includes("ComputerRegistered"));
    await page.selectOption("select[name=computer]", "");
  });

  it("asks for a token when it has none or the master refuses it, and shows a user only their own trees", async () => {
    const context = await browser!.newContext();
    try {
      const other = await context.newPage();
      await other.goto(`${master!.url}/dashboard`);
      await other.waitForSelector("#sign-in:has-text('No token')");
      assert.equal(await other.locator("li.node").count(), 0);

      await other.fill("#sign-in input[name=token]", "slap_not-a-token-anyone-has");
      await other.click("#sign-in button");
      await other.waitForSelector("#sign-in:has-text('refused')");

      await other.fill("#sign-in input[name=token]", testToken.user("eve"));
      await other.click("#sign-in button");
      await other.waitForSelector("#user:text-is('eve')");
      await other.waitForSelector("#live[data-state=live]");
      assert.equal(await other.locator("li.node").count(), 0, "eve sees none of demo's instances");

      await other.evaluate(`sessionStorage.setItem("slap-token", ${JSON.stringify(testToken.user("demo"))})`);
      await other.reload();
      await other.waitForSelector("#user:text-is('demo')");
      await other.waitForSelector(nodeOf("my-webapp"));
    } finally {
      await context.close();
    }
  });

  it("saves a screenshot", async (t) => {
    const shot = join(dir.path, "dashboard.png");
    await page.screenshot({ path: shot, fullPage: true });
    const kept = join(REPO, "test-results", "dashboard.png");
    await mkdir(join(REPO, "test-results"), { recursive: true });
    await copyFile(shot, kept);
    t.diagnostic(`screenshot: ${kept}`);
  });
});
