// A node whose folder is deleted under it (an operator's mistake, a disk replaced): it formats its
// partitions again, installs the release again, and the instance comes back — never staying
// `processing` with no word of why.
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { readdir, rm, stat } from "node:fs/promises";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { fileURLToPath, pathToFileURL } from "node:url";
import { as, callJson, captureLogger, eventually, freePortBlock } from "@slap/testkit";
import { softwareDir } from "@slap/node";
import { startDeployment, type Deployment } from "./deployment.fixture.js";

const PORTS = pathToFileURL(fileURLToPath(new URL("../../services/node/test-releases/ports", import.meta.url))).href;
const { logger } = captureLogger();
const COMPUTER = `COMP-RECOVER-${randomBytes(4).toString("hex")}`;
let deployment: Deployment;

before(async () => {
  const portBase = await freePortBlock(200);
  deployment = await startDeployment({ computer: COMPUTER, node: { partitions: 2, portBase, promiseTimeoutMs: 5_000 }, releases: [PORTS], logger });
});

after(() => deployment.stop());

interface Found {
  partitionId: string | undefined;
  status: { status: string; message: string | null } | null;
}

async function instance(instanceId: string): Promise<Found> {
  const { status, body } = await callJson(`${deployment.master.url}/v1/instances/${instanceId}`, "GET", as.admin());
  assert.equal(status, 200, JSON.stringify(body));
  const found = body.instance as { placement: { partitionId: string } | null; status: Found["status"] };
  return { partitionId: found.placement?.partitionId, status: found.status };
}

describe("a node whose root folder is deleted under it", () => {
  it("formats its partitions and installs the release again; the instance is started again", async () => {
    const { master, root } = deployment;
    const requested = await callJson(`${master.url}/v1/requests`, "POST", as.user("alice"), { releaseUrl: PORTS, reference: "site", parameters: { listen: "own" } });
    assert.ok(requested.status === 200 || requested.status === 202, JSON.stringify(requested.body));
    const instanceId = requested.body.instanceId as string;
    const { partitionId } = await eventually("the site to start", async () => {
      const found = await instance(instanceId);
      return found.status?.status === "started" ? found : undefined;
    }, 30_000);

    const { body: page } = await callJson(`${master.url}/v1/events?limit=10000`, "GET", as.admin());
    const before = page.next as number;
    for (const entry of await readdir(root)) await rm(join(root, entry), { recursive: true, force: true });
    const banged = await callJson(`${master.url}/v1/instances/${instanceId}/bang`, "POST", as.user("alice"), { message: "the node's folder was deleted" });
    assert.equal(banged.status, 200, JSON.stringify(banged.body));

    /** The statuses the node reported for the site since the bang, in order. */
    const reported = async (): Promise<Array<{ status: string; message?: string }>> => {
      const { body } = await callJson(`${master.url}/v1/events?after=${before}&type=InstanceStatusReported&limit=10000`, "GET", as.admin());
      const events = body.events as Array<{ event: { aggregate: { instanceId: string }; data: { status: string; message?: string } } }>;
      return events.filter((e) => e.event.aggregate.instanceId === instanceId).map((e) => e.event.data);
    };
    const statuses = await eventually("the site to be started again", async () => {
      const all = await reported();
      return all.at(-1)?.status === "started" ? all : undefined;
    }, 60_000);
    assert.ok(statuses.some((s) => s.status === "error" && /is missing from this node \(its folder was removed\): installing it again/.test(s.message ?? "")), JSON.stringify(statuses));
    const back = await instance(instanceId);
    assert.equal(back.partitionId, partitionId, "on the same partition");
    assert.ok((await stat(join(root, partitionId!, "etc", "service", "server.json"))).isFile(), "the partition holds its declarations again");
    assert.ok((await stat(join(softwareDir(root, PORTS), ".slap-installed"))).isFile(), "the release is installed again");
    const { body } = await callJson(`${master.url}/v1/computers/${COMPUTER}`, "GET", as.admin());
    const software = (body.computer as { software: Record<string, { status: string }> }).software;
    assert.equal(software[PORTS]?.status, "available");
  });
});
