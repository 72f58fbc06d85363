/**
 * Path and shell safety end to end (issue 7): a real master, allocator and node over one
 * embedded log. References, software types, parameters and release URLs carry `../`, absolute
 * paths, NUL bytes, shell metacharacters, newlines and very long strings. Each is refused with a
 * 400 naming the field, or accepted and harmless: nothing appears outside the node's root (a
 * sibling folder and the parent folder are compared before and after), installed software is
 * always `<root>/software/<16 hex>`, partition folders keep their names, a canary a shell would
 * create never appears, and the values reach processes as literal argv.
 */
import assert from "node:assert/strict";
import { existsSync } from "node:fs";
import { mkdir, readFile, readdir, stat, writeFile } from "node:fs/promises";
import { join, relative } from "node:path";
import { after, before, describe, it } from "node:test";
import { fileURLToPath, pathToFileURL } from "node:url";
import fc from "fast-check";
import { Allocator } from "@slap/allocator";
import { EmbeddedEventStore } from "@slap/eventstore-embedded";
import { runMaster, type RunningMaster } from "@slap/master";
import { as, callJson, captureLogger, eventually, freePortBlock, tempDir, testToken, tokenFile } from "@slap/testkit";
import { runNode, type RunningNode } from "@slap/node";

const COMPUTER = "COMP-HOSTILE";
const PARTITIONS = 48;
const SRC = fileURLToPath(new URL("../../services/node/src/", import.meta.url));
const SEED = process.env.SLAP_FUZZ_SEED === undefined || process.env.SLAP_FUZZ_SEED === "" ? 7_2026 : Number(process.env.SLAP_FUZZ_SEED);

let base = "";
let root = "";
let canary = "";
let dir: Awaited<ReturnType<typeof tempDir>>;
let logDir: Awaited<ReturnType<typeof tempDir>>;
let store: EmbeddedEventStore;
let master: RunningMaster;
let allocator: Allocator;
let node: RunningNode;
let echo = "";
const { logger } = captureLogger();
const counts = new Map<string, number>();
const count = (surface: string, n = 1): void => void counts.set(surface, (counts.get(surface) ?? 0) + n);

type Headers = Record<string, string>;
const call = (method: string, path: string, headers: Headers, body?: unknown) => callJson(`${master.url}${path}`, method, headers, body);

/** Shell payloads: each would create the canary if anything ran it through a shell. */
const shellPayloads = (file: string): string[] => [`$(touch ${file})`, `\`touch ${file}\``, `; touch ${file}`, `| touch ${file}`, `&& touch ${file}`, `\n touch ${file}`, `> ${file}`];

/** A release whose profile takes everything the requester controls as content and argv, never as a path or a shell line. */
async function writeEchoRelease(folder: string, softwareTypes: readonly string[]): Promise<void> {
  await mkdir(folder, { recursive: true });
  const profiles = Object.fromEntries(["default", ...softwareTypes].map((type) => [type, "profile.mjs"]));
  await writeFile(
    join(folder, "slap-release.json"),
    JSON.stringify({ name: "echo", install: [["node", "-e", "require('fs').writeFileSync('installed.txt', 'ok')"]], profiles }),
  );
  await writeFile(
    join(folder, "profile.mjs"),
    `// Hostile-input test release: what the requester controls is written as content and passed as argv.
export default async function deploy(slap) {
  const { reference, softwareType, releaseUrl } = slap.instance;
  await slap.write("etc/seen.json", JSON.stringify({ reference, softwareType, releaseUrl, parameters: slap.parameters }));
  slap.run("echo", { command: [process.execPath, "-e", "require('fs').writeFileSync('argv.json', JSON.stringify(process.argv.slice(1)))", reference, softwareType, ...Object.values(slap.parameters)] });
  // A parameter used as a path: the profile API must refuse one that leaves the partition.
  if (slap.parameters.file !== undefined) await slap.write(slap.parameters.file, "written by the profile");
  slap.publish({ ok: "yes" });
}
`,
  );
}

/** Every entry under `folder` (recursively) with its size and modification time. */
async function snapshot(folder: string): Promise<string[]> {
  const out: string[] = [];
  for (const entry of await readdir(folder, { recursive: true, withFileTypes: true })) {
    const full = join(entry.parentPath, entry.name);
    const s = await stat(full);
    out.push(`${relative(folder, full)} ${entry.isDirectory() ? "dir" : s.size} ${s.mtimeMs}`);
  }
  return out.sort();
}

