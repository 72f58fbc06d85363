// The live dashboard: the instance graph (who requested which, where each runs, its processes,
// promises and connection parameters), the computers with their partitions and releases, and the
// event feed. Runs in the browser, no framework (bundled by `dashboardFiles`): it reads the
// master's API with an API token — the same reads as the CLI, what that token may see, secrets
// masked by the server — and follows `/v1/events/stream`: every event lands in the feed at once
// and refreshes the graph.
//
// The token comes in the link's fragment (`/dashboard#token=…`, which the browser never sends
// to a server), is kept in this tab's sessionStorage and removed from the address bar; without
// one, or when the master refused it, the page asks for it. The stream is read with fetch()
// rather than EventSource, which cannot send the Authorization header; eventsource-parser
// splits it into events.

import type { ComputerView, InstanceList, InstanceView, PartitionView, TreeView } from "@slap/api";
import type { Actor, DomainEvent } from "@slap/events";
import { createParser } from "eventsource-parser";

/** Every event type (libs/events EVENT_TYPES; the compiler checks none is missing, the dashboard test that the two agree). */
const EVENT_TYPES = [
  "ComputerRegistered",
  "SoftwareSupplied",
  "SoftwareUnsupplied",
  "SoftwareReleaseStatusReported",
  "ComputerBanged",
  "PartitionAllocated",
  "PartitionReleased",
  "InstanceRequested",
  "InstanceParametersChanged",
  "InstanceRequestedStateChanged",
  "SharedInstanceAttached",
  "ConnectionParametersPublished",
  "InstanceStatusReported",
  "InstanceBanged",
  "InstanceDestroyed",
] as const satisfies ReadonlyArray<DomainEvent["type"]>;
const everyTypeListed: Exclude<DomainEvent["type"], (typeof EVENT_TYPES)[number]> extends never ? true : never = true;
void everyTypeListed;

/** How many commits back the feed starts, and how many events it keeps. */
const FEED_BACKLOG_COMMITS = 500;
const FEED_KEEP = 1_000;
const FEED_SHOW = 200;
const REFRESH_DEBOUNCE_MS = 250;
/**
 * Liveness is not an event (a silent node makes none): the page asks for the computers this
 * often and re-reads everything when a node's liveness changed.
 */
const LIVENESS_POLL_MS = 5_000;

// --- what the master answers (@slap/api's views, with the fields of a live read) ---------------

/** A node's liveness, as the master tells it in a live read. */
interface Liveness {
  state: "responsive" | "unresponsive" | "unknown";
  lastSeen: string | null;
}
/** An instance as listed, with the liveness of the node it runs on. */
type Instance = InstanceView & { node?: (Liveness & { computerId: string }) | null };
/** A computer as listed, with its node's liveness. */
type Computer = ComputerView & { liveness?: Liveness };
/** One event of `/v1/events/stream` (its `event` field), secrets masked. */
interface EventItem {
  position: number;
  streamKey: string;
  event: DomainEvent;
}
type Requester = InstanceView["requester"];

// --- the token ---------------------------------------------------------------------------------

const TOKEN_KEY = "slap-token";
const linked = new URLSearchParams(location.hash.slice(1)).get("token");
if (linked) {
  sessionStorage.setItem(TOKEN_KEY, linked);
  history.replaceState(null, "", location.pathname + location.search);
}
const token = sessionStorage.getItem(TOKEN_KEY);
const headers: Record<string, string> = token ? { authorization: `Bearer ${token}` } : {};

/** The master refused the token (or none was given): the page asks for one. */
class Unauthorized extends Error {
  override name = "Unauthorized";
}

const state = {
  instances: {} as Record<string, Instance>,
  trees: [] as TreeView[],
  computers: [] as Computer[],
  events: [] as EventItem[],
  position: 0,
};

// --- DOM helpers (text only: nothing from the API is ever parsed as HTML) ----------------------

type Attributes = Record<string, string | number | boolean | null | undefined>;
type Child = Node | string | number | null | undefined | false | readonly Child[];

function append(el: HTMLElement, child: Child): void {
  if (child === undefined || child === null || child === false) return;
  if (typeof child === "string" || typeof child === "number") el.append(document.createTextNode(String(child)));
  else if (child instanceof Node) el.append(child);
  else for (const c of child) append(el, c);
}

