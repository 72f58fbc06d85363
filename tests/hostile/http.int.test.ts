/**
 * Hostile input on every endpoint of the master's HTTP API (issue 7): fast-check draws wrongly
 * typed, missing, oversized and boundary fields, any JSON, bodies that are not JSON or over the
 * 1 MiB limit, bad query values, path parameters and headers. Every answer must be a 4xx with
 * `{ error: { code, message } }` (a 400 naming the field), never a 5xx nor a hang; a refused
 * input appends nothing; afterwards the master still answers. Most inputs go through Fastify's
 * `inject`; one pass goes over a real socket, with protocol garbage too.
 */
import assert from "node:assert/strict";
import { connect } from "node:net";
import { after, before, describe, it } from "node:test";
import fc from "fast-check";
import { z } from "zod";
import { ROUTES, pathOf, routes, type Role, type RouteSpec } from "@slap/api";
import { EVENT_TYPES, instanceIdFor } from "@slap/events";
import { as } from "@slap/testkit";
import {
  anyJson,
  nasty,
  notA,
  notEnum,
  notInt,
  notIsoTime,
  notPosition,
  notStringIn,
  notParameterMap,
  notStringMap,
  notToken,
  tooLong,
} from "./arbitraries.fixture.js";
import { FUZZ_SEED, Tally, runs, startHostileMaster, within, type HostileMaster } from "./hostile.fixture.js";

type Headers = Record<string, string>;
type Path = ReadonlyArray<string | number>;

const RELEASE = "file:///srv/releases/hostile";
const ALICE = { kind: "user", userId: "alice" } as const;
const DB = instanceIdFor(ALICE, "db");
const DOOMED = instanceIdFor(ALICE, "doomed");
/** Any answer must come within this (the longest legitimate wait, x-slap-seen, is 5 s). */
const HANG_MS = 20_000;

let h: HostileMaster;
const tally = new Tally();
const PROTOTYPE_NAMES = Object.getOwnPropertyNames(Object.prototype).sort();

// ---------------------------------------------------------------------------------------------
// Sending and checking
// ---------------------------------------------------------------------------------------------

interface Sent {
  method: "GET" | "POST";
  url: string;
  headers: Headers;
  /** A JSON value (sent as JSON) or raw text (`raw`). */
  body?: unknown;
  raw?: string;
}

interface Answer {
  status: number;
  text: string;
  json: unknown;
}

function describeSent(sent: Sent): string {
  const body = sent.raw ?? (sent.body === undefined ? "" : JSON.stringify(sent.body));
  const show = (text: string) => (text.length > 300 ? `${text.slice(0, 300)}… (${text.length} chars)` : text);
  return `${sent.method} ${show(sent.url)} ${show(JSON.stringify(sent.headers))} ${show(body)}`;
}

async function inject(sent: Sent): Promise<Answer> {
  const payload = sent.raw ?? (sent.body === undefined ? undefined : JSON.stringify(sent.body));
  const headers = payload !== undefined && sent.raw === undefined ? { "content-type": "application/json", ...sent.headers } : sent.headers;
  const response = await within(
    HANG_MS,
    describeSent(sent),
    h.app.inject({ method: sent.method, url: sent.url, headers, ...(payload === undefined ? {} : { payload }) }),
  );
  return { status: response.statusCode, text: response.body, json: safeJson(response.body) };
}

async function overHttp(sent: Sent): Promise<Answer> {
  const payload = sent.raw ?? (sent.body === undefined ? undefined : JSON.stringify(sent.body));
  const headers = payload !== undefined && sent.raw === undefined ? { "content-type": "application/json", ...sent.headers } : sent.headers;
  const response = await within(
    HANG_MS,
    describeSent(sent),
    fetch(`${h.running.url}${sent.url}`, { method: sent.method, headers, ...(payload === undefined ? {} : { body: payload }), signal: AbortSignal.timeout(HANG_MS) }),
  );
  const text = await response.text();
  return { status: response.status, text, json: safeJson(text) };
}

function safeJson(text: string): unknown {
  try {
    return JSON.parse(text) as unknown;
  } catch {
    return undefined;
  }
}

const ErrorBody = z.object({
  error: z.object({
    code: z.string().min(1),
    message: z.string().min(1),
    issues: z.array(z.object({ path: z.string(), message: z.string() })).optional(),
  }),
});
type ErrorBody = z.infer<typeof ErrorBody>;

/** What an input must get: a refusal (4xx, maybe a given status, naming fields), or anything but a 5xx. */
interface Expect {
  refused: boolean;
  status?: readonly number[];
  /** A 400 must name one of these (an issue path at or under it, or the message); and with `only`, nothing else. */
  names?: readonly string[];
  only?: boolean;
}

const under = (path: string, field: string): boolean => path === field || path.startsWith(`${field}.`);

/**
 * Sends one input and checks the answer: never a 5xx; a 4xx has the API's error shape and
 * appended nothing; a refusal names the field. Returns the answer.
 */
async function probe(surface: string, sent: Sent, expect: Expect, via: (sent: Sent) => Promise<Answer> = inject): Promise<Answer> {
  const before = await h.store.head();
  const errorsBefore = h.errors.length;
  const answer = await via(sent);
  tally.add(surface);
  const context = `${describeSent(sent)}\n→ ${answer.status} ${answer.text.slice(0, 500)}`;
  assert.ok(answer.status < 500, `a 5xx: ${context}`);
  assert.equal(h.errors.length, errorsBefore, `the master logged an error: ${String(JSON.stringify(h.errors.at(-1))).slice(0, 800)}\n${context}`);
  if (expect.refused) assert.ok(answer.status >= 400, `accepted (expected a refusal): ${context}`);
  if (expect.status !== undefined) assert.ok(expect.status.includes(answer.status), `status ${answer.status}, expected ${expect.status.join(" or ")}: ${context}`);
  if (answer.status >= 400) {
    const parsed = ErrorBody.safeParse(answer.json);
    assert.ok(parsed.success, `not the API's error shape { error: { code, message } }: ${context}`);
    assert.equal(await h.store.head(), before, `a refused input appended to the log: ${context}`);
    if (answer.status === 400 && expect.names !== undefined) assertNames(parsed.data, expect.names, expect.only === true, context);
  }
  return answer;
}

