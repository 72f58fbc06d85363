import type { CloudView, InstanceView } from "@slap/events";
import { naturalCompare } from "./order.js";
import { parseSla } from "./sla.js";

export type AttachRejectionReason = "NoReadyHost" | "SlaUnsatisfiable" | "UnknownSlaKey";

/**
 * A host decision for a shared instance. `version` is the shared instance's stream version:
 * `SharedInstanceAttached` is appended to that stream with it as expected version.
 */
export type Attachment =
  | { ok: true; hostInstanceId: string; hostTreeId: string; version: number }
  | { ok: false; reason: AttachRejectionReason; detail: string };

interface HostCandidate {
  instance: InstanceView;
  computerId: string;
  /** Shared instances attached to it (or being attached by this replica). */
  attached: number;
}

const hostKey = (releaseUrl: string, softwareType: string): string => `${softwareType}\u0000${releaseUrl}`;

/**
 * Whether an instance can serve shared instances of `releaseUrl` / `softwareType`: non-shared,
 * not destroyed, requested started, bound to a partition and with its connection parameters
 * published (it is up). Answers why not, or null when it is ready.
 */
export function hostUnreadiness(
  host: InstanceView | undefined,
  wanted: { releaseUrl: string; softwareType: string },
  view: CloudView,
): string | null {
  if (host === undefined) return "no such instance";
  if (host.shared) return "it is a shared instance itself";
  if (host.releaseUrl !== wanted.releaseUrl) return `it runs ${host.releaseUrl}, not ${wanted.releaseUrl}`;
  if (host.softwareType !== wanted.softwareType) return `its software type is ${host.softwareType}, not ${wanted.softwareType}`;
  if (host.destroyed || host.requestedState === "destroyed") return "it is destroyed";
  if (host.requestedState !== "started") return `it is ${host.requestedState}`;
  if (view.computers.bindings[host.instanceId] === undefined) return "it is not placed yet";
  if (host.connection === null) return "it has not published its connection parameters yet";
  return null;
}

/**
 * Ready hosts by release and software type, with how many shared instances each serves.
 * Built in one pass over the instances; `noteAttached` counts an attachment decided but not
 * yet in the view, so consecutive decisions spread over the hosts.
 */
export class HostIndex {
  private readonly byKey = new Map<string, HostCandidate[]>();
  private readonly byId = new Map<string, HostCandidate>();

  static fromView(view: CloudView): HostIndex {
    const index = new HostIndex();
    const instances = Object.values(view.instances.instances);
    for (const instance of instances) {
      if (instance.shared || hostUnreadiness(instance, instance, view) !== null) continue;
      const candidate: HostCandidate = {
        instance,
        computerId: view.computers.bindings[instance.instanceId]!.computerId,
        attached: 0,
      };
      const key = hostKey(instance.releaseUrl, instance.softwareType);
      const list = index.byKey.get(key);
      if (list === undefined) index.byKey.set(key, [candidate]);
      else list.push(candidate);
      index.byId.set(instance.instanceId, candidate);
    }
    for (const instance of instances) {
      if (instance.host === null || instance.destroyed) continue;
      const candidate = index.byId.get(instance.host.instanceId);
      if (candidate !== undefined) candidate.attached++;
    }
    return index;
  }

  candidates(releaseUrl: string, softwareType: string): readonly HostCandidate[] {
    return this.byKey.get(hostKey(releaseUrl, softwareType)) ?? [];
  }

  noteAttached(hostInstanceId: string): void {
    const candidate = this.byId.get(hostInstanceId);
    if (candidate !== undefined) candidate.attached++;
  }
}

export interface AttachOptions {
  /** A host index of the view (built from it when absent: one pass over every instance). */
  hosts?: HostIndex;
}

/**
 * Chooses the host of a shared instance: a ready host (`hostUnreadiness` is null) of the same
 * release and software type. SLA `instance_guid` names the host (pending, with the reason,
 * while that instance is not a ready host); `computer_guid` / `network_guid` restrict hosts
 * to those placed on such computers. Otherwise the ready host serving the fewest shared
 * instances, ties by natural instance id: deterministic, and it spreads shared instances
 * (e.g. frontend slaves) over the hosts.
 */
export function attachHost(shared: InstanceView, view: CloudView, options: AttachOptions = {}): Attachment {
  if (!shared.shared) throw new TypeError(`attachHost(): ${shared.instanceId} is not a shared instance; use place()`);
  const parsed = parseSla(shared.sla, true);
  if (!parsed.ok) return parsed;
  const { sla } = parsed;
  const what = `${shared.releaseUrl} (software type ${shared.softwareType})`;
  const onComputer = (computerId: string): boolean =>
    (sla.computerId === null || computerId === sla.computerId) &&
    (sla.networkId === null || view.computers.computers[computerId]?.networkId === sla.networkId);

  if (sla.instanceId !== null) {
    const host = view.instances.instances[sla.instanceId];
    const why = hostUnreadiness(host, shared, view);
    if (why !== null) return { ok: false, reason: "SlaUnsatisfiable", detail: `SLA instance_guid=${sla.instanceId}: not a ready host of ${what}: ${why}` };
    const computerId = view.computers.bindings[host!.instanceId]!.computerId;
    if (!onComputer(computerId)) {
      return { ok: false, reason: "SlaUnsatisfiable", detail: `SLA ${sla.constraints.join(", ")}: host ${sla.instanceId} is on ${computerId}` };
    }
    return { ok: true, hostInstanceId: host!.instanceId, hostTreeId: host!.treeId, version: shared.version };
  }

  const hosts = (options.hosts ?? HostIndex.fromView(view)).candidates(shared.releaseUrl, shared.softwareType);
  if (hosts.length === 0) {
    return {
      ok: false,
      reason: "NoReadyHost",
      detail: `no ready host instance of ${what}: a host is a started instance that is placed and has published its connection parameters`,
    };
  }
  let best: HostCandidate | undefined;
  for (const candidate of hosts) {
    if (!onComputer(candidate.computerId)) continue;
    if (
      best === undefined ||
      candidate.attached < best.attached ||
      (candidate.attached === best.attached && naturalCompare(candidate.instance.instanceId, best.instance.instanceId) < 0)
    ) {
      best = candidate;
    }
  }
  if (best === undefined) {
    const n = hosts.length;
    return {
      ok: false,
      reason: "SlaUnsatisfiable",
      detail: `SLA ${sla.constraints.join(", ")}: none of the ${n} ready host${n === 1 ? "" : "s"} of ${what} is on such a computer`,
    };
  }
  return { ok: true, hostInstanceId: best.instance.instanceId, hostTreeId: best.instance.treeId, version: shared.version };
}
