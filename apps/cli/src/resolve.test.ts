import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { tempDir } from "@slap/testkit";
import { findInstance, pathOf } from "./resolve.js";
import { filterInstances, parseRequestArgs, readParametersFile } from "./instances.js";
import { main } from "./main.js";
import { HELP } from "./args.js";
import { fakeIo, json, scriptedFetch } from "./io.fixture.js";
import { instanceView, sampleList } from "./views.fixture.js";
import type { InstanceList } from "./client.js";

const idOf = (found: ReturnType<typeof findInstance>): string | string[] | undefined =>
  "instance" in found ? found.instance.instanceId : "ambiguous" in found ? found.ambiguous.map((i) => i.instanceId).sort() : undefined;

/** sampleList plus a second tree whose child is also called kvdb, and a root whose reference has a slash. */
function twoTrees(): InstanceList {
  const list = sampleList();
  const blog = instanceView({ instanceId: "BLOG", reference: "blog" });
  const blogDb = instanceView({ instanceId: "BLOGKV", treeId: "BLOG", reference: "kvdb", requester: { kind: "instance", instanceId: "BLOG", treeId: "BLOG" } });
  const slashed = instanceView({ instanceId: "SLASH", reference: "team/site" });
  return { instances: [...list.instances, blog, blogDb, slashed], trees: [...list.trees, { treeId: "BLOG", rootInstanceId: "BLOG", instanceIds: ["BLOG", "BLOGKV"] }] };
}

describe("which instance <instance> names", () => {
  it("an id, a root's reference, a child's reference when it is the only one, a path at any depth", () => {
    const list = sampleList();
    assert.equal(idOf(findInstance(list, "KV")), "KV");
    assert.equal(idOf(findInstance(list, "my webapp")), "WEB");
    assert.equal(idOf(findInstance(list, "kvdb")), "KV", "only one kvdb: the bare reference is enough");
    assert.equal(idOf(findInstance(list, "my webapp/kvdb")), "KV");
    assert.equal(idOf(findInstance(list, "my webapp/frontend")), "FRONT");
    assert.equal(pathOf(list.instances.find((i) => i.instanceId === "KV")!, list), "my webapp/kvdb");
  });

  it("two children of the same name need their path; a root of that name comes first; nothing is none", () => {
    const list = twoTrees();
    assert.deepEqual(idOf(findInstance(list, "kvdb")), ["BLOGKV", "KV"]);
    assert.equal(idOf(findInstance(list, "blog/kvdb")), "BLOGKV");
    assert.equal(idOf(findInstance(list, "team/site")), "SLASH", "a reference with a slash is matched whole");
    assert.deepEqual(findInstance(list, "blog/frontend"), { none: true });
    assert.deepEqual(findInstance(list, "kvdb/blog"), { none: true });
    assert.deepEqual(findInstance(list, "/kvdb"), { none: true });
    const withRootKv = { ...list, instances: [...list.instances, instanceView({ instanceId: "ROOTKV", reference: "kvdb" })] };
    assert.equal(idOf(findInstance(withRootKv, "kvdb")), "ROOTKV");
  });
});

describe("slap instances filters", () => {
  const ids = (list: InstanceList) => list.instances.map((i) => i.instanceId).sort();
  const none = { all: false } as const;
  it("hides destroyed instances unless --all or --status destroyed", () => {
    const list = sampleList();
    list.instances.push(instanceView({ instanceId: "GONE", reference: "gone", destroyed: true }));
    assert.deepEqual(ids(filterInstances(list, none)), ["FRONT", "KV", "SOLO", "WEB"]);
    assert.deepEqual(ids(filterInstances(list, { all: true })), ["FRONT", "GONE", "KV", "SOLO", "WEB"]);
    assert.deepEqual(ids(filterInstances(list, { ...none, status: "destroyed" })), ["GONE"]);
    assert.deepEqual(
      filterInstances(list, none).trees.map((t) => t.treeId),
      ["WEB", "SOLO"],
    );
  });

  it("by status, computer (a shared instance by its host's) and release", () => {
    const list = sampleList();
    list.instances.push(instanceView({ instanceId: "HOST", reference: "host", placement: { computerId: "COMP-2", partitionId: "slappart0" } }));
    assert.deepEqual(ids(filterInstances(list, { ...none, status: "ready" })), ["WEB"]);
    assert.deepEqual(ids(filterInstances(list, { ...none, status: "destroying" })), ["SOLO"]);
    assert.deepEqual(ids(filterInstances(list, { ...none, computer: "COMP-1" })), ["KV", "WEB"]);
    assert.deepEqual(ids(filterInstances(list, { ...none, computer: "COMP-2" })), ["FRONT", "HOST"]);
    assert.deepEqual(ids(filterInstances(list, { ...none, release: "examples/software/webapp" })), ["WEB"]);
    assert.deepEqual(ids(filterInstances(list, { ...none, release: "examples/software/webapp", status: "pending" })), []);
  });

  it("a status that is not a STATUS word is a usage error", async () => {
    const t = fakeIo({ SLAP_TOKEN: "token-of-alice-0123456789", SLAP_DATA: "/nonexistent" });
    assert.equal(await main(["instances", "--status", "running"], t.io), 64);
    assert.match(t.stderr(), /^slap instances: --status: must be one of ready, pending, error, destroying, destroyed/);
  });
});

