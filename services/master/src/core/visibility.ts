import { maskSecrets, type MASK, type Actor, type CloudView, type ComputerView, type DomainEvent, type InstanceView } from "@slap/events";
import type { Answer } from "./answer.js";
import { mayManage, type Rejection } from "./decide.js";

/**
 * Who may see what of the read models and the log, and what is masked: a pure function of the
 * actor and the read models, as the deciders are (the HTTP layer maps a refusal to its status).
 *
 * - A user sees the instances of their own trees (admin: all); a partition the tree of the
 *   instance it holds; a node none through the instance reads (it reads its own computer's).
 * - Of a computer, admin and nodes see who holds each partition; others see the holders they may
 *   see, and of the rest only that the partition is held (`HIDDEN`).
 * - A read as of a past moment shows what was visible then *and* is visible now: a partition
 *   sees the trees it holds now, not those it held before.
 * - Secret-looking values (by key name) are masked unless asked for.
 */

/** What a user is shown in place of the id of an instance it may not see. */
export const HIDDEN = "(another tree)";

/** The read models a read is answered from (`read`: live, or as of a past moment) and the live ones. */
export interface ReadModels {
  read: CloudView;
  live: CloudView;
  /** Whether `read` is as of a past moment (then visibility is checked against `live` too). */
  past: boolean;
}

/** A live read: `read` is `live`. */
export const liveRead = (live: CloudView): ReadModels => ({ read: live, live, past: false });

/** Whether the actor may see the instance in the read models (see the module's rules). */
export function maySee(actor: Actor, instance: InstanceView, models: ReadModels): boolean {
  return mayManage(instance, { actor, ...models.read }) === undefined && (!models.past || mayManage(instance, { actor, ...models.live }) === undefined);
}

/** The instance, if the actor may see it; else `NotFound`, the same as for an instance that does not exist. */
export function findInstance(actor: Actor, instanceId: string, models: ReadModels): InstanceView | Rejection {
  const instance = models.read.instances.instances[instanceId];
  if (instance === undefined || !maySee(actor, instance, models)) return { ok: false, reason: "NotFound", detail: `no instance ${instanceId}` };
  return instance;
}

/**
 * Whether the actor must be shown the instance before it is told that it may not change it:
 * instance ids derive from (requester, reference), so a user must not learn from a 403 or a 409
 * that someone else's instance exists. Nodes read the log, they know the ids anyway.
 */
export const mustSeeBeforeChanging = (actor: Actor): boolean => actor.kind === "user";

/** The instances the actor may see, in the read models. */
export function visibleInstances(actor: Actor, models: ReadModels): InstanceView[] {
  return Object.values(models.read.instances.instances).filter((i) => maySee(actor, i, models));
}

/** The shared instances a host carries that the actor may see: a host's owner does not see other users' shared instances on it. */
export function visibleSharedInstances(actor: Actor, host: InstanceView, models: ReadModels): InstanceView[] {
  return visibleInstances(actor, models).filter((i) => i.host?.instanceId === host.instanceId);
}

/**
 * A shared instance's pending reason names its host; when the SLA names (instance_guid) a host
 * the actor may not see, the reason must not describe it (its release, state, placement).
 */
export function guardReason(actor: Actor, instance: InstanceView, answer: Answer, models: ReadModels): Answer {
  const named = instance.shared ? instance.sla.instance_guid : undefined;
  if (answer.status !== "pending" || named === undefined || named === "") return answer;
  const host = models.read.instances.instances[named];
  if (host !== undefined && maySee(actor, host, models)) return answer;
  return { ...answer, reason: `waiting for a host: instance_guid ${named} is not a ready host this requester may use` };
}

/** Whether the actor sees who holds every partition of every computer: admin and nodes. */
const seesAllHolders = (actor: Actor): boolean => actor.kind === "node" || (actor.kind === "user" && actor.userId === "admin");

/**
 * A computer as the actor may see it: admin and nodes see who holds each partition; a user or a
 * partition sees the instances it may see, and of others' only that the partition is held.
 */
export function computerAsSeen(actor: Actor, computer: ComputerView, models: ReadModels): ComputerView {
  if (seesAllHolders(actor)) return computer;
  const shown = (instanceId: string): boolean => {
    const instance = models.read.instances.instances[instanceId];
    return instance !== undefined && maySee(actor, instance, models);
  };
  const partitions = Object.fromEntries(
    Object.entries(computer.partitions).map(([id, p]) => [
      id,
      {
        ...p,
        ...(p.instanceId !== null && !shown(p.instanceId) ? { instanceId: HIDDEN, treeId: HIDDEN } : {}),
        ...(p.supersededClaim !== null && !shown(p.supersededClaim.instanceId) ? { supersededClaim: { instanceId: HIDDEN, treeId: HIDDEN } } : {}),
      },
    ]),
  );
  return { ...computer, partitions };
}

