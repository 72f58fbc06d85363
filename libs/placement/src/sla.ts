/**
 * SLA keys understood by the allocator. An empty value is the same as an absent key (no
 * constraint). Any other key is refused (`UnknownSlaKey`) rather than ignored, so a typo such
 * as `computer_giud` leaves the request pending with a reason instead of silently placing it
 * anywhere.
 *
 * | key | non-shared instance | shared instance |
 * |---|---|---|
 * | `computer_guid` | only this computer | only a host placed on this computer |
 * | `network_guid` | only computers of this network | only a host on a computer of this network |
 * | `mode=unique_by_network` | no other instance of its tree on a computer of the same network | (no effect) |
 * | `instance_guid` | (no effect) | this host instance |
 */
export const SLA_KEYS = ["computer_guid", "network_guid", "instance_guid", "mode"] as const;
export const SLA_MODES = ["unique_by_network"] as const;

export interface Sla {
  computerId: string | null;
  networkId: string | null;
  /** Host instance id (shared instances only). */
  instanceId: string | null;
  uniqueByNetwork: boolean;
  /** The constraints in effect as `key=value`, in key order, for messages. */
  constraints: string[];
}

export type SlaParse = { ok: true; sla: Sla } | { ok: false; reason: "UnknownSlaKey"; detail: string };

const KNOWN: ReadonlySet<string> = new Set(SLA_KEYS);

/** Reads an instance's SLA. Pure; an unknown key or mode is a rejection naming it. */
export function parseSla(sla: Readonly<Record<string, string>>, shared: boolean): SlaParse {
  const out: Sla = { computerId: null, networkId: null, instanceId: null, uniqueByNetwork: false, constraints: [] };
  for (const key of Object.keys(sla).sort()) {
    const value = sla[key];
    if (value === undefined || value === "") continue;
    if (!KNOWN.has(key)) {
      return { ok: false, reason: "UnknownSlaKey", detail: `unknown SLA key ${key} (known: ${SLA_KEYS.join(", ")})` };
    }
    switch (key) {
      case "computer_guid":
        out.computerId = value;
        break;
      case "network_guid":
        out.networkId = value;
        break;
      case "instance_guid":
        if (!shared) continue;
        out.instanceId = value;
        break;
      case "mode":
        if (!(SLA_MODES as readonly string[]).includes(value)) {
          return { ok: false, reason: "UnknownSlaKey", detail: `unknown SLA mode=${value} (known: ${SLA_MODES.join(", ")})` };
        }
        if (shared) continue;
        out.uniqueByNetwork = true;
        break;
    }
    out.constraints.push(`${key}=${value}`);
  }
  return { ok: true, sla: out };
}

/** Whether an SLA constrains nothing (after dropping empty values and keys without effect). */
export function isUnconstrained(sla: Readonly<Record<string, string>>, shared: boolean): boolean {
  const parsed = parseSla(sla, shared);
  return parsed.ok && parsed.sla.constraints.length === 0;
}
