import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { computersLines } from "./computers.js";
import { eventLine } from "./events.js";
import { forest, keyValueLines, livenessText, mask, StatusLine, table } from "./format.js";
import { instancesLines, readiness, showLines } from "./instances.js";
import { instanceView, sampleComputer, sampleList } from "./views.fixture.js";

describe("formatting", () => {
  it("masks values whose name looks secret and nothing else", () => {
    assert.deepEqual(mask({ password: "p", "api-key": "k", Token: "t", client_secret: "s", url: "u" }), {
      password: "********",
      "api-key": "********",
      Token: "********",
      client_secret: "********",
      url: "u",
    });
    assert.equal(mask(null), null);
  });

  it("prints key = value lines sorted by key", () => {
    assert.deepEqual(keyValueLines({ b: "2", a: "x = y" }, "  "), ["  a = x = y", "  b = 2"]);
  });

  it("pads table columns to the widest cell and trims the last", () => {
    assert.deepEqual(table([["A", "BB", "C"], ["long", "x", ""]]), ["A     BB  C", "long  x"]);
  });

  it("draws a forest: children under their parent, orphans and cycles as roots, each node once", () => {
    const nodes = [
      { id: "c", parentId: "a" },
      { id: "a", parentId: null },
      { id: "d", parentId: "c" },
      { id: "b", parentId: "a" },
      { id: "o", parentId: "missing" },
      { id: "x", parentId: "y" },
      { id: "y", parentId: "x" },
    ];
    assert.deepEqual(
      forest(nodes).map(({ node, prefix }) => prefix + node.id),
      ["a", "├─ c", "│  └─ d", "└─ b", "o", "x", "└─ y"],
    );
  });

  it("rewrites one status line on a terminal and prints each change once elsewhere", () => {
    let tty = "";
    const onTty = new StatusLine({ write: (s: string) => (tty += s), isTTY: true, columns: 30 });
    onTty.update("pending: no computer has it installed");
    onTty.update("pending: no computer has it installed");
    onTty.update("pending: allocated");
    onTty.done();
    assert.equal(tty, "\r\x1b[2Kpending: no computer has it …\r\x1b[2Kpending: allocated\r\x1b[2K");
    let log = "";
    const inLog = new StatusLine({ write: (s: string) => (log += s) });
    for (const reason of ["a", "a", "b", "a"]) inLog.update(reason);
    inLog.done();
    assert.equal(log, "a\nb\na\n");
  });

  it("prints an event as a line or as one JSON object", () => {
    const record = { position: 7, streamKey: "tree.T.instance.I", event: { id: "E", type: "InstanceRequested", time: "2025-01-01T00:00:00Z", correlationId: "C", data: { x: 1 } } };
    assert.equal(eventLine(record, false), "#7 2025-01-01T00:00:00Z InstanceRequested              tree.T.instance.I  correlation=C");
    assert.deepEqual(JSON.parse(eventLine(record, true)), { position: 7, stream: "tree.T.instance.I", id: "E", type: "InstanceRequested", time: "2025-01-01T00:00:00Z", correlationId: "C", data: { x: 1 } });
  });
});

describe("instance views", () => {
  it("lists instances tree by tree, each under its requester", () => {
    assert.deepEqual(instancesLines(sampleList()), [
      "REFERENCE    STATE      RUNS ON                 STATUS      INSTANCE",
      "my webapp    started    COMP-1/slappart0        ready       WEB",
      "├─ kvdb      started    COMP-1/slappart1        pending     KV",
      "└─ frontend  started    shared, hosted by HOST  pending     FRONT",
      "solo         destroyed  not placed              destroying  SOLO",
    ]);
    assert.deepEqual(instancesLines({ instances: [], trees: [] }), ["no instances"]);
  });

  it("tells ready, pending, error, destroying and destroyed apart", () => {
    const base = { instanceId: "I", reference: "r" };
    assert.equal(readiness(instanceView({ ...base, connection: {} })), "ready");
    assert.equal(readiness(instanceView(base)), "pending");
    assert.equal(
      readiness(instanceView({ ...base, status: { status: "error", message: "x", waitingFor: [], promises: [], processes: [], computerId: "C", partitionId: "P", at: "t" } })),
      "error",
    );
    assert.equal(readiness(instanceView({ ...base, requestedState: "destroyed" })), "destroying");
    assert.equal(readiness(instanceView({ ...base, requestedState: "destroyed", destroyed: true })), "destroyed");
  });

  it("shows one instance with masked secrets, failing promises, requester and its tree", () => {
    const list = sampleList();
    const kv = instanceView({
      ...list.instances[0]!,
      connection: { host: "10.0.0.2", password: "s3cret" },
      status: {
        status: "started",
        message: null,
        waitingFor: [],
        promises: [
          { name: "port-open", ok: true, message: "" },
          { name: "disk", ok: false, message: "95% full" },
        ],
        processes: [{ name: "kvdb", state: "running" }],
        computerId: "COMP-1",
        partitionId: "slappart1",
        at: "2025-01-01T00:00:02Z",
      },
    });
    const text = showLines(kv, { status: "ready", instanceId: "KV", reference: "kvdb", connection: {} }, [], list, false).join("\n");
    assert.match(text, /^kvdb {2}\[KV\]\n/);
    assert.match(text, /runs on +COMP-1\/slappart1/);
    assert.match(text, /promises +1 ok, 1 failing\n +✗ disk: 95% full/);
    assert.match(text, /requester +instance my webapp \[WEB\]/);
    assert.match(text, /connection:\n {2}host = 10\.0\.0\.2\n {2}password = \*{8}/);
    assert.match(text, /tree WEB:\n.*my webapp.*\n.*├─ kvdb.*KV {2}← this one\n.*└─ frontend/);
    assert.match(showLines(kv, { status: "ready", instanceId: "KV", reference: "kvdb", connection: {} }, [], list, true).join("\n"), /password = s3cret/);
  });

  it("says why an instance is pending and that nothing is published yet", () => {
    const solo = instanceView({ instanceId: "SOLO", reference: "solo" });
    const text = showLines(solo, { status: "pending", instanceId: "SOLO", reference: "solo", reason: "no computer has it installed", retryAfterMs: 1000 }, [], { instances: [solo], trees: [] }, false).join("\n");
    assert.match(text, /answer +pending: no computer has it installed/);
    assert.match(text, /connection:\n {2}\(not published yet\)/);
    assert.doesNotMatch(text, /tree /);
  });
});