function h<K extends keyof HTMLElementTagNameMap>(tag: K, attrs: Attributes = {}, ...children: Child[]): HTMLElementTagNameMap[K] {
  const el = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (value === undefined || value === null || value === false) continue;
    if (name === "class") el.className = String(value);
    else el.setAttribute(name, String(value));
  }
  for (const child of children) append(el, child);
  return el;
}

function $(id: string): HTMLElement {
  const el = document.getElementById(id);
  if (el === null) throw new Error(`the page has no #${id}`);
  return el;
}

/** The last segment of a release URL: "examples/software/kvdb" → "kvdb". */
function releaseName(url: string): string {
  return url.replace(/\/+$/, "").split("/").pop() || url;
}

function clock(iso: string | undefined): string {
  return typeof iso === "string" ? iso.slice(11, 19) : "";
}

/** "since …" for people: the time (UTC) when it is today, else the date and time. */
function sinceText(iso: string): string {
  const today = new Date().toISOString().slice(0, 10);
  return iso.slice(0, 10) === today ? `${iso.slice(11, 19)} UTC` : `${iso.slice(0, 10)} ${iso.slice(11, 19)} UTC`;
}

/** What a node's liveness says, in words. */
function livenessText(liveness: Liveness): string {
  if (liveness.state === "unresponsive") {
    return liveness.lastSeen ? `node unresponsive since ${sinceText(liveness.lastSeen)}` : "node unresponsive: not heard from since the master started";
  }
  if (liveness.state === "responsive") return "node responsive";
  return "node not heard from yet";
}

function referenceOf(instanceId: string): string {
  return state.instances[instanceId]?.reference ?? instanceId;
}

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

// --- API ---------------------------------------------------------------------------------------

/** A read of the master's API; its answer is typed by `@slap/api`, not parsed. */
async function getJson<T>(path: string): Promise<T> {
  const response = await fetch(path, { headers });
  if (response.status === 401) throw new Unauthorized(token ? "the master refused this token" : "the master needs a token");
  if (!response.ok) throw new Error(`${path}: HTTP ${response.status}`);
  return (await response.json()) as T;
}

/** Asks for a token; the page starts over with it. */
function signIn(reason: string): void {
  sessionStorage.removeItem(TOKEN_KEY);
  setLive("offline");
  const input = h("input", { type: "password", name: "token", autocomplete: "off", placeholder: "slap_…", required: true, "aria-label": "API token" });
  const form = h(
    "form",
    { id: "sign-in", class: "sign-in" },
    h("p", {}, `${reason}: paste an API token (\`npm start\` prints a link with one; the admin token is in the data folder's admin.token).`),
    input,
    h("button", { type: "submit" }, "Open"),
  );
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    sessionStorage.setItem(TOKEN_KEY, input.value.trim());
    location.reload();
  });
  $("trees").replaceChildren(form);
  input.focus();
}

async function refresh(): Promise<void> {
  const [instances, computers] = await Promise.all([getJson<InstanceList>("/v1/instances"), getJson<{ computers: Computer[] }>("/v1/computers")]);
  state.instances = Object.fromEntries(instances.instances.map((i) => [i.instanceId, i as Instance]));
  state.trees = instances.trees;
  state.computers = computers.computers;
  livenessSeen = livenessKey(state.computers);
  renderTrees();
  renderComputers();
  renderFilterOptions();
  renderFeed();
}

let refreshTimer: ReturnType<typeof setTimeout> | null = null;
let refreshing = false;
let refreshAgain = false;
/**
 * Re-reads the read models after events: at most one read in flight, and one more after it if
 * events came meanwhile, spaced by REFRESH_DEBOUNCE_MS — so a busy master is read a few times a
 * second per open page, not once per event.
 */
function scheduleRefresh(): void {
  if (refreshing) {
    refreshAgain = true;
    return;
  }
  if (refreshTimer !== null) return;
  refreshTimer = setTimeout(() => {
    refreshTimer = null;
    refreshing = true;
    refresh()
      .catch((error: unknown) => console.warn("refresh failed", error))
      .finally(() => {
        refreshing = false;
        if (refreshAgain) {
          refreshAgain = false;
          scheduleRefresh();
        }
      });
  }, REFRESH_DEBOUNCE_MS);
}

