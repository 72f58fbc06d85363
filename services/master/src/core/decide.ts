import {
  canonicalJson,
  instanceIdFor,
  normalizeParameters,
  type Actor,
  type ComputersView,
  type ParametersSchema,
  type DomainEvent,
  type EventOf,
  type ExpectedVersion,
  type InstancesView,
  type InstanceView,
  type Requester,
} from "@slap/events";
import { checkParameters } from "@slap/api";
import type {
  Bang,
  BangComputer,
  PublishConnectionParameters,
  RegisterComputer,
  ReportInstanceStatus,
  ReportSoftwareStatus,
  RequestInstance,
  SupplySoftware,
} from "@slap/api";

/** What the decider needs besides the command: who sends it, the read models, a clock and ids. */
export interface DecisionContext {
  actor: Actor;
  computers: ComputersView;
  instances: InstancesView;
  /** ISO time of the decision. */
  now: string;
  newId: () => string;
  /** The event or command that caused this one, and the story it belongs to (default: the first new event). */
  causationId?: string;
  correlationId?: string;
}

/** One append: events of one stream, with the version they were decided against. */
export interface Append {
  events: DomainEvent[];
  expectedVersion: ExpectedVersion;
}

export type Rejection =
  | { ok: false; reason: "Forbidden"; detail: string }
  | { ok: false; reason: "NotFound"; detail: string }
  | { ok: false; reason: "Conflict"; detail: string }
  /** The release's schema refuses the parameters (HTTP 400, naming the parameter). */
  | { ok: false; reason: "BadParameters"; detail: string; parameter: string };

export type Decision = { ok: true; instanceId?: string; appends: Append[] } | Rejection;

const reject = (reason: Exclude<Rejection["reason"], "BadParameters">, detail: string): Rejection => ({ ok: false, reason, detail });

/**
 * The parameters schema of a release as a node reported it with the release available (the
 * first computer that did: one URL is one release). Undefined while no node has.
 */
export function parametersSchemaOf(releaseUrl: string, computers: ComputersView): ParametersSchema | undefined {
  for (const computer of Object.values(computers.computers)) {
    const software = computer.software[releaseUrl];
    if (software?.status === "available" && software.parametersSchema !== null) return software.parametersSchema;
  }
  return undefined;
}

function envelope(ctx: DecisionContext, id = ctx.newId()) {
  return {
    schemaVersion: 1 as const,
    id,
    time: ctx.now,
    correlationId: ctx.correlationId ?? id,
    causationId: ctx.causationId ?? ctx.correlationId ?? id,
    actor: ctx.actor,
  };
}

type InstanceReportType = "InstanceBanged" | "ConnectionParametersPublished" | "InstanceStatusReported";

/**
 * One event on an instance's own stream, continuing its story. Appended without a version
 * check: reports and bangs do not depend on the instance's state, only on who sends them.
 */
function report<T extends InstanceReportType>(current: InstanceView, ctx: DecisionContext, type: T, data: EventOf<T>["data"]): Decision {
  const event = {
    ...envelope(ctx),
    correlationId: ctx.correlationId ?? current.correlationId,
    type,
    aggregate: { kind: "instance" as const, treeId: current.treeId, instanceId: current.instanceId },
    data,
  } as EventOf<T>;
  return { ok: true, instanceId: current.instanceId, appends: [{ expectedVersion: "any", events: [event] }] };
}

/** The instance a partition actor holds, which makes it a requester, or a rejection. */
export function requesterOf(ctx: DecisionContext): Requester | Rejection {
  const actor = ctx.actor;
  switch (actor.kind) {
    case "user":
      return { kind: "user", userId: actor.userId };
    case "partition": {
      const held = ctx.computers.computers[actor.computerId]?.partitions[actor.partitionId]?.instanceId ?? null;
      const instance = held === null ? undefined : ctx.instances.instances[held];
      if (instance === undefined) return reject("Forbidden", `partition ${actor.computerId}/${actor.partitionId} holds no instance, so it cannot request`);
      return { kind: "instance", instanceId: instance.instanceId, treeId: instance.treeId };
    }
    case "node":
    case "service":
      return reject("Forbidden", `a ${actor.kind} cannot request instances`);
    default: {
      const never: never = actor;
      return never;
    }
  }
}