function assertNames(body: ErrorBody, fields: readonly string[], only: boolean, context: string): void {
  const issues = body.error.issues ?? [];
  const named = issues.some((i) => fields.some((f) => under(i.path, f))) || fields.some((f) => body.error.message.includes(f));
  assert.ok(named, `the 400 does not name ${fields.join(" or ")}: ${context}`);
  if (only) {
    const strays = issues.filter((i) => !fields.some((f) => under(i.path, f) || under(f, i.path)));
    assert.deepEqual(strays, [], `the 400 names fields that are fine: ${context}`);
  }
}

/** /healthz answers, a valid read and a valid write still work, and no input touched Object.prototype. */
async function stillServing(via: (sent: Sent) => Promise<Answer> = inject): Promise<void> {
  assert.deepEqual(Object.getOwnPropertyNames(Object.prototype).sort(), PROTOTYPE_NAMES, "Object.prototype gained properties");
  assert.equal(({} as Record<string, unknown>).supplied, undefined, "Object.prototype is polluted");
  const health = await via({ method: "GET", url: "/healthz", headers: {} });
  assert.equal(health.status, 200, health.text);
  const read = await via({ method: "GET", url: `/v1/instances/${DB}`, headers: as.user("alice") });
  assert.equal(read.status, 200, read.text);
  const before = await h.store.head();
  const write = await via({ method: "POST", url: `/v1/instances/${DB}/bang`, headers: as.user("alice"), body: { message: "still serving" } });
  assert.equal(write.status, 200, write.text);
  assert.ok((await h.store.head()) > before, "the bang appended nothing");
  assert.deepEqual(h.errors, [], "the master logged errors");
}

// ---------------------------------------------------------------------------------------------
// The endpoints
// ---------------------------------------------------------------------------------------------

interface Field {
  path: Path;
  required: boolean;
  /** Values this field must refuse. */
  bad: fc.Arbitrary<unknown>;
}

interface Endpoint {
  /** As in the route table and /openapi.json: `POST /v1/instances/{instanceId}/state`. */
  route: string;
  method: "GET" | "POST";
  /** Its path with these parameters (each URL-encoded). */
  url: (params?: Readonly<Record<string, string>>) => string;
  /** Valid path parameters. */
  params: Readonly<Record<string, string>>;
  /** Who may call it (so that validation, not authorization, decides). */
  who: () => Headers;
  body?: { valid: () => Record<string, unknown>; fields: readonly Field[] };
  /** Query parameters with values each must refuse. */
  query?: Readonly<Record<string, fc.Arbitrary<string>>>;
  /** A valid call opens a stream (only refused inputs are sent through inject). */
  stream?: boolean;
}

/** An endpoint of the route table (@slap/api), with what the fuzzer needs to call it. */
function route(spec: RouteSpec, params: Readonly<Record<string, string>>, rest: Omit<Endpoint, "route" | "method" | "url" | "params">): Endpoint {
  return {
    route: `${spec.method} ${spec.path}`,
    method: spec.method,
    params,
    url: (given = params) => pathOf(spec, given),
    ...rest,
  };
}

const ReadQueryBad = { secrets: notEnumQuery(["0", "1", "true", "false"]), asOf: notIsoTime, at: notPosition };
const MomentQueryBad = { asOf: notIsoTime, at: notPosition };

/** A query value not among `values`. */
function notEnumQuery(values: readonly string[]): fc.Arbitrary<string> {
  return fc.oneof(nasty, fc.constantFrom(...values).map((v) => v.toUpperCase() + "x")).filter((v) => !values.includes(v));
}

/** A query value `z.coerce.number().int()` with these bounds refuses. */
function notIntQuery(min: number, max: number): fc.Arbitrary<string> {
  const fine = (v: string): boolean => {
    const n = Number(v);
    return Number.isSafeInteger(n) && n >= min && n <= max;
  };
  return fc
    .oneof(nasty, fc.constantFrom("-1", "1.5", "abc", "Infinity", "-Infinity", "1e400", "NaN", "1,2", "٣", String(max + 1), String(min - 1)))
    .filter((v) => !fine(v));
}

const portBad = fc.oneof(notInt, fc.constantFrom(0, -1, 65_536, 1e9));
const PartitionItem = { partitionId: "slappart0", address: "127.0.0.1", ports: { from: 24_000, to: 24_099 } };
const badPartitionItem = fc.oneof(
  notA("object"),
  notToken.map((partitionId) => ({ ...PartitionItem, partitionId })),
  fc.oneof(notA("string"), nasty, fc.constantFrom("999.1.1.1", "1.1.1", "::g", "127.0.0.1 ", "localhost")).map((address) => ({ ...PartitionItem, address })),
  fc.oneof(notA("object"), portBad.map((from) => ({ from, to: 24_099 })), portBad.map((to) => ({ from: 24_000, to }))).map((ports) => ({ ...PartitionItem, ports })),
  fc.constantFrom("partitionId", "address", "ports").map((missing) => Object.fromEntries(Object.entries(PartitionItem).filter(([k]) => k !== missing))),
);
const Promise_ = { name: "http", ok: true, message: "", durationMs: 1 };
const badPromiseItem = fc.oneof(
  notA("object"),
  notStringIn(1, 256).map((name) => ({ ...Promise_, name })),
  notA("boolean").map((ok) => ({ ...Promise_, ok })),
  fc.oneof(notA("string"), tooLong(65_536)).map((message) => ({ ...Promise_, message })),
  fc.oneof(notA("number"), fc.double({ max: -Number.MIN_VALUE, noNaN: true, noDefaultInfinity: true })).map((durationMs) => ({ ...Promise_, durationMs })),
  fc.constantFrom("name", "ok", "message", "durationMs").map((missing) => Object.fromEntries(Object.entries(Promise_).filter(([k]) => k !== missing))),
);
const Process_ = { name: "web", state: "running", pid: 42, exitCode: 0 };
const badProcessItem = fc.oneof(
  notA("object"),
  notStringIn(1, 256).map((name) => ({ ...Process_, name })),
  notEnum(["running", "exited", "stopped", "backoff"]).map((state) => ({ ...Process_, state })),
  fc.oneof(notInt, fc.constantFrom(0, -1)).map((pid) => ({ ...Process_, pid })),
  notInt.map((exitCode) => ({ ...Process_, exitCode })),
);
/** An array field: not an array, an array with one bad item, or one item over the maximum. */
const badArray = (item: fc.Arbitrary<unknown>, valid: unknown, max: number): fc.Arbitrary<unknown> =>
  fc.oneof(
    notA("array"),
    fc.tuple(item, fc.integer({ min: 0, max: 2 })).map(([bad, at]) => [...Array.from({ length: at }, () => valid), bad]),
    fc.constant(Array.from({ length: max + 1 }, () => valid)),
  );