/** The computers' liveness states as one string: a change (not a newer heartbeat) re-reads the page's models. */
function livenessKey(computers: readonly Computer[]): string {
  return computers
    .map((c) => `${c.computerId}=${c.liveness?.state ?? "-"}${c.liveness?.state === "unresponsive" ? `@${c.liveness.lastSeen}` : ""}`)
    .sort()
    .join(",");
}
let livenessSeen = "";

async function pollLiveness(): Promise<void> {
  const { computers } = await getJson<{ computers: Computer[] }>("/v1/computers");
  if (livenessKey(computers) !== livenessSeen) scheduleRefresh();
}

let feedFrame: number | null = null;
/** Renders the feed once per animation frame, however many events arrived in it. */
function scheduleFeed(): void {
  if (feedFrame !== null) return;
  feedFrame = requestAnimationFrame(() => {
    feedFrame = null;
    renderFeed();
  });
}

/** Follows `/v1/events/stream` from `after`, calling `onEvent` per `event` message; resolves when the stream ends. */
async function follow(after: number, onEvent: (item: EventItem) => void): Promise<void> {
  const response = await fetch(`/v1/events/stream?after=${after}`, { headers });
  if (response.status === 401) throw new Unauthorized("the master refused this token");
  if (!response.ok || response.body === null) throw new Error(`event stream: HTTP ${response.status}`);
  setLive("live");
  const parser = createParser({
    onEvent: (message) => {
      if (message.event === "event" && message.data !== "") onEvent(JSON.parse(message.data) as EventItem);
    },
  });
  const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    parser.feed(value);
  }
}

function setLive(liveState: "connecting" | "live" | "reconnecting" | "offline"): void {
  const el = $("live");
  el.dataset.state = liveState;
  el.textContent = liveState;
}

async function followForever(): Promise<never> {
  let after = -1;
  let delay = 500;
  for (;;) {
    try {
      // Inside the loop: a master that is restarting or not up yet is retried, not given up on.
      if (after < 0) after = Math.max(0, (await getJson<{ position: number }>("/healthz")).position - FEED_BACKLOG_COMMITS);
      await follow(after, (item) => {
        after = item.position;
        delay = 500;
        receive(item);
      });
      setLive("reconnecting");
    } catch (error) {
      if (error instanceof Unauthorized) throw error;
      console.warn("event stream failed", error);
      setLive("reconnecting");
    }
    await sleep(delay);
    delay = Math.min(delay * 2, 10_000);
  }
}

function receive(item: EventItem): void {
  state.events.push(item);
  if (state.events.length > FEED_KEEP) state.events.splice(0, state.events.length - FEED_KEEP);
  state.position = Math.max(state.position, item.position);
  $("position").textContent = String(state.position);
  scheduleFeed();
  scheduleRefresh();
}

// --- the instance graph ------------------------------------------------------------------------

/** One word for where an instance is in its life. */
function statusOf(instance: Instance): string {
  if (instance.destroyed) return "destroyed";
  if (instance.status !== null) return instance.status.status;
  if (instance.shared) return instance.host === null ? "pending" : "attached";
  return instance.placement === null ? "pending" : "allocated";
}

function requesterLabel(requester: Requester): string {
  return requester.kind === "user" ? `user ${requester.userId}` : referenceOf(requester.instanceId);
}

function badge(text: string, kind: string, attrs: Attributes = {}): HTMLSpanElement {
  return h("span", { class: `badge badge-${kind}`, ...attrs }, text);
}