/** The id and tree an instance requested by `requester` with `reference` has (or will have). */
export function keyOf(requester: Requester, reference: string): { instanceId: string; treeId: string } {
  if (requester.kind === "user") {
    const instanceId = instanceIdFor({ kind: "user", userId: requester.userId }, reference);
    return { instanceId, treeId: instanceId };
  }
  return { instanceId: instanceIdFor({ kind: "tree", treeId: requester.treeId }, reference), treeId: requester.treeId };
}

const sameMap = (a: Record<string, string>, b: Record<string, string>): boolean => {
  const keys = Object.keys(a);
  return keys.length === Object.keys(b).length && keys.every((k) => a[k] === b[k]);
};

/**
 * `request`: the same arguments again decide nothing; changed parameters, software type, SLA or
 * release (an upgrade in place: same instance, same partition) decide one
 * `InstanceParametersChanged`; a changed state decides one
 * `InstanceRequestedStateChanged`; when a root's state changes, every other instance of its
 * tree whose state differs gets one too (stopping or destroying a root reaches its whole tree
 * at once).
 * Another shared flag under the same reference is a conflict, and so is another release for a
 * shared instance (its host serves one release).
 */
export function decideRequest(command: RequestInstance, ctx: DecisionContext, onBehalfOf?: Requester): Decision {
  const requester = onBehalfOf ?? requesterOf(ctx);
  if ("ok" in requester) return requester;
  const { instanceId, treeId } = keyOf(requester, command.reference);
  const aggregate = { kind: "instance" as const, treeId, instanceId };
  const parameters = normalizeParameters(command.parameters);
  const sla = normalizeParameters(command.sla);
  const root = requester.kind === "instance" ? ctx.instances.instances[requester.treeId] : undefined;
  if (root?.requestedState === "destroyed" && command.state !== "destroyed") {
    return reject("Conflict", `tree ${root.treeId} is being destroyed: it takes no ${command.state} instance`);
  }
  // Checked before placement when the master knows the release's schema, when they (or the
  // release) change: a destroy, or a state change of an instance requested earlier, is never
  // refused. Not a shared instance's: the schema is the host's own (SlapOS has another for them).
  const current = ctx.instances.instances[instanceId];
  const changing = current === undefined || current.releaseUrl !== command.releaseUrl || canonicalJson(current.parameters) !== canonicalJson(parameters);
  if (changing && command.state !== "destroyed" && !command.shared) {
    const checked = checkParameters(parameters, parametersSchemaOf(command.releaseUrl, ctx.computers));
    if (!checked.ok) return { ok: false, reason: "BadParameters", detail: `${command.releaseUrl} refuses the parameters: ${checked.message}`, parameter: checked.parameter };
  }
  if (current === undefined) {
    return {
      ok: true,
      instanceId,
      appends: [
        {
          expectedVersion: 0,
          events: [
            {
              ...envelope(ctx),
              type: "InstanceRequested",
              aggregate,
              data: {
                reference: command.reference,
                releaseUrl: command.releaseUrl,
                softwareType: command.softwareType,
                parameters,
                sla,
                shared: command.shared,
                requestedState: command.state,
                requester,
              },
            },
          ],
        },
      ],
    };
  }
  if (current.shared !== command.shared) {
    return reject("Conflict", `${command.reference} was requested with shared=${current.shared}; it cannot change`);
  }
  const upgrade = current.releaseUrl !== command.releaseUrl;
  if (upgrade && current.shared) {
    return reject("Conflict", `${command.reference} is a shared instance of release ${current.releaseUrl}, served by a host of that release; destroy it or use another reference for ${command.releaseUrl}`);
  }
  const ownEvents: DomainEvent[] = [];
  const base = { ...envelope(ctx, ctx.newId()), correlationId: ctx.correlationId ?? current.correlationId };
  if (upgrade || current.softwareType !== command.softwareType || canonicalJson(current.parameters) !== canonicalJson(parameters) || !sameMap(current.sla, sla)) {
    ownEvents.push({
      ...base,
      type: "InstanceParametersChanged",
      aggregate,
      data: { parameters, softwareType: command.softwareType, sla, ...(upgrade ? { releaseUrl: command.releaseUrl } : {}) },
    });
  }
  const appends: Append[] = [];
  if (current.requestedState !== command.state) {
    ownEvents.push({
      ...base,
      id: ownEvents.length === 0 ? base.id : ctx.newId(),
      type: "InstanceRequestedStateChanged",
      aggregate,
      data: { requestedState: command.state },
    });
  }
  if (ownEvents.length > 0) appends.push({ events: ownEvents, expectedVersion: current.version });
  // A root's state change reaches its whole tree at once. Only a change cascades, so the same
  // request again stays idempotent (a child its parent stopped is not restarted by a poll).
  if (current.instanceId === current.treeId && current.requestedState !== command.state) {
    appends.push(...cascadeState(current, command.state, ctx, base.id));
  }
  return { ok: true, instanceId, appends };
}