/** Release URLs the master must refuse: besides the wrong types and sizes, names every JavaScript object has (read models key by URL). */
const badReleaseUrl = fc.oneof(notStringIn(1, 2048), fc.constantFrom(...PROTOTYPE_NAMES));
const badId = fc.oneof(notToken, fc.constantFrom(...PROTOTYPE_NAMES));

const ENDPOINTS: readonly Endpoint[] = [
  route(routes.requestInstance, {}, {
    who: () => as.user("alice"),
    body: {
      valid: () => ({ releaseUrl: RELEASE, reference: "db", softwareType: "default", parameters: { size: "1" }, sla: {}, shared: false, state: "started" }),
      fields: [
        { path: ["releaseUrl"], required: true, bad: badReleaseUrl },
        { path: ["reference"], required: true, bad: notStringIn(1, 512) },
        { path: ["softwareType"], required: false, bad: notStringIn(1, 128) },
        { path: ["parameters"], required: false, bad: notParameterMap },
        { path: ["sla"], required: false, bad: notStringMap },
        { path: ["shared"], required: false, bad: notA("boolean") },
        { path: ["state"], required: false, bad: notEnum(["started", "stopped", "destroyed"]) },
      ],
    },
    query: { wait: notIntQuery(0, 60_000) },
  }),
  route(routes.listInstances, {}, { who: () => as.user("alice"), query: ReadQueryBad }),
  route(routes.getInstance, { instanceId: DB }, { who: () => as.user("alice"), query: ReadQueryBad }),
  route(routes.getByReference, { reference: "db" }, { who: () => as.user("alice"), query: ReadQueryBad }),
  route(routes.watchInstance, { instanceId: DB }, { who: () => as.user("alice"), stream: true }),
  route(routes.changeState, { instanceId: DB }, {
    who: () => as.user("alice"),
    body: { valid: () => ({ state: "started" }), fields: [{ path: ["state"], required: true, bad: notEnum(["started", "stopped", "destroyed"]) }] },
  }),
  route(routes.bang, { instanceId: DB }, {
    who: () => as.user("alice"),
    body: {
      valid: () => ({ message: "why", service: "web", exitCode: 1, signal: "SIGTERM", logTail: "tail" }),
      fields: [
        { path: ["message"], required: false, bad: notStringIn(1, 65_536) },
        { path: ["service"], required: false, bad: notStringIn(1, 256) },
        { path: ["exitCode"], required: false, bad: notInt },
        { path: ["signal"], required: false, bad: notStringIn(1, 32) },
        { path: ["logTail"], required: false, bad: fc.oneof(notA("string"), tooLong(65_536)) },
      ],
    },
  }),
  route(routes.publishConnection, { instanceId: DB }, {
    who: () => as.partition("COMP-1", "slappart0"),
    body: { valid: () => ({ parameters: { url: "http://127.0.0.1:24000/" } }), fields: [{ path: ["parameters"], required: true, bad: notStringMap }] },
  }),
  route(routes.reportInstanceStatus, { instanceId: DB }, {
    who: () => as.partition("COMP-1", "slappart0"),
    body: {
      valid: () => ({ status: "started", message: "ok", waitingFor: ["kvdb"], promises: [Promise_], processes: [Process_] }),
      fields: [
        { path: ["status"], required: true, bad: notEnum(["processing", "started", "stopped", "error", "waiting"]) },
        { path: ["message"], required: false, bad: fc.oneof(notA("string"), tooLong(65_536)) },
        { path: ["waitingFor"], required: false, bad: badArray(notStringIn(1, 512), "kvdb", 1_000) },
        { path: ["promises"], required: false, bad: badArray(badPromiseItem, Promise_, 1_000) },
        { path: ["processes"], required: false, bad: badArray(badProcessItem, Process_, 1_000) },
      ],
    },
  }),
  route(routes.reportDestroyed, { instanceId: DOOMED }, { who: () => as.partition("COMP-1", "slappart1") }),
  route(routes.listComputers, {}, { who: () => as.user("alice"), query: MomentQueryBad }),
  route(routes.registerComputer, {}, {
    who: () => as.node("COMP-2"),
    body: {
      valid: () => ({ computerId: "COMP-2", name: "two", networkId: "net-1", partitions: [PartitionItem] }),
      fields: [
        { path: ["computerId"], required: true, bad: badId },
        { path: ["name"], required: false, bad: fc.oneof(notA("string"), tooLong(256)) },
        { path: ["networkId"], required: false, bad: fc.oneof(notA("string"), tooLong(128)) },
        { path: ["partitions"], required: true, bad: fc.oneof(badArray(badPartitionItem, PartitionItem, 10_000), fc.constant([])) },
      ],
    },
  }),
  route(routes.getComputer, { computerId: "COMP-1" }, { who: () => as.user("alice"), query: MomentQueryBad }),
  route(routes.supplySoftware, { computerId: "COMP-1" }, {
    who: () => as.admin(),
    body: {
      valid: () => ({ releaseUrl: RELEASE, state: "available" }),
      fields: [
        { path: ["releaseUrl"], required: true, bad: badReleaseUrl },
        { path: ["state"], required: false, bad: notEnum(["available", "destroyed"]) },
      ],
    },
  }),
  route(routes.heartbeat, { computerId: "COMP-1" }, { who: () => as.node("COMP-1") }),
  route(routes.getDesiredState, { computerId: "COMP-1" }, { who: () => as.node("COMP-1"), query: { index: notPosition, wait: notIntQuery(0, 60_000) } }),
  route(routes.bangComputer, { computerId: "COMP-1" }, {
    who: () => as.node("COMP-1"),
    body: { valid: () => ({ message: "disk replaced" }), fields: [{ path: ["message"], required: false, bad: notStringIn(1, 65_536) }] },
  }),
  route(routes.reportSoftware, { computerId: "COMP-1" }, {
    who: () => as.node("COMP-1"),
    body: {
      valid: () => ({ releaseUrl: RELEASE, status: "available", log: "built" }),
      fields: [
        { path: ["releaseUrl"], required: true, bad: badReleaseUrl },
        { path: ["status"], required: true, bad: notEnum(["building", "available", "error", "destroyed"]) },
        { path: ["log"], required: false, bad: fc.oneof(notA("string"), tooLong(65_536)) },
      ],
    },
  }),
  route(routes.listEvents, {}, {
    who: () => as.user("alice"),
    query: {
      after: notIntQuery(0, Number.MAX_SAFE_INTEGER),
      limit: notIntQuery(1, 10_000),
      filter: fc.oneof(nasty.filter((v) => !/^[A-Za-z0-9_*>.-]{1,256}$/.test(v)), fc.constant("a".repeat(257))),
      type: notEnumQuery(EVENT_TYPES),
      since: notIsoTime,
      secrets: notEnumQuery(["0", "1", "true", "false"]),
    },
  }),
  route(routes.streamEvents, {}, {
    who: () => as.user("alice"),
    stream: true,
    query: {
      after: notIntQuery(0, Number.MAX_SAFE_INTEGER),
      filter: fc.oneof(nasty.filter((v) => !/^[A-Za-z0-9_*>.-]{1,256}$/.test(v)), fc.constant("a".repeat(257))),
      type: notEnumQuery(EVENT_TYPES),
    },
  }),
  route(routes.audit, {}, { who: () => as.admin() }),
  route(routes.whoami, {}, { who: () => as.user("alice") }),
  route(routes.metrics, {}, { who: () => as.metrics() }),
  route(routes.listTokens, {}, { who: () => as.admin() }),
  route(routes.revokeToken, { tokenId: "0123456789abcdef" }, { who: () => as.admin() }),
];

