import { z } from "zod";
import { maskSecrets } from "@slap/events";
import type { Output } from "./args.js";

/** `slap` masks secret-looking values unless asked (`--secrets`), with the master's own rule. */
export { MASK } from "@slap/events";

/** Masks the values whose name looks secret. */
export function mask(map: Readonly<Record<string, string>>): Record<string, string>;
export function mask(map: Readonly<Record<string, string>> | null): Record<string, string> | null;
export function mask(map: Readonly<Record<string, string>> | null): Record<string, string> | null {
  return map === null ? null : maskSecrets(map);
}

/** `key = value` lines, keys sorted, for connection parameters and the like. */
export function keyValueLines(map: Readonly<Record<string, unknown>>, indent = ""): string[] {
  return Object.keys(map)
    .sort()
    .map((key) => {
      const value = map[key];
      return `${indent}${key} = ${typeof value === "string" ? value : value === undefined ? "" : JSON.stringify(value)}`;
    });
}

/** Columns padded to their widest cell, two spaces apart; trailing spaces trimmed. */
export function table(rows: readonly (readonly string[])[], indent = ""): string[] {
  const widths: number[] = [];
  for (const row of rows) row.forEach((cell, i) => (widths[i] = Math.max(widths[i] ?? 0, cell.length)));
  return rows.map((row) => (indent + row.map((cell, i) => (i === row.length - 1 ? cell : cell.padEnd(widths[i] ?? 0))).join("  ")).trimEnd());
}

export interface ForestNode {
  id: string;
  /** The node this one hangs under; null (or an id not in the forest) makes it a root. */
  parentId: string | null;
}

/**
 * Orders nodes as a forest (roots in input order, children under their parent in input order)
 * and gives each the prefix that draws it: `├─ `, `└─ `, `│  `. A node whose parent is missing
 * is shown as a root; a cycle cannot hang: every node is drawn once.
 */
export function forest<N extends ForestNode>(nodes: readonly N[]): Array<{ node: N; prefix: string; depth: number }> {
  const ids = new Set(nodes.map((n) => n.id));
  const children = new Map<string, N[]>();
  const roots: N[] = [];
  for (const node of nodes) {
    if (node.parentId === null || node.parentId === node.id || !ids.has(node.parentId)) roots.push(node);
    else children.set(node.parentId, [...(children.get(node.parentId) ?? []), node]);
  }
  const out: Array<{ node: N; prefix: string; depth: number }> = [];
  const drawn = new Set<string>();
  const walk = (node: N, lead: string, branch: string, depth: number): void => {
    if (drawn.has(node.id)) return;
    drawn.add(node.id);
    out.push({ node, prefix: lead + branch, depth });
    const kids = children.get(node.id) ?? [];
    const nextLead = lead + (branch === "" ? "" : branch === "├─ " ? "│  " : "   ");
    kids.forEach((kid, i) => walk(kid, nextLead, i === kids.length - 1 ? "└─ " : "├─ ", depth + 1));
  };
  for (const root of roots) walk(root, "", "", 0);
  // Nodes only reachable through a cycle.
  for (const node of nodes) walk(node, "", "", 0);
  return out;
}

/** Shortens long ids and texts for tables: `01J8ZK…` keeps the start, which is what people match on. */
export function short(text: string, max: number): string {
  return text.length <= max ? text : `${text.slice(0, Math.max(1, max - 1))}…`;
}

/**
 * A status line on stderr while waiting: on a terminal one line rewritten in place; otherwise
 * each new text printed once, so a log shows every change and nothing twice.
 */
export class StatusLine {
  private last: string | null = null;
  private shown = false;

  constructor(private readonly out: Output) {}

  update(text: string): void {
    if (text === this.last) return;
    this.last = text;
    if (this.out.isTTY === true) {
      const columns = this.out.columns ?? 0;
      const width = columns > 20 ? columns - 1 : 79;
      this.out.write(`\r\x1b[2K${short(text, width)}`);
      this.shown = true;
    } else {
      this.out.write(`${text}\n`);
    }
  }

  /** Clears the rewritten line so that what follows starts on a clean one. */
  done(): void {
    if (this.shown) this.out.write("\r\x1b[2K");
    this.shown = false;
  }
}

/** A duration for people: `45 s`, `3 min 5 s`. */
export function seconds(ms: number): string {
  const s = Math.round(ms / 1000);
  return s < 60 ? `${s} s` : `${Math.floor(s / 60)} min${s % 60 === 0 ? "" : ` ${s % 60} s`}`;
}

/** A computer's `liveness` in the master's live reads (API.md, "Liveness"); absent in as-of reads. */
export const LivenessView = z.object({ state: z.enum(["responsive", "unresponsive", "unknown"]), lastSeen: z.string().nullable() });
export type LivenessView = z.infer<typeof LivenessView>;

/** An instance's `node` in the master's live reads: the liveness of the computer it runs on (null: runs nowhere). */
export const NodeLivenessView = LivenessView.extend({ computerId: z.string() });
export type NodeLivenessView = z.infer<typeof NodeLivenessView>;

/** The liveness in a view, when it has one the CLI understands (an older master, an as-of read: none). */
export function livenessIn(view: object): LivenessView | undefined {
  const parsed = LivenessView.safeParse((view as { liveness?: unknown }).liveness);
  return parsed.success ? parsed.data : undefined;
}

/** The liveness of an instance's node, when the view has one. */
export function nodeLivenessIn(view: object): NodeLivenessView | undefined {
  const parsed = NodeLivenessView.safeParse((view as { node?: unknown }).node);
  return parsed.success ? parsed.data : undefined;
}

/** Whether a node answers, for people: `responsive (last heard …)`, `unresponsive since …`, `unknown …`. */
export function livenessText(liveness: LivenessView): string {
  switch (liveness.state) {
    case "responsive":
      return `responsive (last heard ${liveness.lastSeen ?? "just now"})`;
    case "unresponsive":
      return liveness.lastSeen === null ? "unresponsive: not heard from since the master started" : `unresponsive since ${liveness.lastSeen}`;
    case "unknown":
      return "unknown: not heard from yet since the master started";
    default: {
      const never: never = liveness.state;
      return never;
    }
  }
}
