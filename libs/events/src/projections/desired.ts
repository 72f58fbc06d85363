import { createHash } from "node:crypto";
import type { Projection } from "../projection.js";
import type { DomainEvent, StringMap } from "../schemas.js";
import { cloudProjection, type CloudView } from "./cloud.js";
import type { SoftwareStatus } from "./computers.js";
import type { InstanceView } from "./instances.js";

/**
 * One computer's desired state (README.md, "A node sees only its own computer"): what its node
 * must make true, and nothing of other computers or tenants. The master serves it to the node
 * (`GET /v1/computers/:id/desired`, a blocking query on `revision`, as Nomad's clients block on
 * their allocations' index and a kubelet watches the pods bound to its node).
 */
export interface DesiredState {
  computerId: string;
  /** The log position of the last commit that changed this document: a watch asks for a newer one. */
  revision: number;
  /** The log position of the read models this document was read from. */
  position: number;
  partitions: DesiredPartition[];
  /** The releases supplied to the computer (or still installed there), with the status last reported. */
  software: DesiredSoftware[];
}

export interface DesiredPartition {
  partitionId: string;
  address: string;
  ports: { from: number; to: number };
  /**
   * The log position of the last commit that changed anything of this entry the node acts on
   * (its instance's parameters, state or serial, a shared instance's, a requested instance's
   * connection). The node records the revision a processing used; a newer one means another run.
   */
  revision: number;
  /** The instance the partition holds, or null. */
  instance: DesiredInstance | null;
}

/** The instance as its node needs it; `serial` is the instances read model's (bumps, bangs), part of what the revision follows. */
export interface DesiredInstance extends Pick<InstanceView, "instanceId" | "treeId" | "reference" | "releaseUrl" | "softwareType" | "parameters" | "requestedState" | "serial"> {
  /** Reported destroyed: the node has nothing more to do (the partition is released next). */
  destroyed: boolean;
  /** The shared instances attached to it (those not destroyed). */
  sharedInstances: DesiredShared[];
  /** What `slap.request` returns for the instances it requested that published connection parameters (not destroyed). */
  requested: DesiredRequested[];
}

export type DesiredShared = Pick<InstanceView, "instanceId" | "reference" | "parameters" | "requestedState" | "serial">;

export interface DesiredRequested {
  instanceId: string;
  reference: string;
  connection: StringMap;
}

export interface DesiredSoftware {
  releaseUrl: string;
  supplied: boolean;
  status: SoftwareStatus;
}

/** What the master keeps per computer to serve its desired state: revisions and the fingerprints they follow. */
export interface DesiredComputerView {
  revision: number;
  software: { revision: number; hash: string };
  partitions: Record<string, { revision: number; hash: string }>;
}

/**
 * The desired-state read model: per computer, the revisions of its entries; and the two indexes
 * an entry needs so it is built from its own instances only, never a scan of the cloud.
 */
export interface DesiredView {
  computers: Record<string, DesiredComputerView>;
  /** Shared instance ids by host instance id. */
  shared: Record<string, string[]>;
  /** Instance ids by the instance that requested them. */
  requested: Record<string, string[]>;
}

/** The master's read models: the cloud's, and the per-computer desired states folded with it at the same position. */
export interface MasterView extends CloudView {
  desired: DesiredView;
}

/** Events that may bump the serial of other instances of the tree (bangs, requests, state changes): their whole tree is looked at. */
const TREE_WIDE = new Set<DomainEvent["type"]>([
  "InstanceRequested",
  "InstanceParametersChanged",
  "InstanceRequestedStateChanged",
  "SharedInstanceAttached",
  "ConnectionParametersPublished",
  "InstanceBanged",
  "InstanceDestroyed",
]);

/**
 * The cloud read models and the desired states, as one projection. A commit changes a
 * partition's revision only when the partition's entry (as `desiredPartitionOf` builds it) is
 * different afterwards: its fingerprint is compared, so a status report or an event of another
 * computer's instance changes nothing here, and whatever bumps an instance's serial (the
 * instances read model decides that) changes the revision of the partition holding it.
 */