const withBody = ENDPOINTS.filter((e) => e.body !== undefined);
const withQuery = ENDPOINTS.filter((e) => e.query !== undefined);
const withParams = ENDPOINTS.filter((e) => Object.keys(e.params).length > 0);

/** Ids and references that exist (a path parameter drawn equal to one is skipped). */
const KNOWN_IDS: readonly string[] = [DB, DOOMED, "db", "doomed", "COMP-1", "COMP-2"];

/** Whether `encodeURIComponent` takes it (a lone surrogate it does not). */
function encodable(value: string): boolean {
  try {
    encodeURIComponent(value);
    return true;
  } catch {
    return false;
  }
}

const setAt = (body: Record<string, unknown>, path: Path, value: unknown): void => {
  let target = body as Record<string | number, unknown>;
  for (const key of path.slice(0, -1)) target = target[key] as Record<string | number, unknown>;
  const last = path[path.length - 1]!;
  if (value === undefined) delete target[last];
  else target[last] = value;
};

// ---------------------------------------------------------------------------------------------
// Setup: a computer with two partitions, a release, alice's "db" on slappart0 and her "doomed"
// (requested destroyed) on slappart1; COMP-2 registered by its node.
// ---------------------------------------------------------------------------------------------

before(async () => {
  h = await startHostileMaster({ users: ["alice", "bob"], computers: ["COMP-1", "COMP-2"] });
  const ok = async (sent: Sent): Promise<void> => {
    const answer = await inject(sent);
    assert.ok(answer.status < 300, `${describeSent(sent)} → ${answer.status} ${answer.text}`);
  };
  await ok({
    method: "POST",
    url: "/v1/computers",
    headers: as.node("COMP-1"),
    body: { computerId: "COMP-1", partitions: [0, 1].map((n) => ({ partitionId: `slappart${n}`, address: "127.0.0.1", ports: { from: 24_000 + n * 100, to: 24_099 + n * 100 } })) },
  });
  await ok({ method: "POST", url: "/v1/computers", headers: as.node("COMP-2"), body: ENDPOINTS.find((e) => e.route === "POST /v1/computers")!.body!.valid() });
  await ok({ method: "POST", url: "/v1/computers/COMP-1/supply", headers: as.admin(), body: { releaseUrl: RELEASE } });
  await ok({ method: "POST", url: "/v1/computers/COMP-1/software", headers: as.node("COMP-1"), body: { releaseUrl: RELEASE, status: "available" } });
  await ok({ method: "POST", url: "/v1/requests", headers: as.user("alice"), body: { releaseUrl: RELEASE, reference: "db", parameters: { size: "1" } } });
  await ok({ method: "POST", url: "/v1/requests", headers: as.user("alice"), body: { releaseUrl: RELEASE, reference: "doomed" } });
  await h.allocate(DB, "COMP-1", "slappart0");
  await h.allocate(DOOMED, "COMP-1", "slappart1");
  await ok({ method: "POST", url: `/v1/instances/${DOOMED}/state`, headers: as.user("alice"), body: { state: "destroyed" } });
});

after(async () => {
  await h?.stop();
});