/** Only admin may audit the read models against the log. */
export function mayAudit(actor: Actor): Rejection | undefined {
  return actor.kind === "user" && actor.userId === "admin" ? undefined : { ok: false, reason: "Forbidden", detail: "only admin may audit" };
}

/** Only the node of a computer (or one of its partitions) may send its heartbeat, once it is registered. */
export function mayHeartbeat(actor: Actor, computerId: string, live: CloudView): Rejection | undefined {
  if ((actor.kind !== "node" && actor.kind !== "partition") || actor.computerId !== computerId) {
    return { ok: false, reason: "Forbidden", detail: `only the node of computer ${computerId} may send its heartbeat` };
  }
  if (live.computers.computers[computerId] === undefined) return { ok: false, reason: "NotFound", detail: `no computer ${computerId}: register it first` };
  return undefined;
}

/**
 * Who may read a computer's desired state: its own node (or one of its partitions), and admins.
 * Another computer's node and a user may not: a desired state holds its tenants' parameters.
 */
export function mayReadDesired(actor: Actor, computerId: string, live: CloudView): Rejection | undefined {
  const own = (actor.kind === "node" || actor.kind === "partition") && actor.computerId === computerId;
  const admin = actor.kind === "user" && actor.userId === "admin";
  if (!own && !admin) return { ok: false, reason: "Forbidden", detail: `only the node of computer ${computerId} may read its desired state` };
  if (live.computers.computers[computerId] === undefined) return { ok: false, reason: "NotFound", detail: `no computer ${computerId}: register it first` };
  return undefined;
}

/** The tree an event is about, when it is about one (instance events, allocations). */
function treeOf(event: DomainEvent, live: CloudView): string | undefined {
  if (event.aggregate.kind === "instance") return event.aggregate.treeId;
  if (event.type === "PartitionAllocated") return event.data.treeId;
  if (event.type === "PartitionReleased") return live.instances.instances[event.data.instanceId]?.treeId;
  return undefined;
}

/**
 * What an actor may read of the log, judged by the live read models: admin everything; a user
 * the events of their own trees and of computers (public, as in `GET /v1/computers`); a
 * partition its own tree and computer; a node its own computer and the instances placed on it.
 */
export function mayReadEvent(actor: Actor, event: DomainEvent, live: CloudView): boolean {
  const tree = treeOf(event, live);
  const computerId = event.aggregate.kind === "instance" ? undefined : event.aggregate.computerId;
  const ownsTree = (): boolean => {
    const root = tree === undefined ? undefined : live.instances.instances[tree];
    return root !== undefined && mayManage(root, { actor, ...live }) === undefined;
  };
  switch (actor.kind) {
    case "user":
      return actor.userId === "admin" || (tree === undefined ? true : ownsTree());
    case "partition":
      return tree === undefined ? computerId === actor.computerId : ownsTree();
    case "node": {
      if (computerId !== undefined) return computerId === actor.computerId;
      const instanceId = event.aggregate.kind === "instance" ? event.aggregate.instanceId : undefined;
      return instanceId !== undefined && live.computers.bindings[instanceId]?.computerId === actor.computerId;
    }
    case "service":
      return false;
    default: {
      const never: never = actor;
      return never;
    }
  }
}

function maskMap<V>(map: Record<string, V> | null, show: boolean): Record<string, V | typeof MASK> | null {
  return map === null || show ? map : maskSecrets(map);
}

/** An instance as shown: secrets masked (by key name) in its connection and its request parameters, unless `show`. */
export function maskInstance(instance: InstanceView, show: boolean): InstanceView {
  return { ...instance, parameters: maskMap(instance.parameters, show) ?? {}, connection: maskMap(instance.connection, show) };
}

/** An answer as shown: a ready answer's connection masked unless `show`. */
export function maskAnswer(answer: Answer, show: boolean): Answer {
  return answer.status === "ready" ? { ...answer, connection: maskMap(answer.connection, show) ?? {} } : answer;
}

/** An event of the log as shown: secret-looking parameter values masked, as in the instance views, unless `show`. */
export function maskEvent(event: DomainEvent, show: boolean): DomainEvent {
  if (show) return event;
  switch (event.type) {
    case "ConnectionParametersPublished":
      return { ...event, data: { ...event.data, parameters: maskMap(event.data.parameters, false) ?? {} } };
    case "InstanceRequested":
    case "InstanceParametersChanged":
      return { ...event, data: { ...event.data, parameters: maskMap(event.data.parameters, false) ?? {} } } as DomainEvent;
    default:
      return event;
  }
}