describe("slap stop, start and destroy", () => {
  it("find a child by its path and change its requested state only: no request, no parameters sent", async () => {
    const list = sampleList();
    const kv = list.instances.find((i) => i.instanceId === "KV")!;
    const pending = { status: "pending", instanceId: "KV", reference: "kvdb", reason: "allocated to COMP-1/slappart1, waiting for connection parameters", retryAfterMs: 1000 };
    const { fetchImpl, calls } = scriptedFetch(
      () => json(200, list),
      () => json(200, { instance: kv, answer: pending, sharedInstances: [] }),
      () => json(202, pending),
    );
    const t = fakeIo({ SLAP_TOKEN: "token-of-alice-0123456789", SLAP_DATA: "/nonexistent" }, { fetch: fetchImpl });
    assert.equal(await main(["stop", "my webapp/kvdb"], t.io), 0, t.stderr());
    assert.deepEqual(
      calls.map((c) => [c.method, c.url.pathname, c.body]),
      [
        ["GET", "/v1/instances", undefined],
        ["GET", "/v1/instances/KV", undefined],
        ["POST", "/v1/instances/KV/state", { state: "stopped" }],
      ],
    );
    assert.equal(t.stdout(), "kvdb [KV]: requested stopped; pending: allocated to COMP-1/slappart1, waiting for connection parameters\n");
  });

  it("an ambiguous reference is refused, naming every candidate by its path, and nothing is changed", async () => {
    const { fetchImpl, calls } = scriptedFetch(
      () => json(404, { error: { code: "NotFound", message: "no instance X" } }),
      () => json(200, twoTrees()),
    );
    const t = fakeIo({ SLAP_TOKEN: "token-of-alice-0123456789", SLAP_DATA: "/nonexistent" }, { fetch: fetchImpl });
    assert.equal(await main(["destroy", "kvdb"], t.io), 1);
    assert.equal(t.stderr(), 'slap destroy: "kvdb" names 2 instances: my webapp/kvdb [KV] (user admin), blog/kvdb [BLOGKV] (user admin); give its path (root/child) or its id\n');
    assert.equal(calls.length, 2);
  });
});

describe("slap request --parameters-file", () => {
  it("reads JSON and YAML objects, values kept as typed; --param and --param-json win", async () => {
    const dir = await tempDir("slap-params-");
    try {
      const jsonFile = join(dir.path, "p.json");
      writeFileSync(jsonFile, JSON.stringify({ title: "Hello", "port-offset": 3, debug: true }));
      assert.deepEqual(readParametersFile(jsonFile), { title: "Hello", "port-offset": 3, debug: true });
      const yamlFile = join(dir.path, "p.yaml");
      writeFileSync(yamlFile, "title: Hello world\nmaxmemory: 64mb\n# a comment\nnote: |\n  two\n  lines\n");
      assert.deepEqual(readParametersFile(yamlFile), { title: "Hello world", maxmemory: "64mb", note: "two\nlines\n" });
      const args = parseRequestArgs(["rel", "ref", "--parameters-file", yamlFile, "--param", "title=Overridden"], {});
      assert.ok(args !== HELP);
      assert.deepEqual(args.body.parameters, { title: "Overridden", maxmemory: "64mb", note: "two\nlines\n" });
      const typed = parseRequestArgs(["rel", "ref", "--parameters-file", jsonFile, "--param-json", "port-offset=4"], {});
      assert.ok(typed !== HELP);
      assert.deepEqual(typed.body.parameters, { title: "Hello", "port-offset": 4, debug: true });

      const nested = join(dir.path, "nested.yaml");
      writeFileSync(nested, "db:\n  host: x\n  ports: [1, 2]\n");
      assert.deepEqual(readParametersFile(nested), { db: { host: "x", ports: [1, 2] } });
      const list = join(dir.path, "list.json");
      writeFileSync(list, "[1, 2]");
      assert.throws(() => readParametersFile(list), { name: "UsageError", message: /must be an object of parameter names to values/ });
      const broken = join(dir.path, "broken.yaml");
      writeFileSync(broken, "a: [unclosed\n");
      assert.throws(() => readParametersFile(broken), { name: "UsageError", message: /not JSON or YAML/ });
      assert.throws(() => readParametersFile(join(dir.path, "missing.json")), { name: "UsageError", message: /cannot read .*: ENOENT/ });
    } finally {
      await dir.dispose();
    }
  });
});