function instanceCard(instance: Instance): HTMLElement {
  const status = statusOf(instance);
  const s = instance.status;
  const where = instance.placement ?? (s && { computerId: s.computerId, partitionId: s.partitionId });
  const rows: HTMLElement[] = [];

  if (s !== null && s.processes.length > 0) {
    rows.push(
      h("div", { class: "row" }, h("span", { class: "row-label" }, "processes"),
        h("span", { class: "chips" }, s.processes.map((p) =>
          h("span", { class: `chip process process-${p.state}`, "data-process": p.name, "data-state": p.state, title: typeof p.pid === "number" && p.pid > 0 ? `pid ${p.pid}` : p.state },
            h("span", { class: "dot" }), p.name, " ", h("em", {}, p.state))))),
    );
  }
  if (s !== null && s.promises.length > 0) {
    rows.push(
      h("div", { class: "row" }, h("span", { class: "row-label" }, "promises"),
        h("span", { class: "chips" }, s.promises.map((p) =>
          h("span", { class: `chip promise promise-${p.ok ? "ok" : "fail"}`, "data-promise": p.name, "data-ok": String(p.ok), title: p.message || (p.ok ? "ok" : "failed") },
            p.ok ? "✓ " : "✗ ", p.name)))),
    );
  }
  const health = instance.health;
  if (health !== null && health !== undefined) {
    rows.push(h("div", { class: "row", "data-role": "health", "data-ok": String(health.ok) }, h("span", { class: "row-label" }, "health"),
      h("span", { class: health.ok ? "" : "message", title: health.message ?? "" }, `${health.ok ? "ok" : "failing"} since ${clock(health.since)}`)));
  }
  if (s !== null && s.waitingFor.length > 0) {
    rows.push(h("div", { class: "row" }, h("span", { class: "row-label" }, "waiting for"), h("span", {}, s.waitingFor.join(", "))));
  }
  if (s !== null && s.message && s.status !== "started") {
    rows.push(h("div", { class: "row" }, h("span", { class: "row-label" }, "message"), h("span", { class: "message" }, s.message)));
  }
  if (instance.node && instance.node.state === "unresponsive") {
    rows.push(h("div", { class: "row", "data-role": "node-liveness", "data-state": instance.node.state },
      h("span", { class: "row-label" }, "node"),
      h("span", { class: "unresponsive", title: instance.node.lastSeen ? `last heard from ${instance.node.lastSeen}` : "" }, livenessText(instance.node))));
  }
  if (instance.lastBang !== null) {
    const b = instance.lastBang;
    const service = typeof b.service === "string" && b.service !== "" ? `${b.service}: ` : "";
    rows.push(h("div", { class: "row" }, h("span", { class: "row-label" }, "last bang"),
      h("span", { class: "message" }, `${clock(b.at)} ${service}${b.message}`)));
  }
  if (instance.connection !== null && Object.keys(instance.connection).length > 0) {
    rows.push(
      h("table", { class: "connection" },
        h("caption", {}, "connection parameters"),
        h("tbody", {}, Object.entries(instance.connection).map(([name, value]) =>
          h("tr", { "data-parameter": name }, h("th", {}, name), h("td", { class: value.includes("********") ? "masked" : "" }, value))))),
    );
  }

  const unresponsive = instance.node?.state === "unresponsive";
  return h("article", { class: `card status-${status}${unresponsive ? " node-unresponsive" : ""}` },
    h("header", { class: "card-head" },
      h("span", { class: "reference" }, instance.reference),
      badge(status, status, { "data-role": "status" }),
      instance.requestedState !== "started" ? badge(`requested ${instance.requestedState}`, "muted") : null,
      instance.shared ? badge("shared", "muted") : null,
      unresponsive ? badge("node unresponsive", "error", { "data-role": "node-badge" }) : null,
      h("span", { class: "where", "data-role": "placement" },
        where ? `${where.computerId} / ${where.partitionId}` : instance.host ? `on ${referenceOf(instance.host.instanceId)}` : "not placed"),
    ),
    h("div", { class: "meta" },
      h("span", { title: instance.releaseUrl }, releaseName(instance.releaseUrl)),
      instance.softwareType !== "default" ? h("span", {}, instance.softwareType) : null,
      h("span", { "data-role": "requester" }, `requested by ${requesterLabel(instance.requester)}`),
      h("span", { class: "id", title: "instance id" }, instance.instanceId),
    ),
    rows,
  );
}

/** The instance and, nested under it, the instances it requested (and shared ones it hosts). */
function instanceNode(instance: Instance, childrenOf: ReadonlyMap<string, Instance[]>, seen: Set<string>): HTMLElement {
  seen.add(instance.instanceId);
  const children = (childrenOf.get(instance.instanceId) ?? []).filter((c) => !seen.has(c.instanceId));
  return h("li", { class: "node", "data-reference": instance.reference, "data-instance": instance.instanceId, "data-status": statusOf(instance) },
    instanceCard(instance),
    children.length > 0 ? h("ul", { class: "children" }, children.map((c) => instanceNode(c, childrenOf, seen))) : null,
  );
}