export const masterProjection: Projection<MasterView> = {
  name: "master",
  version: cloudProjection.version * 10 + 1,
  initial: () => ({ ...cloudProjection.initial(), desired: { computers: {}, shared: {}, requested: {} } }),
  evolve(state, event, position) {
    cloudProjection.evolve(state, event, position);
    indexEvent(state, event);
    const touched = new Map<string, Set<string>>();
    const touch = (computerId: string, partitionId: string): void => {
      let set = touched.get(computerId);
      if (set === undefined) touched.set(computerId, (set = new Set()));
      set.add(partitionId);
    };
    const software = new Set<string>();
    switch (event.aggregate.kind) {
      case "computer":
        // A new partition list, or a computer bang (every instance on it is processed again).
        if (event.type === "ComputerRegistered" || event.type === "ComputerBanged") {
          for (const partitionId of Object.keys(state.computers.computers[event.aggregate.computerId]?.partitions ?? {})) touch(event.aggregate.computerId, partitionId);
        }
        software.add(event.aggregate.computerId);
        break;
      case "partition":
        touch(event.aggregate.computerId, event.aggregate.partitionId);
        break;
      case "instance":
        for (const instance of candidates(state, event as InstanceEvent)) {
          if (instance.placement !== null) touch(instance.placement.computerId, instance.placement.partitionId);
        }
        break;
      default:
        unreachable(event.aggregate);
    }
    for (const computerId of software) {
      const computer = state.computers.computers[computerId];
      if (computer === undefined) continue;
      const record = desiredRecord(state.desired, computerId);
      const hash = fingerprint(desiredSoftwareOf(computer.software));
      if (hash !== record.software.hash) {
        record.software = { revision: position, hash };
        record.revision = position;
      }
    }
    for (const [computerId, partitionIds] of touched) {
      if (state.computers.computers[computerId] === undefined) continue;
      const record = desiredRecord(state.desired, computerId);
      for (const partitionId of partitionIds) {
        const entry = desiredPartitionOf(state, computerId, partitionId, 0);
        const hash = entry === undefined ? "" : fingerprint(entry);
        if (record.partitions[partitionId]?.hash === hash) continue;
        record.partitions[partitionId] = { revision: position, hash };
        record.revision = position;
      }
    }
    return state;
  },
};

/** Keeps the shared and requested indexes: who hosts whom, who requested whom. */
function indexEvent(state: MasterView, event: DomainEvent): void {
  if (event.type === "SharedInstanceAttached") {
    const host = event.data.hostInstanceId;
    const list = (state.desired.shared[host] ??= []);
    if (!list.includes(event.aggregate.instanceId)) list.push(event.aggregate.instanceId);
  } else if (event.type === "InstanceRequested" && event.data.requester.kind === "instance") {
    const list = (state.desired.requested[event.data.requester.instanceId] ??= []);
    if (!list.includes(event.aggregate.instanceId)) list.push(event.aggregate.instanceId);
  }
}

/**
 * The instances whose partition's entry an instance event may change: the instance, its host
 * and its requester; for an event that may bump others, every instance of its tree and their
 * hosts too (a bang reaches the tree, a shared instance's change its host).
 */
type InstanceEvent = Extract<DomainEvent, { aggregate: { kind: "instance" } }>;

function candidates(state: MasterView, event: InstanceEvent): Set<InstanceView> {
  const instances = state.instances.instances;
  const out = new Set<InstanceView>();
  const add = (instance: InstanceView | undefined): void => {
    if (instance === undefined || out.has(instance)) return;
    out.add(instance);
    if (instance.host !== null) {
      const host = instances[instance.host.instanceId];
      if (host !== undefined) out.add(host);
    }
    if (instance.requester.kind === "instance") {
      const requester = instances[instance.requester.instanceId];
      if (requester !== undefined) out.add(requester);
    }
  };
  add(instances[event.aggregate.instanceId]);
  if (TREE_WIDE.has(event.type)) {
    for (const id of state.instances.trees[event.aggregate.treeId]?.instanceIds ?? []) add(instances[id]);
  }
  return out;
}