describe("computer views", () => {
  it("lists partitions in numeric order with what they hold, and releases with their status", () => {
    assert.deepEqual(computersLines([sampleComputer()], sampleList()), [
      "COMP-1 (rack 1): 3 partitions, 1 free, 2 used",
      "  PARTITION   ADDRESS    PORTS        HOLDS",
      "  slappart0   10.0.0.1   10000-10099  my webapp [WEB]",
      "  slappart1   10.0.0.2   10100-10199  kvdb [KV]",
      "  slappart10  10.0.0.11  11000-11099  free",
      "  RELEASE                 SUPPLIED      STATUS",
      "  examples/software/kvdb  yes           available",
      "  examples/software/old   no (removed)  destroyed",
    ]);
    assert.deepEqual(computersLines([]), ["no computers registered"]);
  });
});

describe("liveness views", () => {
  it("says whether a node answers: responsive, unresponsive since it was last heard from, unknown", () => {
    assert.equal(livenessText({ state: "responsive", lastSeen: "2025-01-01T00:00:05.000Z" }), "responsive (last heard 2025-01-01T00:00:05.000Z)");
    assert.equal(livenessText({ state: "unresponsive", lastSeen: "2025-01-01T00:00:05.000Z" }), "unresponsive since 2025-01-01T00:00:05.000Z");
    assert.equal(livenessText({ state: "unresponsive", lastSeen: null }), "unresponsive: not heard from since the master started");
    assert.equal(livenessText({ state: "unknown", lastSeen: null }), "unknown: not heard from yet since the master started");
  });

  it("prints a computer's liveness under its name, and nothing when the view has none (as of a past moment)", () => {
    const silent = { ...sampleComputer(), liveness: { state: "unresponsive", lastSeen: "2025-01-01T00:00:05.000Z" } };
    const lines = computersLines([silent], sampleList());
    assert.deepEqual(lines.slice(0, 3), [
      "COMP-1 (rack 1): 3 partitions, 1 free, 2 used",
      "  node unresponsive since 2025-01-01T00:00:05.000Z",
      "  PARTITION   ADDRESS    PORTS        HOLDS",
    ]);
    assert.equal(computersLines([sampleComputer()], sampleList())[1], "  PARTITION   ADDRESS    PORTS        HOLDS");
  });

  it("shows the liveness of an instance's node in slap show, and marks an unresponsive one in slap instances", () => {
    const list = sampleList();
    const node = { computerId: "COMP-1", state: "unresponsive", lastSeen: "2025-01-01T00:00:05.000Z" };
    const kv = { ...list.instances[0]!, node };
    const text = showLines(kv, { status: "pending", instanceId: "KV", reference: "kvdb", reason: "waiting", retryAfterMs: 1000 }, [], list, false).join("\n");
    assert.match(text, /runs on +COMP-1\/slappart1\n +node +unresponsive since 2025-01-01T00:00:05\.000Z\n/);
    const responsive = showLines({ ...kv, node: { ...node, state: "responsive" } }, { status: "pending", instanceId: "KV", reference: "kvdb", reason: "waiting", retryAfterMs: 1000 }, [], list, false).join("\n");
    assert.match(responsive, /node +responsive \(last heard 2025-01-01T00:00:05\.000Z\)/);
    const listed = instancesLines({ ...list, instances: list.instances.map((i) => (i.instanceId === "KV" ? kv : i)) });
    assert.equal(listed[2], "├─ kvdb      started    COMP-1/slappart1 (node unresponsive)  pending     KV");
    assert.doesNotMatch(showLines(list.instances[0]!, { status: "pending", instanceId: "KV", reference: "kvdb", reason: "waiting", retryAfterMs: 1000 }, [], list, false).join("\n"), /\n +node +(responsive|unresponsive|unknown)/);
  });
});