function renderTrees(): void {
  const all = Object.values(state.instances);
  const childrenOf = new Map<string, Instance[]>();
  for (const instance of all) {
    const parent = instance.requester.kind === "instance" ? instance.requester.instanceId : instance.host?.instanceId;
    if (parent === undefined || state.instances[parent] === undefined || parent === instance.instanceId) continue;
    const siblings = childrenOf.get(parent) ?? [];
    siblings.push(instance);
    childrenOf.set(parent, siblings);
  }
  const trees = [...state.trees].sort((a, b) =>
    String(state.instances[a.rootInstanceId]?.requestedAt).localeCompare(String(state.instances[b.rootInstanceId]?.requestedAt)));
  const seen = new Set<string>();
  const sections: HTMLElement[] = [];
  for (const tree of trees) {
    const root = state.instances[tree.rootInstanceId];
    if (root === undefined || seen.has(root.instanceId)) continue;
    const list = h("ul", { class: "tree-root" }, instanceNode(root, childrenOf, seen));
    // Instances of the tree not reached from its root (their requester is not visible): listed flat.
    const orphans = tree.instanceIds.map((id) => state.instances[id]).filter((i): i is Instance => i !== undefined && !seen.has(i.instanceId));
    for (const orphan of orphans) if (!seen.has(orphan.instanceId)) list.append(instanceNode(orphan, childrenOf, seen));
    const owner = root.requester.kind === "user" ? root.requester.userId : "?";
    sections.push(h("section", { class: "tree", "data-tree": tree.treeId },
      h("h3", {}, `tree ${root.reference}`, h("small", {}, ` · owner ${owner} · ${tree.instanceIds.length} instance${tree.instanceIds.length === 1 ? "" : "s"}`)),
      list));
  }
  const leftovers = all.filter((i) => !seen.has(i.instanceId));
  if (leftovers.length > 0) sections.push(h("section", { class: "tree" }, h("h3", {}, "other instances"), h("ul", { class: "tree-root" }, leftovers.map((i) => instanceNode(i, childrenOf, seen)))));
  $("trees").replaceChildren(...(sections.length > 0 ? sections : [h("p", { class: "empty" }, "No instance yet: request one (slap request …).")]));
  $("instances-count").textContent = `${all.length}`;
}

// --- computers ---------------------------------------------------------------------------------

function partitionBox(p: PartitionView): HTMLElement {
  const holder = p.instanceId === null ? null : referenceOf(p.instanceId);
  const retired = p.retired === true;
  return h("div", {
    class: `partition ${holder ? "used" : "free"}${retired ? " retired" : ""}`,
    "data-partition": p.partitionId,
    title: `${p.partitionId} ${p.address} ports ${p.ports.from}-${p.ports.to}${holder ? ` — ${holder}` : " — free"}${retired ? " (retired)" : ""}`,
  }, h("span", { class: "pid" }, p.partitionId), h("span", { class: "holder" }, holder ?? "free"));
}

function renderComputers(): void {
  const cards = state.computers
    .slice()
    .sort((a, b) => a.computerId.localeCompare(b.computerId))
    .map((computer) => {
      const partitions = Object.values(computer.partitions).sort((a, b) => a.partitionId.localeCompare(b.partitionId, "en", { numeric: true }));
      const used = partitions.filter((p) => p.instanceId !== null).length;
      const software = Object.values(computer.software);
      const liveness = computer.liveness;
      return h("article", { class: `computer${liveness ? ` node-${liveness.state}` : ""}`, "data-computer": computer.computerId },
        h("header", { class: "card-head" },
          h("span", { class: "reference" }, computer.computerId),
          computer.name ? h("span", { class: "meta-inline" }, computer.name) : null,
          h("span", { class: "where" }, `${used} / ${partitions.length} partitions used`)),
        liveness
          ? h("p", {
              class: `liveness liveness-${liveness.state}`,
              "data-role": "liveness",
              "data-state": liveness.state,
              title: liveness.lastSeen ? `last heard from ${liveness.lastSeen}` : "not heard from since the master started",
            }, livenessText(liveness))
          : null,
        h("div", { class: "partitions" }, partitions.map(partitionBox)),
        software.length > 0
          ? h("ul", { class: "releases" }, software.map((r) =>
              h("li", { "data-release": r.releaseUrl },
                h("span", { title: r.releaseUrl }, releaseName(r.releaseUrl)),
                badge(r.status, r.status === "available" ? "started" : r.status === "error" ? "error" : "muted"),
                r.supplied ? null : badge("unsupplied", "muted"))))
          : h("p", { class: "empty" }, "no release supplied"));
    });
  $("computers").replaceChildren(...(cards.length > 0 ? cards : [h("p", { class: "empty" }, "No computer registered.")]));
  $("computers-count").textContent = `${state.computers.length}`;
}