interface Details {
  instance: { instanceId: string; placement: { computerId: string; partitionId: string } | null; status: { status: string; message: string | null } | null };
  answer: { status: string; reason?: string };
}

async function details(instanceId: string): Promise<Details> {
  const { status, body } = await call("GET", `/v1/instances/${instanceId}`, as.user("alice"));
  assert.equal(status, 200, JSON.stringify(body));
  return body as unknown as Details;
}

/** Waits (bounded) until the node has processed the instance: started (ready) or error. */
async function processed(instanceId: string, what: string): Promise<Details> {
  const deadline = Date.now() + 45_000;
  for (;;) {
    const d = await details(instanceId);
    const status = d.instance.status?.status;
    if (d.answer.status === "ready" || status === "error") return d;
    if (Date.now() > deadline) assert.fail(`${what}: not processed in time: ${JSON.stringify({ answer: d.answer, placement: d.instance.placement, status: d.instance.status })}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

interface Requested {
  reference: string;
  softwareType: string;
  parameters: Record<string, string>;
}

/** Requests as alice; answers the HTTP status and, when accepted, the instance id. */
async function request(body: Requested & { releaseUrl?: string }): Promise<{ status: number; instanceId?: string; body: Record<string, unknown> }> {
  const { status, body: answer } = await call("POST", "/v1/requests", as.user("alice"), { releaseUrl: echo, ...body });
  count("requests");
  return { status, body: answer, ...(status < 300 ? { instanceId: answer.instanceId as string } : {}) };
}

/** The accepted request ran harmlessly: argv got the values literally (or a NUL made the run fail), paths stayed inside. */
async function checkHarmless(body: Requested, instanceId: string): Promise<void> {
  const d = await processed(instanceId, JSON.stringify(body).slice(0, 200));
  const context = `${JSON.stringify(body).slice(0, 300)} → ${JSON.stringify(d.instance.status)}`;
  const partition = d.instance.placement?.partitionId;
  assert.ok(partition !== undefined && /^slappart\d+$/.test(partition), context);
  const folder = join(root, partition);
  // The profile sees the parameters without empty values, in key order.
  const values = Object.keys(body.parameters)
    .sort()
    .map((key) => body.parameters[key]!)
    .filter((v) => v !== "");
  const argv = [body.reference, body.softwareType, ...values];
  const file = body.parameters.file;
  if (file !== undefined && file !== "" && (file.startsWith("/") || file.split(/[\\/]/).includes("..") || file.includes("\u0000"))) {
    // The profile's slap.write refuses the path: processing fails before anything is declared or run.
    assert.equal(d.instance.status?.status, "error", `a parameter path leaving the partition was written: ${context}`);
    assert.match(d.instance.status?.message ?? "", /escapes the partition/, context);
    return;
  }
  if (argv.some((a) => a.includes("\u0000"))) {
    // A NUL cannot be in an argv: the run fails, and says so.
    assert.equal(d.instance.status?.status, "error", context);
    assert.match(d.instance.status?.message ?? "", /null bytes/, context);
    return;
  }
  const written = JSON.parse(await readFile(join(folder, "argv.json"), "utf8")) as string[];
  assert.deepEqual(written, argv, `the values did not reach the process literally: ${context}`);
  assert.equal(d.answer.status, "ready", context);
  const seen = JSON.parse(await readFile(join(folder, "etc", "seen.json"), "utf8")) as Requested;
  assert.equal(seen.reference, body.reference, context);
  assert.equal(seen.softwareType, body.softwareType, context);
}

/** What must hold after anything: nothing outside the root changed, no canary, the root's layout intact. */
let siblingBefore: string[] = [];
let parentBefore: string[] = [];
async function checkContained(): Promise<void> {
  assert.equal(existsSync(canary), false, "the canary exists: something ran a shell");
  assert.deepEqual(await snapshot(join(base, "sibling")), siblingBefore, "the sibling folder changed");
  assert.deepEqual((await readdir(base)).sort(), parentBefore, "the parent folder of the root changed");
  const partitions = Array.from({ length: PARTITIONS }, (_, n) => `slappart${n}`);
  assert.deepEqual((await readdir(root)).sort(), ["software", "state", ...partitions].sort(), "the root holds something else than software, the node's state and the partitions");
  assert.deepEqual((await readdir(join(root, "state"))).sort(), [...partitions].sort(), "the node's state holds a folder per partition, nothing else");
  for (const entry of await readdir(join(root, "software"))) assert.match(entry, /^[0-9a-f]{16}$/, "a software folder not named by 16 hex digits");
}

before(async () => {
  dir = await tempDir("slap-hostile-node-");
  logDir = await tempDir("slap-hostile-node-log-");
  base = dir.path;
  root = join(base, "root");
  canary = join(base, "CANARY");
  await mkdir(join(base, "sibling", "deeper"), { recursive: true });
  await writeFile(join(base, "sibling", "keep.txt"), "untouched\n");
  await writeFile(join(base, "sibling", "deeper", "keep.txt"), "untouched\n");
  const types = ["$(touch CANARY)", "../../../escaped", "/etc/passwd", "a\nb", "; touch CANARY", "`touch CANARY`", "t".repeat(128)].map((t) => t.replace("CANARY", canary));
  await writeEchoRelease(join(base, "releases", "echo"), types);
  echo = pathToFileURL(join(base, "releases", "echo")).href;
  store = await EmbeddedEventStore.open({ dir: logDir.path, logger });
  master = await runMaster({ port: 0, host: "127.0.0.1", tokens: tokenFile(join(logDir.path, "tokens"), { users: ["alice"], computers: [COMPUTER] }) }, { store, logger });
  allocator = new Allocator({ store, logger });
  await allocator.start();
  node = await runNode(
    { master: master.url, token: testToken.node(COMPUTER), computer: COMPUTER, partitions: PARTITIONS, root, portBase: await freePortBlock(PARTITIONS * 5), portsPerPartition: 5, partitionUsers: "off", logLevel: "warn" },
    { logger, handleSignals: false },
  );
  const supplied = await call("POST", `/v1/computers/${COMPUTER}/supply`, as.admin(), { releaseUrl: echo });
  assert.equal(supplied.status, 200, JSON.stringify(supplied.body));
  // Installed before the tests start: "nothing is appended" checks must not see the node's install reports.
  await eventually("the echo release to be available", async () => {
    const { body } = await call("GET", `/v1/computers/${COMPUTER}`, as.admin());
    return (body.computer as { software: Record<string, { status: string }> } | undefined)?.software[echo]?.status === "available" ? true : undefined;
  }, 30_000);
  siblingBefore = await snapshot(join(base, "sibling"));
  parentBefore = (await readdir(base)).sort();
});

after(async () => {
  await node?.stop();
  await allocator?.stop();
  await master?.stop();
  await store?.close();
  await dir?.dispose();
  await logDir?.dispose();
});

describe("paths and shells under hostile input, master and node end to end", () => {
  it("no spawn in the node goes through a shell", async () => {
    const sources = (await readdir(SRC, { recursive: true })).filter((f) => f.endsWith(".ts") && !f.endsWith(".test.ts"));
    for (const file of sources) {
      const text = await readFile(join(SRC, file), "utf8");
      assert.doesNotMatch(text, /\bshell\s*:/, `${file} passes a shell option`);
      assert.doesNotMatch(text, /require\(["'](node:)?child_process["']\)/, `${file} requires child_process`);
      // What it takes from child_process: spawn and execFile (argv arrays), never exec/execSync (a shell line).
      for (const [, names] of text.matchAll(/import\s*\{([^}]*)\}\s*from\s*["'](?:node:)?child_process["']/g)) {
        for (const name of names!.split(",").map((n) => n.trim().replace(/^type\s+/, "").split(/\s+as\s+/)[0]!).filter((n) => n !== "")) {
          assert.ok(["spawn", "execFile", "ChildProcess"].includes(name), `${file} imports ${name} from child_process`);
        }
      }
      assert.doesNotMatch(text, /import\s+\*\s+as\s+\w+\s+from\s*["'](node:)?child_process["']/, `${file} imports all of child_process`);
    }
    count("source files checked", sources.length);
  });

  it("refuses what is too long or malformed with a 400 naming the field, and nothing reaches the node", async () => {
    const cases: Array<{ body: Record<string, unknown>; field: string }> = [
      { body: { reference: "r".repeat(10_000) }, field: "reference" },
      { body: { reference: "ok", softwareType: "t".repeat(129) }, field: "softwareType" },
      { body: { reference: "ok", releaseUrl: `file:///${"a/".repeat(5_000)}` }, field: "releaseUrl" },
      { body: { reference: "ok", parameters: { ["k".repeat(257)]: "v" } }, field: "parameters" },
      { body: { reference: "ok", parameters: { file: "v".repeat(65_537) } }, field: "parameters" },
      { body: { reference: "ok", releaseUrl: "__proto__" }, field: "releaseUrl" },
      { body: { reference: "ok", parameters: { file: { nested: ["v".repeat(65_537)] } } }, field: "parameters" },
      { body: { reference: "ok", parameters: { "": "empty name" } }, field: "parameters" },
    ];
    for (const { body, field } of cases) {
      const head = await store.head();
      const { status, body: answer } = await call("POST", "/v1/requests", as.user("alice"), { releaseUrl: echo, ...body });
      count("refused requests");
      assert.equal(status, 400, JSON.stringify(answer).slice(0, 300));
      const issues = (answer.error as { issues?: Array<{ path: string }> }).issues ?? [];
      assert.ok(issues.some((i) => i.path === field || i.path.startsWith(`${field}.`)), `${field} not named: ${JSON.stringify(answer).slice(0, 300)}`);
      assert.equal(await store.head(), head);
    }
    await checkContained();
  });

  it("takes `../`, absolute paths, NUL, shell metacharacters, newlines and long strings in references, software types and parameters: as literal values, inside the partition", async () => {
    const references = ["../../../../etc/passwd", "/etc/passwd", "a\u0000b", ...shellPayloads(canary), "line\nbreak\r\n", "r".repeat(512), "..", "."];
    const types = ["$(touch CANARY)", "../../../escaped", "/etc/passwd", "a\nb", "; touch CANARY", "`touch CANARY`", "t".repeat(128)].map((t) => t.replace("CANARY", canary));
    const parameters: Array<Record<string, string>> = [
      { file: "../../../escaped.txt" },
      { file: "/tmp/slap-hostile-absolute.txt" },
      { file: `${canary}` },
      { file: "etc/../../escaped.txt" },
      { file: "etc/inside.txt", shell: `$(touch ${canary})`, long: "p".repeat(20_000) },
      { file: "a\u0000b" },
      { "../key": "v", "/abs": "v", "$(touch x)": `\`touch ${canary}\`` },
    ];
    const bodies: Requested[] = [
      ...references.map((reference) => ({ reference, softwareType: "default", parameters: {} })),
      ...types.map((softwareType, i) => ({ reference: `type-${i}`, softwareType, parameters: {} })),
      ...parameters.map((p, i) => ({ reference: `param-${i}`, softwareType: "default", parameters: p })),
    ];
    const accepted: Array<{ body: Requested; instanceId: string }> = [];
    for (const body of bodies) {
      const answer = await request(body);
      assert.ok(answer.status === 200 || answer.status === 202, `${JSON.stringify(body).slice(0, 200)} → ${answer.status} ${JSON.stringify(answer.body).slice(0, 300)}`);
      accepted.push({ body, instanceId: answer.instanceId! });
    }
    for (const { body, instanceId } of accepted) await checkHarmless(body, instanceId);
    await checkContained();
  });

  it("random hostile references and parameters (fast-check) reach the profile's process as literal argv", async () => {
    const text = fc.oneof(
      fc.constantFrom(...shellPayloads(canary), "../..", "/", "\u0000", "\n", "'\"", "%2e%2e%2f"),
      fc.string({ unit: "binary", minLength: 1, maxLength: 30 }),
    );
    const arbitrary = fc.record({
      reference: text,
      parameters: fc.dictionary(fc.stringMatching(/^[a-z]{1,8}$/).filter((k) => k !== "file"), text, { maxKeys: 3 }),
    });
    const samples = fc.sample(arbitrary, { seed: SEED, numRuns: 12 });
    const accepted: Array<{ body: Requested; instanceId: string }> = [];
    for (const [i, sample] of samples.entries()) {
      const body = { reference: `fuzz-${i}-${sample.reference}`, softwareType: "default", parameters: sample.parameters };
      const answer = await request(body);
      assert.ok(answer.status === 200 || answer.status === 202, `${JSON.stringify(body)} (seed ${SEED}) → ${answer.status} ${JSON.stringify(answer.body).slice(0, 300)}`);
      accepted.push({ body, instanceId: answer.instanceId! });
    }
    for (const { body, instanceId } of accepted) await checkHarmless(body, instanceId);
    count("fuzzed requests (seed)", samples.length);
    await checkContained();
  });

  it("installs hostile release URLs only into <root>/software/<16 hex>, runs no shell, and reports what failed", async (t) => {
    // A relative path with `..` to a real release outside the root: the operator's supply, resolved from the node's working directory.
    const outside = join(base, "releases", "outside");
    await writeEchoRelease(outside, []);
    const relativeOutside = relative(process.cwd(), outside);
    assert.ok(relativeOutside.startsWith(".."), relativeOutside);
    const urls = [
      relativeOutside,
      "file:///etc/passwd",
      "file:///",
      `file://${root}/slappart0`,
      "/etc/hostname",
      `a\u0000b`,
      `file:///tmp/a%00b`,
      ...shellPayloads(canary),
      "line\nbreak",
      "http://127.0.0.1:1/release",
      "ftp://example.invalid/release",
      `file:///${"x".repeat(2_040)}`,
    ];
    const results: Record<string, string> = {};
    for (const releaseUrl of urls) {
      const { status, body } = await call("POST", `/v1/computers/${COMPUTER}/supply`, as.admin(), { releaseUrl });
      count("release URLs");
      assert.equal(status, 200, `${JSON.stringify(releaseUrl)} → ${status} ${JSON.stringify(body).slice(0, 300)}`);
    }
    const deadline = Date.now() + 45_000;
    for (const releaseUrl of urls) {
      for (;;) {
        const { body } = await call("GET", `/v1/computers/${COMPUTER}`, as.admin());
        const software = (body.computer as { software: Record<string, { status: string; log: string | null }> }).software[releaseUrl];
        if (software !== undefined && (software.status === "available" || software.status === "error")) {
          results[releaseUrl] = software.status === "error" ? `error: ${(software.log ?? "").split("\n").filter((l) => l.startsWith("install failed")).join(" ")}` : "available";
          break;
        }
        if (Date.now() > deadline) assert.fail(`${JSON.stringify(releaseUrl)}: no install status in time: ${JSON.stringify(software)}`);
        await new Promise((r) => setTimeout(r, 50));
      }
    }
    // What happened to each (printed, and the report quotes it): only the real release installs.
    for (const [url, result] of Object.entries(results)) t.diagnostic(`release ${JSON.stringify(url).slice(0, 80)}: ${result.slice(0, 160)}`);
    assert.equal(results[relativeOutside], "available", "the relative path to a release outside the root is installed (the operator's supply)");
    for (const url of urls.filter((u) => u !== relativeOutside)) assert.match(results[url] ?? "", /^error/, `${JSON.stringify(url)} installed`);
    // The release outside the root is copied in, not run in place: its folder is as it was.
    assert.equal(existsSync(join(outside, "installed.txt")), false, "the install step ran in the release's own folder");
    await checkContained();
  });

  it(
    "answers a software type named like a property of every object (constructor, __proto__, toString) as a type without a profile",
    async () => {
      for (const softwareType of ["constructor", "__proto__", "toString"]) {
        const body = { reference: `proto-${softwareType}`, softwareType, parameters: {} };
        const answer = await request(body);
        assert.ok(answer.status === 202 || answer.status === 200, JSON.stringify(answer.body));
        const d = await processed(answer.instanceId!, softwareType);
        assert.match(d.instance.status?.message ?? "", /no profile for software type/, `${softwareType}: ${JSON.stringify(d.instance.status)}`);
      }
      await checkContained();
    },
  );

  it("prints how many inputs each surface was tried with", (t) => {
    t.diagnostic(`seed ${SEED} (SLAP_FUZZ_SEED to change)`);
    for (const [surface, n] of counts) t.diagnostic(`${surface}: ${n}`);
  });
});