function desiredRecord(desired: DesiredView, computerId: string): DesiredComputerView {
  return (desired.computers[computerId] ??= { revision: 0, software: { revision: 0, hash: "" }, partitions: {} });
}

function fingerprint(value: unknown): string {
  return createHash("sha256").update(JSON.stringify(value)).digest("base64url").slice(0, 22);
}

function desiredSoftwareOf(software: CloudView["computers"]["computers"][string]["software"]): DesiredSoftware[] {
  return Object.values(software)
    .filter((s) => s.supplied || s.status !== "destroyed")
    .map((s) => ({ releaseUrl: s.releaseUrl, supplied: s.supplied, status: s.status }))
    .sort((a, b) => (a.releaseUrl < b.releaseUrl ? -1 : a.releaseUrl > b.releaseUrl ? 1 : 0));
}

/** One partition's entry of a computer's desired state, with `revision` (undefined: no such partition). */
function desiredPartitionOf(view: MasterView, computerId: string, partitionId: string, revision: number): DesiredPartition | undefined {
  const partition = view.computers.computers[computerId]?.partitions[partitionId];
  if (partition === undefined) return undefined;
  const instances = view.instances.instances;
  const held = partition.instanceId === null ? undefined : instances[partition.instanceId];
  let instance: DesiredInstance | null = null;
  if (held !== undefined) {
    const shared: DesiredShared[] = [];
    for (const id of view.desired.shared[held.instanceId] ?? []) {
      const s = instances[id];
      if (s === undefined || s.destroyed || s.host?.instanceId !== held.instanceId) continue;
      shared.push({ instanceId: s.instanceId, reference: s.reference, parameters: { ...s.parameters }, requestedState: s.requestedState, serial: s.serial });
    }
    const requested: DesiredRequested[] = [];
    for (const id of view.desired.requested[held.instanceId] ?? []) {
      const r = instances[id];
      if (r === undefined || r.destroyed || r.requestedState === "destroyed" || r.connection === null) continue;
      requested.push({ instanceId: r.instanceId, reference: r.reference, connection: { ...r.connection } });
    }
    instance = {
      instanceId: held.instanceId,
      treeId: held.treeId,
      reference: held.reference,
      releaseUrl: held.releaseUrl,
      softwareType: held.softwareType,
      parameters: { ...held.parameters },
      requestedState: held.requestedState,
      serial: held.serial,
      destroyed: held.destroyed,
      sharedInstances: shared,
      requested,
    };
  }
  return { partitionId, address: partition.address, ports: { from: partition.ports.from, to: partition.ports.to }, revision, instance };
}

/** A computer's desired state as of `view` (undefined: no such computer). Costs its own partitions' instances, not the cloud's. */
export function desiredStateOf(view: MasterView, computerId: string, position: number): DesiredState | undefined {
  const computer = view.computers.computers[computerId];
  if (computer === undefined) return undefined;
  const record = view.desired.computers[computerId];
  const partitions = Object.keys(computer.partitions)
    .sort((a, b) => a.localeCompare(b, "en", { numeric: true }))
    .map((partitionId) => desiredPartitionOf(view, computerId, partitionId, record?.partitions[partitionId]?.revision ?? 0)!);
  return { computerId, revision: record?.revision ?? 0, position, partitions, software: desiredSoftwareOf(computer.software) };
}

/** The revision of a computer's desired state (0: never changed). */
export function desiredRevisionOf(view: MasterView, computerId: string): number {
  return view.desired.computers[computerId]?.revision ?? 0;
}

function unreachable(value: never): never {
  throw new Error(`unhandled aggregate ${JSON.stringify(value)}`);
}