// --- the event feed ----------------------------------------------------------------------------

function summary(event: DomainEvent): string {
  const a = event.aggregate;
  const ref = a.kind === "instance" ? referenceOf(a.instanceId) : undefined;
  const where = a.kind === "partition" ? `${a.computerId}/${a.partitionId}` : undefined;
  switch (event.type) {
    case "ComputerRegistered":
      return `${event.aggregate.computerId} registered with ${event.data.partitions.length} partitions`;
    case "SoftwareSupplied":
      return `${releaseName(event.data.releaseUrl)} supplied on ${event.aggregate.computerId}`;
    case "SoftwareUnsupplied":
      return `${releaseName(event.data.releaseUrl)} unsupplied on ${event.aggregate.computerId}`;
    case "SoftwareReleaseStatusReported":
      return `${releaseName(event.data.releaseUrl)} on ${event.aggregate.computerId}: ${event.data.status}`;
    case "PartitionAllocated":
      return `${referenceOf(event.data.instanceId)} placed on ${where}`;
    case "PartitionReleased":
      return `${where} released by ${referenceOf(event.data.instanceId)} (${event.data.reason})`;
    case "InstanceRequested":
      return `${event.data.reference} (${releaseName(event.data.releaseUrl)}) requested by ${requesterLabel(event.data.requester)}`;
    case "InstanceParametersChanged":
      return event.data.releaseUrl === undefined ? `${ref}: parameters changed` : `${ref}: upgraded to ${releaseName(event.data.releaseUrl)}`;
    case "InstanceRequestedStateChanged":
      return `${ref} requested ${event.data.requestedState}`;
    case "SharedInstanceAttached":
      return `${ref} attached to ${referenceOf(event.data.hostInstanceId)}`;
    case "ConnectionParametersPublished":
      return `${ref} published ${Object.keys(event.data.parameters).join(", ") || "nothing"}`;
    case "InstanceStatusReported":
      return `${ref}: ${event.data.status}${event.data.waitingFor?.length ? ` for ${event.data.waitingFor.join(", ")}` : ""}`;
    case "InstanceBanged":
      return `${ref} banged: ${event.data.message}`;
    case "InstanceDestroyed":
      return `${ref} destroyed`;
    case "ComputerBanged":
      return `${event.aggregate.computerId} banged: ${event.data.message}`;
    default: {
      // A type this page does not know yet (a newer master): shown by name.
      const unknown: never = event;
      return String((unknown as { type: unknown }).type);
    }
  }
}

/** The instances, tree and computers an event is about (for the feed's filters). */
function subjectsOf(event: DomainEvent): { instances: Set<string>; trees: Set<string>; computers: Set<string> } {
  const a = event.aggregate;
  const d: Record<string, unknown> = event.data;
  const instances = new Set<string>();
  const trees = new Set<string>();
  const computers = new Set<string>();
  if (a.kind === "instance") {
    instances.add(a.instanceId);
    trees.add(a.treeId);
    const placed = state.instances[a.instanceId]?.placement;
    if (placed) computers.add(placed.computerId);
  } else computers.add(a.computerId);
  if (typeof d.instanceId === "string") {
    instances.add(d.instanceId);
    const tree = typeof d.treeId === "string" ? d.treeId : state.instances[d.instanceId]?.treeId;
    if (tree) trees.add(tree);
  }
  if (typeof d.hostInstanceId === "string") instances.add(d.hostInstanceId);
  if (typeof d.computerId === "string") computers.add(d.computerId);
  return { instances, trees, computers };
}

interface Filters {
  instance: string;
  tree: string;
  computer: string;
  type: string;
}

function select(name: keyof Filters): HTMLSelectElement {
  const form = $("filters") as HTMLFormElement;
  return form.elements.namedItem(name) as HTMLSelectElement;
}

