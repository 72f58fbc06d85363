import type { Actor, CloudView, ComputerView, InstanceView } from "@slap/events";
import { callerOf } from "../../core/limits.js";
import type { Liveness, NodeLiveness } from "../../core/liveness.js";
import { guardReason, liveRead, maskAnswer, maskInstance, visibleSharedInstances, type ReadModels } from "../../core/visibility.js";
import type { Master } from "../master.js";

/** The read models a read is answered from: the live ones, or (`asOf`, `at`) fresh ones folded up to that moment. */
export interface Read {
  views: CloudView;
  asOf?: { time: string | null; position: number };
}

export const live = (master: Master): Read => ({ views: master.view.state });

/** The read models of a read (`caller`: whose turn an "as of" fold takes, see `Master.asOf`). */
export async function readAt(master: Master, query: { asOf?: string | undefined; at?: number | undefined }, caller: Actor): Promise<Read> {
  const moment = query.asOf !== undefined ? { time: query.asOf } : query.at !== undefined ? { position: query.at } : undefined;
  if (moment === undefined) return live(master);
  const read = await master.asOf(moment, callerOf(caller));
  return { views: read.views, asOf: { time: read.time, position: read.position } };
}

/** The read models of a read, for the visibility policy. */
export const modelsOf = (master: Master, read: Read = live(master)): ReadModels =>
  read.asOf === undefined ? liveRead(master.view.state) : { read: read.views, live: master.view.state, past: true };

export const asOfOf = (read: Read) => (read.asOf === undefined ? {} : { asOf: read.asOf });

/** The liveness of the node an instance runs on, in a live read (as-of reads have none: liveness is now, not history). */
type NodeOf = (instance: InstanceView) => NodeLiveness | null;

/**
 * In a live read, the liveness of the node an instance runs on: its placement's computer (a
 * shared instance: its host's). Null when it runs nowhere. As of a past moment: none.
 */
function nodeOf(master: Master, read: Read): NodeOf | undefined {
  if (read.asOf !== undefined) return undefined;
  return (instance) => {
    const host = instance.host === null ? undefined : read.views.instances.instances[instance.host.instanceId];
    const placement = instance.placement ?? host?.placement ?? null;
    return placement === null ? null : { computerId: placement.computerId, ...master.liveness(placement.computerId) };
  };
}

/**
 * An instance as shown: secrets masked (by key name) in its connection and its request
 * parameters, unless asked for; in a live read, `node`: whether the node it runs on answers.
 */
export function presentInstance(master: Master, instance: InstanceView, show: boolean, read: Read): InstanceView & { node?: NodeLiveness | null } {
  const node = nodeOf(master, read);
  return { ...maskInstance(instance, show), ...(node === undefined ? {} : { node: node(instance) }) };
}

/** A computer as shown (already as the actor may see it): in a live read, with `liveness`. */
export function presentComputer(master: Master, computer: ComputerView, read: Read): ComputerView & { liveness?: Liveness } {
  return read.asOf === undefined ? { ...computer, liveness: master.liveness(computer.computerId) } : computer;
}

/** `GET /v1/instances/:id` and `GET /v1/references/:reference`: the instance, its answer and the shared instances it hosts that the actor may see. */
export function details(master: Master, actor: Actor, instance: InstanceView, show: boolean, read: Read) {
  const models = modelsOf(master, read);
  return {
    instance: presentInstance(master, instance, show, read),
    answer: maskAnswer(guardReason(actor, instance, master.answer(instance, read.views), models), show),
    sharedInstances: visibleSharedInstances(actor, instance, models).map((i) => presentInstance(master, i, show, read)),
    ...asOfOf(read),
  };
}

/** How long an answer waits for the read models to reach a position the caller has seen (`x-slap-seen`), or the log's head. */
export const SEEN_WAIT_MS = 5_000;
