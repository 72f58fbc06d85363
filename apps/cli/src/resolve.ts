/**
 * Which instance a user means by `<instance>` on the command line (`slap show | stop | start |
 * destroy | bang`): an instance id, a path of references from a root of the caller's trees
 * (`my-webapp/kvdb`), or a bare reference when it names one instance only. The choice is a pure
 * function of the caller's instance list (`findInstance`); `resolveInstance` asks the master.
 */
import { CliError } from "./args.js";
import { MasterRejected, isMasterFailure, type AsOfQuery, type InstanceDetails, type InstanceList, type InstanceView, type MasterClient } from "./client.js";

/** What an `<instance>` names in a list: one instance, several (say which), or none. */
export type Found = { instance: InstanceView } | { ambiguous: InstanceView[] } | { none: true };

/** The references from the root of its tree down to the instance, `/`-joined: how `slap` names it back. */
export function pathOf(instance: InstanceView, list: InstanceList): string {
  const byId = new Map(list.instances.map((i) => [i.instanceId, i]));
  const path = [instance.reference];
  const seen = new Set([instance.instanceId]);
  for (let at = instance; at.requester.kind === "instance"; ) {
    const parent = byId.get(at.requester.instanceId);
    if (parent === undefined || seen.has(parent.instanceId)) break;
    seen.add(parent.instanceId);
    path.unshift(parent.reference);
    at = parent;
  }
  return path.join("/");
}

const isRoot = (i: InstanceView): boolean => i.requester.kind === "user";

/** One of them, several, or none. */
function outcome(candidates: InstanceView[]): Found {
  if (candidates.length === 1) return { instance: candidates[0]! };
  return candidates.length === 0 ? { none: true } : { ambiguous: candidates };
}

/**
 * The instance `name` names in `list`, in this order: an instance id; a whole reference — a root's
 * first (the caller's own request), else any instance's of that name when it is the only one; a
 * path `root/child/…`, each step an instance requested by the one before (a reference containing
 * `/` is matched whole first, so it still resolves).
 */
export function findInstance(list: InstanceList, name: string): Found {
  const byId = list.instances.find((i) => i.instanceId === name);
  if (byId !== undefined) return { instance: byId };
  const named = list.instances.filter((i) => i.reference === name);
  const roots = named.filter(isRoot);
  if (roots.length > 0) return outcome(roots);
  if (named.length > 0) return outcome(named);
  const steps = name.split("/");
  if (steps.length < 2 || steps.some((s) => s === "")) return { none: true };
  let level = list.instances.filter((i) => isRoot(i) && i.reference === steps[0]);
  for (const step of steps.slice(1)) {
    const parents = new Set(level.map((i) => i.instanceId));
    level = list.instances.filter((i) => i.reference === step && i.requester.kind === "instance" && parents.has(i.requester.instanceId));
  }
  return outcome(level);
}

function owner(instance: InstanceView, list: InstanceList): string {
  const root = list.instances.find((i) => i.instanceId === instance.treeId);
  return root?.requester.kind === "user" ? ` (user ${root.requester.userId})` : "";
}

/**
 * The details of the instance `name` names, as the master shows them to the caller (secrets
 * masked unless `secrets`; as of a past moment with `asOf`). The caller's own root under that
 * reference is asked for first (`GET /v1/references/:reference`, one call); anything else is
 * found in the caller's instance list. Nothing found, or several, is a `CliError` (exit 1) that
 * says what to type instead.
 */
export async function resolveInstance(client: MasterClient, name: string, options: { secrets?: boolean; asOf?: AsOfQuery } = {}): Promise<InstanceDetails> {
  const { secrets = false, asOf } = options;
  if (!name.includes("/")) {
    try {
      return await client.byReference(name, secrets, asOf);
    } catch (error) {
      if (!(isMasterFailure(error, MasterRejected) && error.status === 404 && error.code === "NotFound" && !error.message.includes("no route"))) throw error;
    }
  }
  const list = await client.instances(asOf);
  const found = findInstance(list, name);
  if ("instance" in found) {
    // The details at the position the list was read at, even if the log grew in between.
    const at = list.asOf === undefined ? undefined : { at: list.asOf.position };
    return client.instance(found.instance.instanceId, secrets, at);
  }
  if ("ambiguous" in found) {
    const choices = found.ambiguous.map((i) => `${pathOf(i, list)} [${i.instanceId}]${owner(i, list)}`).join(", ");
    throw new CliError(`${JSON.stringify(name)} names ${found.ambiguous.length} instances: ${choices}; give its path (root/child) or its id`);
  }
  const then = asOf === undefined ? "" : ` as of ${"asOf" in asOf ? asOf.asOf : `log position ${asOf.at}`}`;
  const had = asOf === undefined ? "have" : "had";
  const what = name.includes("/") ? `no instance at the path ${JSON.stringify(name)} in your trees` : `no instance under the reference ${JSON.stringify(name)}`;
  throw new CliError(`you ${had} requested ${what}${then} (see slap instances)`);
}