function filters(): Filters {
  return { instance: select("instance").value, tree: select("tree").value, computer: select("computer").value, type: select("type").value };
}

function matches(item: EventItem, f: Filters): boolean {
  const event = item.event;
  if (f.type && event.type !== f.type) return false;
  if (!f.instance && !f.tree && !f.computer) return true;
  const s = subjectsOf(event);
  return (!f.instance || s.instances.has(f.instance)) && (!f.tree || s.trees.has(f.tree)) && (!f.computer || s.computers.has(f.computer));
}

function category(type: string): string {
  return type.startsWith("Instance") || type.startsWith("Shared") || type.startsWith("Connection") ? "instance" : type.startsWith("Partition") ? "partition" : "computer";
}

function renderFeed(): void {
  const f = filters();
  const shown: EventItem[] = [];
  for (let i = state.events.length - 1; i >= 0 && shown.length < FEED_SHOW; i--) {
    const item = state.events[i]!;
    if (matches(item, f)) shown.push(item);
  }
  $("feed").replaceChildren(...shown.map((item) =>
    h("li", { class: `event event-${category(item.event.type)}`, "data-type": item.event.type, "data-position": item.position },
      h("time", { datetime: item.event.time, title: item.event.time }, clock(item.event.time)),
      h("span", { class: "type", title: `${item.event.type} · position ${item.position} · ${item.streamKey}` }, item.event.type),
      h("span", { class: "summary" }, summary(item.event)))));
  if (shown.length === 0) $("feed").replaceChildren(h("li", { class: "empty" }, state.events.length === 0 ? "Waiting for events…" : "No event matches the filters."));
  $("feed-count").textContent = `${shown.length}${shown.length < state.events.length ? ` of ${state.events.length}` : ""}`;
}

/** Fills a select with `options` ([value, label]), keeping its selection. */
function setOptions(target: HTMLSelectElement, options: ReadonlyArray<readonly [string, string]>): void {
  const selected = target.value;
  const all: Array<readonly [string, string]> = [["", "all"], ...options];
  if (selected && !options.some(([v]) => v === selected)) all.push([selected, selected]);
  target.replaceChildren(...all.map(([value, label]) => h("option", { value }, label)));
  target.value = selected;
}

function renderFilterOptions(): void {
  const instances = Object.values(state.instances).sort((a, b) => a.reference.localeCompare(b.reference));
  setOptions(select("instance"), instances.map((i) => [i.instanceId, i.reference] as const));
  setOptions(select("tree"), state.trees.map((t) => [t.treeId, referenceOf(t.rootInstanceId)] as const));
  setOptions(select("computer"), state.computers.map((c) => [c.computerId, c.computerId] as const));
}

// --- start -------------------------------------------------------------------------------------

function actorText(actor: Actor): string {
  switch (actor.kind) {
    case "user":
      return actor.userId;
    case "node":
      return `node ${actor.computerId}`;
    default:
      return actor.kind;
  }
}

/** Who the token is (retried while the master is not up yet), then the models and the live feed. */
async function start(): Promise<void> {
  if (!token) {
    $("user").textContent = "nobody";
    return signIn("No token");
  }
  for (let delay = 500; ; delay = Math.min(delay * 2, 10_000)) {
    try {
      const { actor } = await getJson<{ actor: Actor }>("/v1/whoami");
      $("user").textContent = actorText(actor);
      break;
    } catch (error) {
      if (error instanceof Unauthorized) throw error;
      setLive("reconnecting");
      await sleep(delay);
    }
  }
  refresh().catch((error: unknown) => {
    if (error instanceof Unauthorized) return signIn(error.message);
    $("trees").replaceChildren(h("p", { class: "error" }, `Cannot read the master: ${error instanceof Error ? error.message : String(error)}`));
  });
  setInterval(() => {
    pollLiveness().catch((error: unknown) => console.warn("liveness poll failed", error));
  }, LIVENESS_POLL_MS);
  await followForever();
}

setOptions(select("type"), EVENT_TYPES.map((t) => [t, t] as const));
$("filters").addEventListener("change", () => renderFeed());
start().catch((error: unknown) => {
  if (error instanceof Unauthorized) return signIn(error.message);
  setLive("offline");
  console.warn(error);
});