describe("the master's HTTP API under hostile input", () => {
  it("the fuzzed routes are every route of the route table that needs a token, as /openapi.json lists them; the public ones answer whatever else is sent", async () => {
    const operations = ROUTES.map((r) => ({ route: `${r.method} ${r.path}`, path: r.path, open: r.auth === "public" }));
    const answer = await inject({ method: "GET", url: "/openapi.json", headers: {} });
    const document = answer.json as { paths: Record<string, Record<string, { security?: unknown[] }>> };
    const documented = Object.entries(document.paths).flatMap(([path, ops]) => Object.entries(ops).map(([m, op]) => ({ route: `${m.toUpperCase()} ${path}`, path, open: op.security?.length === 0 })));
    const byRoute = (a: { route: string }, b: { route: string }) => a.route.localeCompare(b.route);
    assert.deepEqual([...documented].sort(byRoute), [...operations].sort(byRoute), "/openapi.json lists the route table's operations");
    const fuzzed = new Set(ENDPOINTS.map((e) => e.route));
    for (const { route, open } of operations) if (!open) assert.ok(fuzzed.has(route), `${route} is not fuzzed`);
    for (const route of fuzzed) assert.ok(operations.some((o) => o.route === route), `${route} is fuzzed but not in the route table`);
    // Public routes (health, the API document, the dashboard's files): any query and headers, still a 200.
    const publicPaths = [...new Set([...operations.filter((o) => o.open).map((o) => o.path), "/", "/dashboard/dashboard.mjs", "/dashboard/dashboard.css"])];
    const headerValue = fc.oneof(nasty, tooLong(10_000)).filter((v) => !v.includes("\r") && !v.includes("\n") && !v.includes("\u0000"));
    await fc.assert(
      fc.asyncProperty(fc.constantFrom(...publicPaths), fc.oneof(nasty, fc.string({ unit: "binary-ascii", maxLength: 60 })).filter(encodable), headerValue, headerValue, async (path, query, authorization, seen) => {
        const sent: Sent = { method: "GET", url: `${path}?${encodeURI(query).replace(/#/g, "%23")}`, headers: { authorization, "x-slap-user": seen } };
        const got = await probe("public routes", sent, { refused: false });
        assert.equal(got.status, 200, `${describeSent(sent)} → ${got.status} ${got.text.slice(0, 300)}`);
      }),
      runs(100),
    );
  });

  it("refuses a wrongly typed, missing, oversized or out-of-range body field with a 400 naming it, appending nothing", async () => {
    for (const endpoint of withBody) {
      const body = endpoint.body!;
      const mutation = fc.array(
        fc.constantFrom(...body.fields).chain((field) =>
          (field.required ? fc.oneof({ weight: 4, arbitrary: field.bad }, { weight: 1, arbitrary: fc.constant(undefined) }) : field.bad).map((value) => ({ path: field.path, value })),
        ),
        { minLength: 1, maxLength: 3 },
      );
      await fc.assert(
        fc.asyncProperty(mutation, async (changes) => {
          const sent = body.valid();
          for (const { path, value } of changes) setAt(sent, path, value);
          const names = changes.map((c) => c.path.join("."));
          await probe(`body fields: ${endpoint.route}`, { method: endpoint.method, url: endpoint.url(), headers: endpoint.who(), body: sent }, { refused: true, status: [400], names, only: true });
        }),
        runs(endpoint.body!.fields.length > 2 ? 100 : 50),
      );
    }
    await stillServing();
  });

  it("answers any JSON body, and objects of the right keys with any values, with a 4xx or a success: never a 5xx", async () => {
    for (const endpoint of withBody) {
      const keys = endpoint.body!.fields.map((f) => String(f.path[0]));
      const shaped = fc.record(Object.fromEntries(keys.map((k) => [k, fc.oneof(anyJson, nasty)])), { requiredKeys: [] });
      await fc.assert(
        fc.asyncProperty(fc.oneof(anyJson, shaped), async (value) => {
          await probe(`any JSON: ${endpoint.route}`, { method: endpoint.method, url: endpoint.url(), headers: endpoint.who(), body: value }, { refused: false });
        }),
        runs(50),
      );
    }
    await stillServing();
  });

  it("takes unicode, control characters, path and shell tricks wherever any string is allowed: stored as given or refused, never a 5xx", async () => {
    const strings = fc.oneof(nasty, fc.string({ unit: "grapheme", maxLength: 30 }));
    const map = fc.dictionary(strings.filter((k) => k.length > 0 && k.length <= 256 && k !== "__proto__"), strings, { maxKeys: 4 });
    const cases: Array<{ endpoint: Endpoint; body: fc.Arbitrary<Record<string, unknown>> }> = [
      { endpoint: ENDPOINTS[0]!, body: fc.record({ releaseUrl: strings, reference: strings, softwareType: strings, parameters: map, sla: map }) },
      { endpoint: ENDPOINTS.find((e) => e.route.endsWith("/supply"))!, body: fc.record({ releaseUrl: strings }) },
      { endpoint: ENDPOINTS.find((e) => e.route.endsWith("/software"))!, body: fc.record({ releaseUrl: strings, status: fc.constant("error"), log: strings }) },
      { endpoint: ENDPOINTS.find((e) => e.route.endsWith("/bang"))!, body: fc.record({ message: strings, service: strings, signal: strings, logTail: strings }) },
      { endpoint: ENDPOINTS.find((e) => e.route.endsWith("/connection"))!, body: fc.record({ parameters: map }) },
      { endpoint: ENDPOINTS.find((e) => e.route.endsWith("/status"))!, body: fc.record({ status: fc.constant("error"), message: strings, waitingFor: fc.array(strings, { maxLength: 3 }) }) },
      { endpoint: ENDPOINTS.find((e) => e.route === "POST /v1/computers")!, body: fc.record({ computerId: fc.constant("COMP-2"), name: strings, networkId: strings, partitions: fc.constant([PartitionItem]) }) },
    ];
    for (const { endpoint, body } of cases) {
      await fc.assert(
        fc.asyncProperty(body, async (value) => {
          await probe(`strings: ${endpoint.route}`, { method: endpoint.method, url: endpoint.url(), headers: endpoint.who(), body: value }, { refused: false });
          assert.deepEqual(Object.getOwnPropertyNames(Object.prototype).sort(), PROTOTYPE_NAMES, "Object.prototype gained properties");
        }),
        runs(50),
      );
    }
    // The prototype names themselves, where a read model keys by the value (ids, release URLs).
    for (const name of PROTOTYPE_NAMES) {
      const refuse = { refused: true, status: [400] } as const;
      await probe("prototype names", { method: "POST", url: "/v1/computers/COMP-1/supply", headers: as.admin(), body: { releaseUrl: name } }, { ...refuse, names: ["releaseUrl"] });
      await probe("prototype names", { method: "POST", url: "/v1/computers", headers: as.admin(), body: { computerId: name, partitions: [PartitionItem] } }, { ...refuse, names: ["computerId"] });
      await probe("prototype names", { method: "GET", url: `/v1/instances/${name}`, headers: as.user("alice") }, { ...refuse, names: ["instanceId"] });
    }
    await stillServing();
  });

  it("ignores extra fields: the call is answered as without them, and they are never stored", async () => {
    const extra = fc.dictionary(fc.string({ minLength: 1, maxLength: 12 }).map((k) => `zz_extra_${k}`), anyJson, { minKeys: 1, maxKeys: 4 });
    for (const endpoint of withBody) {
      await fc.assert(
        fc.asyncProperty(extra, async (extras) => {
          const before = await h.store.head();
          const answer = await probe(`extra fields: ${endpoint.route}`, { method: endpoint.method, url: endpoint.url(), headers: endpoint.who(), body: { ...endpoint.body!.valid(), ...extras } }, { refused: false });
          assert.ok(answer.status < 400, `the valid body with extra fields was refused: ${answer.status} ${answer.text}`);
          for await (const commit of h.store.readAll({ after: before })) assert.ok(!JSON.stringify(commit.events).includes("zz_extra_"), "an extra field was stored");
        }),
        runs(15),
      );
    }
    await stillServing();
  });

  it("refuses bodies that are not JSON, not of a JSON type, over 1 MiB, or nested very deep, with a 4xx", async () => {
    const notJson = fc.string({ unit: "binary", minLength: 1, maxLength: 200 }).filter((text) => safeJson(text) === undefined);
    const contentTypes = fc.oneof(
      fc.constantFrom("text/plain", "application/xml", "multipart/form-data; boundary=x", "application/x-www-form-urlencoded", "", "application/octet-stream", "*/*", "text/json", "application/json-patch+json", "application/json; charset=utf-16", "APPLICATION/JSON", "application/json;;", "\u0000"),
      nasty,
    );
    const oversized = fc.integer({ min: 1, max: 512 * 1024 }).map((extra) => JSON.stringify({ releaseUrl: RELEASE, reference: "x".repeat(1024 * 1024 + extra) }));
    for (const endpoint of withBody) {
      // Deep nesting in one of the endpoint's own fields (an unknown field would be dropped unread).
      const deep = fc
        .tuple(fc.integer({ min: 1_000, max: 200_000 }), fc.constantFrom(["[", "]"], ['{"a":', "}"]), fc.constantFrom(...endpoint.body!.fields.map((f) => String(f.path[0]))))
        .map(([depth, [open, close], field]) => `{"${field}":${open.repeat(depth)}1${close.repeat(depth)}}`);
      const raw = fc.oneof(
        notJson.map((raw) => ({ raw, type: "application/json", expect: [400] })),
        fc.tuple(contentTypes, anyJson).map(([type, value]) => ({ raw: JSON.stringify(value), type, expect: undefined })),
        oversized.map((raw) => ({ raw, type: "application/json", expect: [413] })),
        deep.map((raw) => ({ raw, type: "application/json", expect: raw.length > 1024 * 1024 ? [413] : [400] })),
      );
      await fc.assert(
        fc.asyncProperty(raw, async ({ raw, type, expect }) => {
          const headers = { ...endpoint.who(), ...(type === "" ? {} : { "content-type": type }) };
          await probe(`raw bodies: ${endpoint.route}`, { method: endpoint.method, url: endpoint.url(), headers, raw }, { refused: expect !== undefined, ...(expect === undefined ? {} : { status: expect }) });
        }),
        runs(25),
      );
    }
    await stillServing();
  });

  it("refuses bad query values with a 400 naming the parameter (asOf and at together too)", async () => {
    for (const endpoint of withQuery) {
      const query = endpoint.query!;
      const arbitrary = fc.oneof(
        fc.constantFrom(...Object.keys(query)).chain((key) => query[key]!.map((value) => ({ pairs: [[key, value]] as Array<[string, string]>, names: [key] }))),
        // A parameter given twice is an array: no schema takes one.
        fc.constantFrom(...Object.keys(query)).map((key) => ({ pairs: [[key, "1"], [key, "1"]] as Array<[string, string]>, names: [key] })),
      );
      await fc.assert(
        fc.asyncProperty(arbitrary, async ({ pairs, names }) => {
          const search = new URLSearchParams(pairs).toString();
          const sent: Sent = { method: endpoint.method, url: `${endpoint.url()}?${search}`, headers: endpoint.who(), ...(endpoint.body === undefined ? {} : { body: endpoint.body.valid() }) };
          await probe(`query: ${endpoint.route}`, sent, { refused: true, status: [400], names, only: true });
        }),
        runs(60),
      );
      if ("asOf" in query) {
        await probe(`query: ${endpoint.route}`, { method: "GET", url: `${endpoint.url()}?asOf=2026-01-01T00:00:00Z&at=1`, headers: endpoint.who() }, { refused: true, status: [400], names: ["at"] });
      }
    }
    // Raw query text, encoded or not: never a 5xx (unknown parameters are ignored).
    const text = fc.oneof(nasty, fc.string({ unit: "binary-ascii", maxLength: 60 })).filter(encodable);
    for (const endpoint of withQuery.filter((e) => e.stream !== true && e.method === "GET")) {
      await fc.assert(
        fc.asyncProperty(text, async (raw) => {
          await probe(`raw query: ${endpoint.route}`, { method: "GET", url: `${endpoint.url()}?${encodeURI(raw).replace(/#/g, "%23")}`, headers: endpoint.who() }, { refused: false });
        }),
        runs(30),
      );
    }
    await stillServing();
  });

  it("refuses a bad path parameter with a 400 naming it, and an unknown one with a 404 (or 403)", async () => {
    // Values of up to 100 characters once encoded (longer ones are covered by the router test below).
    const value = fc
      .oneof(fc.constantFrom(...PROTOTYPE_NAMES), fc.stringMatching(/^[A-Za-z0-9_-]{1,64}$/), nasty, tooLong(64), fc.constant(""))
      .filter((v) => encodable(v) && encodeURIComponent(v).length <= 100);
    for (const endpoint of withParams) {
      const name = Object.keys(endpoint.params)[0]!;
      await fc.assert(
        fc.asyncProperty(value, async (v) => {
          if (KNOWN_IDS.includes(v)) return;
          const sent: Sent = { method: endpoint.method, url: endpoint.url({ [name]: v }), headers: endpoint.who(), ...(endpoint.body === undefined ? {} : { body: endpoint.body.valid() }) };
          if (endpoint.route.startsWith("GET /v1/references/")) {
            // Any string is a reference: one requested by an earlier test is found.
            await probe(`path: ${endpoint.route}`, sent, { refused: false, status: v === "" ? [400, 404] : [200, 404] });
            return;
          }
          await probe(`path: ${endpoint.route}`, sent, { refused: true, status: [400, 403, 404], names: [name] });
        }),
        runs(50),
      );
    }
    await stillServing();
  });

  it("refuses bad x-slap-seen, authorization and x-slap-partition headers (400 naming them, 401, 403)", async () => {
    const targets = ENDPOINTS.filter((e) => e.stream !== true);
    const endpoint = fc.constantFrom(...targets.keys());
    const send = (e: Endpoint, headers: Headers): Sent => ({ method: e.method, url: e.url(), headers, ...(e.body === undefined ? {} : { body: e.body.valid() }) });
    await fc.assert(
      fc.asyncProperty(endpoint, notPosition, async (i, seen) => {
        const e = targets[i]!;
        await probe("header x-slap-seen", send(e, { ...e.who(), "x-slap-seen": seen }), { refused: true, status: [400], names: ["x-slap-seen"] });
      }),
      runs(120),
    );
    const garbage = fc.oneof(
      nasty,
      nasty.map((t) => `Bearer ${t}`),
      fc.constantFrom("Bearer", "Bearer ", "Basic dGVzdDp0ZXN0", "Bearer  test-token-admin-0000", "Bearer test-token-admin-0000 x", "Token test-token-admin-0000", "Bearer test-token-admin-000"),
      tooLong(100_000).map((t) => `Bearer ${t}`),
      fc.string({ unit: "binary", minLength: 16, maxLength: 80 }).map((t) => `Bearer ${t}`),
    );
    await fc.assert(
      fc.asyncProperty(fc.constantFrom(...ENDPOINTS.keys()), garbage, async (i, authorization) => {
        const e = ENDPOINTS[i]!;
        await probe("header authorization", { method: e.method, url: e.url(), headers: { authorization }, ...(e.body === undefined ? {} : { body: e.body.valid() }) }, { refused: true, status: [401] });
      }),
      runs(200),
    );
    for (const e of ENDPOINTS) await probe("header authorization", { method: e.method, url: e.url(), headers: {} }, { refused: true, status: [401] });
    const partition = fc
      .oneof(nasty, fc.tuple(nasty, nasty).map(([c, p]) => `${c}/${p}`), fc.constantFrom("COMP-1", "COMP-1/", "/slappart0", "COMP-1/slappart0/x", "COMP-1\\slappart0", "constructor/slappart0"))
      .filter((v) => !/^[A-Za-z0-9_-]{1,64}\/[A-Za-z0-9_-]{1,64}$/.test(v) || v.split("/").some((id) => PROTOTYPE_NAMES.includes(id)));
    await fc.assert(
      fc.asyncProperty(fc.constantFrom(...targets.keys()), partition, async (i, value) => {
        const e = targets[i]!;
        await probe("header x-slap-partition", send(e, { ...as.node("COMP-1"), "x-slap-partition": value }), { refused: true, status: [400], names: ["x-slap-partition"] });
      }),
      runs(100),
    );
    for (const e of targets) {
      await probe("header x-slap-partition", send(e, { ...as.node("COMP-1"), "x-slap-partition": "COMP-2/slappart0" }), { refused: true, status: [403] });
      await probe("header x-slap-partition", send(e, { ...as.user("alice"), "x-slap-partition": "COMP-1/slappart0" }), { refused: true, status: [403] });
    }
    await stillServing();
  });

  it(
    "answers URLs the router refuses (bad percent-encoding, a path parameter over 100 characters) with the API's error shape",
    async () => {
      const bad = fc.oneof(
        fc.constantFrom("%", "%E0%A4%A", "%zz", "a%", "%C0%AF", "%ED%A0%80"),
        fc.stringMatching(/^[A-Za-z0-9_-]{101,300}$/),
        tooLong(100).map((v) => encodeURIComponent(v)),
      );
      for (const endpoint of withParams.filter((e) => e.stream !== true)) {
        const name = Object.keys(endpoint.params)[0]!;
        await fc.assert(
          fc.asyncProperty(bad, async (raw) => {
            const url = endpoint.url({ [name]: "PLACEHOLDER" }).replace("PLACEHOLDER", raw);
            await probe(`router: ${endpoint.route}`, { method: endpoint.method, url, headers: endpoint.who(), ...(endpoint.body === undefined ? {} : { body: endpoint.body.valid() }) }, { refused: true });
          }),
          runs(10),
        );
      }
    },
  );

  it(
    "reads back, at /v1/references/:reference, an instance requested under a reference of 101 to 512 characters",
    async () => {
      const reference = "r".repeat(200);
      await probe("long reference", { method: "POST", url: "/v1/requests", headers: as.user("alice"), body: { releaseUrl: RELEASE, reference } }, { refused: false });
      const answer = await probe("long reference", { method: "GET", url: `/v1/references/${reference}`, headers: as.user("alice") }, { refused: false });
      assert.equal(answer.status, 200, answer.text);
    },
  );

  it(
    "refuses a JSON body that is not an object (null, a number, a string, an array) on every POST route",
    async () => {
      const notObject = fc.oneof(fc.constant(null), notA("object"));
      for (const endpoint of ENDPOINTS.filter((e) => e.method === "POST")) {
        await fc.assert(
          fc.asyncProperty(notObject, async (value) => {
            const headers = { ...endpoint.who(), "content-type": "application/json" };
            await probe(`non-object bodies: ${endpoint.route}`, { method: endpoint.method, url: endpoint.url(), headers, raw: JSON.stringify(value) }, { refused: true, status: [400] });
          }),
          runs(10),
        );
      }
    },
  );

  it(
    "answers protocol errors on the socket (a bad request line, a control character in a header, headers over 16 KiB) with the API's error shape",
    async () => {
      const port = Number(new URL(h.running.url).port);
      for (const text of ["BLAH\r\n\r\n", "GET /healthz HTTP/1.1\r\nHost: x\r\nX-Bad: a\u0001b\r\n\r\n", `GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: ${"a".repeat(20_000)}\r\n\r\n`]) {
        const reply = await within(HANG_MS, JSON.stringify(text.slice(0, 60)), rawExchange(port, text));
        const body = reply.slice(reply.indexOf("\r\n\r\n") + 4);
        assert.ok(ErrorBody.safeParse(safeJson(body)).success, `${JSON.stringify(text.slice(0, 60))} → ${reply.slice(0, 300)}`);
      }
    },
  );

  it("over a real socket: the same kinds of inputs, protocol garbage and huge headers are refused and the master goes on", async () => {
    const http = (sent: Sent) => overHttp(sent);
    // Fetch only sends header values of bytes 0x20-0xFF: keep the generated ones to those.
    const byteString = (v: string): boolean => /^[\x20-\x7e\x80-\xff]*$/.test(v) && v.trim() === v;
    for (const endpoint of withBody) {
      const body = endpoint.body!;
      await fc.assert(
        fc.asyncProperty(fc.constantFrom(...body.fields).chain((field) => field.bad.map((value) => ({ path: field.path, value }))), async ({ path, value }) => {
          const sent = body.valid();
          setAt(sent, path, value);
          await probe(`real HTTP: body fields`, { method: endpoint.method, url: endpoint.url(), headers: endpoint.who(), body: sent }, { refused: true, status: [400], names: [path.join(".")] }, http);
        }),
        runs(20),
      );
    }
    await fc.assert(
      fc.asyncProperty(fc.constantFrom(...ENDPOINTS.keys()), nasty.filter(byteString), async (i, token) => {
        const e = ENDPOINTS[i]!;
        await probe("real HTTP: authorization", { method: e.method, url: e.url(), headers: { authorization: `Bearer ${token}` } }, { refused: true, status: [401] }, http);
      }),
      runs(60),
    );
    await fc.assert(
      fc.asyncProperty(notPosition.filter((v) => byteString(v) && v !== ""), async (seen) => {
        await probe("real HTTP: x-slap-seen", { method: "GET", url: "/v1/instances", headers: { ...as.user("alice"), "x-slap-seen": seen } }, { refused: true, status: [400], names: ["x-slap-seen"] }, http);
      }),
      runs(40),
    );
    for (const endpoint of withQuery) {
      await fc.assert(
        fc.asyncProperty(fc.constantFrom(...Object.keys(endpoint.query!)).chain((key) => endpoint.query![key]!.map((v) => [key, v] as const)), async ([key, v]) => {
          const sent: Sent = { method: endpoint.method, url: `${endpoint.url()}?${new URLSearchParams([[key, v]]).toString()}`, headers: endpoint.who(), ...(endpoint.body === undefined ? {} : { body: endpoint.body.valid() }) };
          await probe("real HTTP: query", sent, { refused: true, status: [400], names: [key] }, http);
        }),
        runs(10),
      );
    }
    for (const raw of [...ENDPOINTS.filter((e) => e.method === "POST").map((e) => e.url())]) {
      await probe("real HTTP: bodies", { method: "POST", url: raw, headers: { ...as.admin(), "content-type": "application/json" }, raw: "{\"a\":" }, { refused: true, status: [400, 404] }, http);
      await probe("real HTTP: bodies", { method: "POST", url: raw, headers: { ...as.admin(), "content-type": "application/json" }, raw: JSON.stringify({ x: "y".repeat(1024 * 1024) }) }, { refused: true, status: [413] }, http);
    }

    // A position past the head is waited for (at most 5 s), then answered: not held forever.
    const ahead = await probe("real HTTP: x-slap-seen", { method: "GET", url: "/v1/instances", headers: { ...as.user("alice"), "x-slap-seen": String((await h.store.head()) + 1_000) } }, { refused: false }, http);
    assert.equal(ahead.status, 200);
    // A valid stream opens and closes cleanly.
    const stream = await fetch(`${h.running.url}/v1/events/stream?after=0`, { headers: as.user("alice"), signal: AbortSignal.timeout(HANG_MS) });
    assert.equal(stream.status, 200);
    await stream.body?.cancel();
    tally.add("real HTTP: streams");

    // Protocol garbage straight on the socket: a 4xx status line (or the connection closed), never a hang.
    const port = Number(new URL(h.running.url).port);
    const garbage = [
      "BLAH\r\n\r\n",
      "GET / HTTP/1.1\r\nHost: x\r\nX-Bad: a\u0001b\r\n\r\n",
      `GET /v1/instances HTTP/1.1\r\nHost: x\r\nX-Big: ${"a".repeat(100_000)}\r\n\r\n`,
      "POST /v1/requests HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nContent-Type: application/json\r\n\r\nzz\r\n{}\r\n0\r\n\r\n",
      "POST /v1/requests HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n{}{}{}",
      "GET /v1/instances HTTP/9.9\r\nHost: x\r\n\r\n",
      "GET /v1/ins\u0000tances HTTP/1.1\r\nHost: x\r\n\r\n",
      `GET /${"a".repeat(100_000)} HTTP/1.1\r\nHost: x\r\n\r\n`,
      "\u0016\u0003\u0001\u0000\u00a5\u0001\u0000\u0000\u00a1\u0003\u0003",
    ];
    for (const text of garbage) {
      const reply = await within(HANG_MS, JSON.stringify(text.slice(0, 80)), rawExchange(port, text));
      tally.add("real HTTP: protocol garbage");
      const status = /^HTTP\/1\.[01] (\d{3})/.exec(reply)?.[1];
      assert.ok(status === undefined || (Number(status) >= 400 && Number(status) < 500), `${JSON.stringify(text.slice(0, 80))} → ${reply.slice(0, 200)}`);
    }
    await stillServing(http);
  });

  it("refuses a valid call from a role the route table does not list for the route (403 or 404), appending nothing", async () => {
    const callers: Record<Role, () => Headers> = {
      admin: () => as.admin(),
      user: () => as.user("alice"),
      node: () => as.node("COMP-1"),
      partition: () => as.partition("COMP-1", "slappart0"),
      metrics: () => as.metrics(),
    };
    let tried = 0;
    for (const endpoint of ENDPOINTS) {
      const spec = ROUTES.find((r) => `${r.method} ${r.path}` === endpoint.route)!;
      if (spec.auth === "public") continue;
      const listed: readonly Role[] = spec.auth;
      for (const role of (Object.keys(callers) as Role[]).filter((r) => !listed.includes(r))) {
        const sent: Sent = { method: endpoint.method, url: endpoint.url(), headers: callers[role](), ...(endpoint.body === undefined ? {} : { body: endpoint.body.valid() }) };
        await probe("roles the table does not list", sent, { refused: true, status: [403, 404] });
        tried++;
      }
    }
    assert.ok(tried >= 20, `only ${tried} unlisted roles tried`);
  });

  it("prints how many inputs each surface was tried with", (t) => {
    t.diagnostic(`seed ${FUZZ_SEED} (SLAP_FUZZ_SEED to change)`);
    for (const line of tally.lines()) t.diagnostic(line);
    assert.ok(tally.total >= 2_000, `only ${tally.total} inputs`);
  });
});

/** Writes `text` on a fresh connection and reads until the server closes it or goes quiet. */
function rawExchange(port: number, text: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = connect(port, "127.0.0.1");
    let reply = "";
    let quiet: NodeJS.Timeout | undefined;
    const done = (): void => {
      clearTimeout(quiet);
      socket.destroy();
      resolve(reply);
    };
    socket.on("connect", () => socket.write(Buffer.from(text, "latin1")));
    socket.on("data", (chunk) => {
      reply += chunk.toString("latin1");
      clearTimeout(quiet);
      quiet = setTimeout(done, 300);
    });
    socket.on("end", done);
    socket.on("close", done);
    socket.on("error", (error: NodeJS.ErrnoException) => (error.code === "ECONNRESET" || error.code === "EPIPE" ? done() : reject(error)));
    // Nothing at all for 5 s: the server keeps the socket waiting for more (a partial request): not a hang of the server.
    setTimeout(done, 5_000).unref();
  });
}