/** State changes for every other instance of a root's tree whose requested state differs. */
function cascadeState(root: InstanceView, state: InstanceView["requestedState"], ctx: DecisionContext, causationId: string): Append[] {
  const tree = ctx.instances.trees[root.treeId];
  const appends: Append[] = [];
  for (const id of tree?.instanceIds ?? []) {
    const member = ctx.instances.instances[id];
    if (member === undefined || member.instanceId === root.instanceId || member.requestedState === state) continue;
    appends.push({
      expectedVersion: member.version,
      events: [
        {
          ...envelope(ctx),
          correlationId: ctx.correlationId ?? root.correlationId,
          causationId,
          type: "InstanceRequestedStateChanged",
          aggregate: { kind: "instance", treeId: member.treeId, instanceId: member.instanceId },
          data: { requestedState: state },
        },
      ],
    });
  }
  return appends;
}

/** Changes the requested state of an instance by id (the owner, or any requester of its tree). */
export function decideStateChange(instanceId: string, state: InstanceView["requestedState"], ctx: DecisionContext): Decision {
  const current = ctx.instances.instances[instanceId];
  if (current === undefined) return reject("NotFound", `no instance ${instanceId}`);
  const denied = mayChange(current, ctx);
  if (denied !== undefined) return denied;
  const requester = current.requester;
  const command: RequestInstance = {
    releaseUrl: current.releaseUrl,
    reference: current.reference,
    softwareType: current.softwareType,
    parameters: current.parameters,
    sla: current.sla,
    shared: current.shared,
    state,
  };
  // Decided on behalf of the instance's requester (same key, same tree), recorded as the real actor.
  return decideRequest(command, ctx, requester);
}

/** Users see and change only their own trees (admin: every tree); partitions only their own tree. */
export function mayManage(instance: InstanceView, ctx: Pick<DecisionContext, "actor" | "computers" | "instances">): Rejection | undefined {
  const actor = ctx.actor;
  const root = ctx.instances.instances[instance.treeId];
  const owner = root?.requester.kind === "user" ? root.requester.userId : undefined;
  if (actor.kind === "user" && (actor.userId === "admin" || actor.userId === owner)) return undefined;
  if (actor.kind === "partition") {
    const held = ctx.computers.computers[actor.computerId]?.partitions[actor.partitionId]?.instanceId;
    const heldInstance = held === null || held === undefined ? undefined : ctx.instances.instances[held];
    if (heldInstance?.treeId === instance.treeId) return undefined;
  }
  return reject("Forbidden", `${describeActor(actor)} may not change instance ${instance.instanceId}`);
}

/**
 * Who may change an instance (its state, a bang): its tree's owner and admin, as `mayManage`;
 * of partitions, only the one holding it and the one holding its requester — a partition cannot
 * stop or destroy the rest of its tree.
 */
export function mayChange(instance: InstanceView, ctx: DecisionContext): Rejection | undefined {
  const actor = ctx.actor;
  if (actor.kind !== "partition") return mayManage(instance, ctx);
  const held = ctx.computers.computers[actor.computerId]?.partitions[actor.partitionId]?.instanceId ?? null;
  const requester = instance.requester.kind === "instance" ? instance.requester.instanceId : undefined;
  if (held !== null && (held === instance.instanceId || held === requester)) return undefined;
  return reject("Forbidden", `${describeActor(actor)} may change only the instance it holds and the instances it requested, not ${instance.instanceId}`);
}

export function describeActor(actor: Actor): string {
  switch (actor.kind) {
    case "user":
      return `user ${actor.userId}`;
    case "partition":
      return `partition ${actor.computerId}/${actor.partitionId}`;
    case "node":
      return `node ${actor.computerId}`;
    case "service":
      return `service ${actor.name}`;
    default: {
      const never: never = actor;
      return never;
    }
  }
}

export function decideBang(instanceId: string, command: Bang, ctx: DecisionContext): Decision {
  const current = ctx.instances.instances[instanceId];
  if (current === undefined) return reject("NotFound", `no instance ${instanceId}`);
  const denied = mayChange(current, ctx);
  if (denied !== undefined) return denied;
  const { message, service, exitCode, signal, logTail } = command;
  return report(current, ctx, "InstanceBanged", {
    message,
    ...(service === undefined ? {} : { service }),
    ...(exitCode === undefined ? {} : { exitCode }),
    ...(signal === undefined ? {} : { signal }),
    ...(logTail === undefined ? {} : { logTail }),
  });
}

/**
 * Where the partition that may speak for an instance is: its own partition, or for a shared
 * instance its host's partition.
 */
function speakingPartition(instance: InstanceView, ctx: DecisionContext): { computerId: string; partitionId: string } | undefined {
  const holderOf = instance.shared ? instance.host?.instanceId : instance.instanceId;
  return holderOf === undefined ? undefined : ctx.computers.bindings[holderOf];
}

function fromHolder(instance: InstanceView, ctx: DecisionContext, what: string): Rejection | { computerId: string; partitionId: string } {
  const holder = speakingPartition(instance, ctx);
  const actor = ctx.actor;
  if (holder === undefined) return reject("Conflict", `${instance.instanceId} is not placed yet; no partition may publish its ${what}`);
  if (actor.kind !== "partition" || actor.computerId !== holder.computerId || actor.partitionId !== holder.partitionId) {
    return reject("Forbidden", `only partition ${holder.computerId}/${holder.partitionId} may publish the ${what} of ${instance.instanceId}, not ${describeActor(actor)}`);
  }
  return holder;
}

/** Connection parameters are accepted only from the partition that holds the instance (for a shared one: its host's). */
export function decidePublish(instanceId: string, command: PublishConnectionParameters, ctx: DecisionContext): Decision {
  const current = ctx.instances.instances[instanceId];
  if (current === undefined) return reject("NotFound", `no instance ${instanceId}`);
  const holder = fromHolder(current, ctx, "connection parameters");
  if ("ok" in holder) return holder;
  const parameters = normalizeParameters(command.parameters);
  if (current.connection !== null && sameMap(current.connection, parameters)) return { ok: true, instanceId, appends: [] };
  return report(current, ctx, "ConnectionParametersPublished", {
    parameters,
    publisher: holder,
    ...(current.shared && current.host !== null ? { hostInstanceId: current.host.instanceId } : {}),
  });
}

export function decideStatus(instanceId: string, command: ReportInstanceStatus, ctx: DecisionContext): Decision {
  const current = ctx.instances.instances[instanceId];
  if (current === undefined) return reject("NotFound", `no instance ${instanceId}`);
  const holder = fromHolder(current, ctx, "status");
  if ("ok" in holder) return holder;
  return report(current, ctx, "InstanceStatusReported", { ...command, ...holder });
}

/**
 * The node reports an instance destroyed and its partition wiped: `InstanceDestroyed` on the
 * instance, then `PartitionReleased` so the allocator can reuse the partition. Only the
 * holding partition, and only for an instance whose requested state is destroyed.
 */
export function decideDestroyed(instanceId: string, ctx: DecisionContext): Decision {
  const current = ctx.instances.instances[instanceId];
  if (current === undefined) return reject("NotFound", `no instance ${instanceId}`);
  // Who is asking before what state it is in: the state is not the business of a stranger.
  const holder = fromHolder(current, ctx, "destruction");
  if ("ok" in holder) return holder;
  if (current.requestedState !== "destroyed") return reject("Conflict", `${instanceId} is not requested destroyed`);
  if (current.shared) {
    if (current.destroyed) return { ok: true, instanceId, appends: [] };
    return { ok: true, instanceId, appends: [{ expectedVersion: current.version, events: [{ ...envelope(ctx), correlationId: current.correlationId, type: "InstanceDestroyed", aggregate: { kind: "instance", treeId: current.treeId, instanceId }, data: {} }] }] };
  }
  if (current.instanceId === current.treeId) {
    // Children first: the root's partition is freed only once nothing else of its tree holds one.
    const alive = (ctx.instances.trees[current.treeId]?.instanceIds ?? []).filter(
      (id) => id !== instanceId && ctx.computers.bindings[id] !== undefined,
    );
    if (alive.length > 0) return reject("Conflict", `${instanceId} is the root of a tree whose instances ${alive.join(", ")} still hold partitions; destroy them first`);
  }
  const partition = ctx.computers.computers[holder.computerId]?.partitions[holder.partitionId];
  const destroyed: DomainEvent = {
    ...envelope(ctx),
    correlationId: current.correlationId,
    type: "InstanceDestroyed",
    aggregate: { kind: "instance", treeId: current.treeId, instanceId },
    data: holder,
  };
  return {
    ok: true,
    instanceId,
    appends: [
      // Against the instance's version: a re-request racing with this report conflicts instead of
      // leaving a "started" instance marked destroyed. Idempotent: a retry does not destroy twice.
      ...(current.destroyed ? [] : [{ expectedVersion: current.version, events: [destroyed] }]),
      {
        expectedVersion: partition?.version ?? "any",
        events: [
          {
            ...envelope(ctx),
            correlationId: current.correlationId,
            causationId: destroyed.id,
            type: "PartitionReleased",
            aggregate: { kind: "partition", ...holder },
            data: { instanceId, reason: "destroyed" },
          },
        ],
      },
    ],
  };
}

type ComputerEventType = "ComputerRegistered" | "SoftwareSupplied" | "SoftwareUnsupplied" | "SoftwareReleaseStatusReported" | "ComputerBanged";

/** One event on a computer's stream, appended without a version check (each replaces or adds a fact). */
function onComputer<T extends ComputerEventType>(computerId: string, ctx: DecisionContext, type: T, data: EventOf<T>["data"]): Decision {
  const event = { ...envelope(ctx), type, aggregate: { kind: "computer" as const, computerId }, data } as EventOf<T>;
  return { ok: true, appends: [{ expectedVersion: "any", events: [event] }] };
}

function mayActForComputer(computerId: string, ctx: DecisionContext): Rejection | undefined {
  const actor = ctx.actor;
  if (actor.kind === "node" && actor.computerId === computerId) return undefined;
  if (actor.kind === "user" && actor.userId === "admin") return undefined;
  return reject("Forbidden", `${describeActor(actor)} may not speak for computer ${computerId}`);
}

export function decideRegisterComputer(command: RegisterComputer, ctx: DecisionContext): Decision {
  const denied = mayActForComputer(command.computerId, ctx);
  if (denied !== undefined) return denied;
  const known = ctx.computers.computers[command.computerId];
  if (known !== undefined) {
    const same =
      known.name === (command.name ?? null) &&
      known.networkId === (command.networkId ?? null) &&
      command.partitions.length === Object.keys(known.partitions).length &&
      command.partitions.every((p) => {
        const k = known.partitions[p.partitionId];
        return k !== undefined && k.address === p.address && k.ports.from === p.ports.from && k.ports.to === p.ports.to;
      });
    if (same) return { ok: true, appends: [] };
  }
  return onComputer(command.computerId, ctx, "ComputerRegistered", {
    ...(command.name === undefined ? {} : { name: command.name }),
    ...(command.networkId === undefined ? {} : { networkId: command.networkId }),
    partitions: command.partitions,
  });
}

/** Supplying is a user's order (any user, for now: issue "Reliability and security" restricts it). */
export function decideSupply(computerId: string, command: SupplySoftware, ctx: DecisionContext): Decision {
  const computer = ctx.computers.computers[computerId];
  if (computer === undefined) return reject("NotFound", `no computer ${computerId}`);
  // What a computer installs (and its install steps run) is the operator's choice, not any user's.
  if (ctx.actor.kind !== "user" || ctx.actor.userId !== "admin") return reject("Forbidden", `${describeActor(ctx.actor)} may not supply software: only admin may`);
  const supplied = computer.software[command.releaseUrl]?.supplied ?? false;
  const wanted = command.state === "available";
  if (supplied === wanted) return { ok: true, appends: [] };
  return onComputer(computerId, ctx, wanted ? "SoftwareSupplied" : "SoftwareUnsupplied", { releaseUrl: command.releaseUrl });
}

/**
 * A node reports a release's build. `destroyed` only once the release was unsupplied (as
 * SlapOS refuses it): a supplied release reported destroyed would read as removed while the
 * computer is still ordered to keep it.
 */
/** Characters of a release's install log kept in its status (the last ones). */
export const SOFTWARE_LOG_KEEP = 16_384;

export function decideSoftwareStatus(computerId: string, command: ReportSoftwareStatus, ctx: DecisionContext): Decision {
  const computer = ctx.computers.computers[computerId];
  if (computer === undefined) return reject("NotFound", `no computer ${computerId}`);
  const denied = mayActForComputer(computerId, ctx);
  if (denied !== undefined) return denied;
  const current = computer.software[command.releaseUrl];
  // A node speaks of what it was given: a compromised one must not fill the read models with releases nobody supplied.
  if (current === undefined) return reject("Conflict", `${command.releaseUrl} was never supplied to ${computerId}: a node reports only the releases supplied to it`);
  if (command.status === "destroyed" && current.supplied) {
    return reject("Conflict", `${command.releaseUrl} is supplied on ${computerId}: it may be reported destroyed only after it was unsupplied`);
  }
  // The end of an install log is what tells what went wrong: kept, the rest cut.
  const log = command.log === undefined ? undefined : command.log.slice(-SOFTWARE_LOG_KEEP);
  const schema = command.status === "available" ? (command.parametersSchema ?? null) : current.parametersSchema;
  if (current.status === command.status && current.log === (log ?? null) && canonicalJson(current.parametersSchema) === canonicalJson(schema)) return { ok: true, appends: [] };
  return onComputer(computerId, ctx, "SoftwareReleaseStatusReported", {
    releaseUrl: command.releaseUrl,
    status: command.status,
    ...(log === undefined ? {} : { log }),
    ...(command.status === "available" && command.parametersSchema !== undefined ? { parametersSchema: command.parametersSchema } : {}),
  });
}

/** A computer bang (SlapOS's `computerBang`): every instance placed on it is processed again. Its node or admin. */
export function decideComputerBang(computerId: string, command: BangComputer, ctx: DecisionContext): Decision {
  const denied = mayActForComputer(computerId, ctx);
  if (denied !== undefined) return denied;
  if (ctx.computers.computers[computerId] === undefined) return reject("NotFound", `no computer ${computerId}`);
  return onComputer(computerId, ctx, "ComputerBanged", { message: command.message });
}
