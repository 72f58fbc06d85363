import { z } from "zod";
import type { ParameterMap } from "@slap/events";

/**
 * The profile protocol (DESIGN.md, "Profile processes"): the node writes one `ProfileInput` as
 * JSON on the profile process's stdin and closes it; the process prints one `ProfileAnswer` as
 * JSON on its stdout and exits 0. Nothing else crosses: the process never talks to the master.
 */
export const PROTOCOL_VERSION = 1;

/** Default bound on what a profile process may print on stdout: 1 MiB. */
export const PROFILE_ANSWER_MAX_BYTES = 1024 * 1024;

const Strings = z.record(z.string(), z.string());

/** The master's answer to a request, as the profile sees it. */
export const RequestAnswer = z.discriminatedUnion("status", [
  z.object({ status: z.literal("pending"), reason: z.string() }),
  z.object({ status: z.literal("ready"), connection: Strings }),
  z.object({ status: z.literal("destroyed") }),
]);
export type RequestAnswer = z.infer<typeof RequestAnswer>;

/** What the node gives a profile process on stdin. */
export interface ProfileInput {
  protocol: typeof PROTOCOL_VERSION;
  /** As the release's schema types them (defaults applied), or as requested without a schema. */
  parameters: ParameterMap;
  instance: { instanceId: string; treeId: string; reference: string; softwareType: string; releaseUrl: string };
  partition: { computerId: string; partitionId: string; path: string; address: string; ports: { from: number; to: number } };
  software: string;
  sharedInstances: Array<{ instanceId: string; reference: string; parameters: ParameterMap }>;
  destroying: boolean;
  /** The master's answers to the requests of the earlier runs, by reference. */
  requests: Record<string, RequestAnswer>;
}

const Name = z
  .string()
  .regex(/^[A-Za-z0-9_.-]{1,128}$/, "use 1-128 characters of A-Z, a-z, 0-9, _, . or -")
  .refine((n) => !n.startsWith("."), "may not start with a dot");

const ProcessDeclaration = z.strictObject({
  command: z.array(z.string()).min(1, "must be a non-empty argv array of strings (never a shell string)"),
  env: Strings.optional(),
  cwd: z.string().optional(),
});

const PromiseCheck = z.union([
  z.strictObject({ command: z.array(z.string()).min(1) }),
  z.strictObject({ http: z.string() }),
  z.strictObject({ tcp: z.strictObject({ host: z.string(), port: z.number().int().min(1).max(65_535) }) }),
]);

/** A file to write in the partition (path relative to it); `once`: only if it does not exist. */
export const FileDeclaration = z.strictObject({
  path: z.string().min(1),
  content: z.string(),
  encoding: z.enum(["utf8", "base64"]).default("utf8"),
  mode: z.number().int().min(0).max(0o7777).optional(),
  once: z.boolean().default(false),
});
export type FileDeclaration = z.infer<typeof FileDeclaration>;

/** A request of another instance, made by the node as the process's own partition. */
export const RequestDeclaration = z.strictObject({
  releaseUrl: z.string().min(1),
  reference: z.string().min(1),
  parameters: z.record(z.string(), z.json()).optional(),
  softwareType: z.string().optional(),
  sla: Strings.optional(),
  shared: z.boolean().optional(),
  state: z.enum(["started", "stopped", "destroyed"]).optional(),
  /** Refused unless it is the process's own partition: a profile requests only as itself. */
  partitionId: z.string().optional(),
});
export type RequestDeclaration = z.infer<typeof RequestDeclaration>;

/** What a profile process prints on stdout: its declarations, or why it stopped. */
export const ProfileAnswer = z.strictObject({
  files: z.array(FileDeclaration).default([]),
  services: z.record(Name, ProcessDeclaration).default({}),
  runs: z.record(Name, ProcessDeclaration).default({}),
  promises: z.record(Name, PromiseCheck).default({}),
  requests: z.array(RequestDeclaration).default([]),
  publish: Strings.optional(),
  publishShared: z.record(z.string(), Strings).default({}),
  /** The run stopped at a request whose instance is not ready: processing ends `waiting`. */
  waiting: z.strictObject({ reference: z.string(), reason: z.string() }).optional(),
  /** The profile failed: processing ends in error with this message. */
  error: z.string().optional(),
});
export type ProfileAnswer = z.infer<typeof ProfileAnswer>;

/** What a profile process did wrong: processing ends in error with this message. */
export class ProfileProtocolError extends Error {
  override name = "ProfileProtocolError";
  readonly retryable = false;
}

/**
 * Splits stdout into its top-level JSON values (whitespace between them ignored), so that an
 * answer given twice is told from garbage. Returns undefined when the text is not a sequence of
 * JSON values.
 */
export function jsonValues(text: string): unknown[] | undefined {
  const values: unknown[] = [];
  let start = 0;
  let depth = 0;
  let inString = false;
  for (let i = 0; i < text.length; i++) {
    const c = text[i] ?? "";
    if (inString) {
      if (c === "\\") i++;
      else if (c === '"') inString = false;
    } else if (depth === 0) {
      if (c === "{" || c === "[") {
        start = i;
        depth = 1;
      } else if (!" \n\r\t".includes(c)) return undefined; // a bare scalar or garbage at the top: not an answer
    } else if (c === '"') inString = true;
    else if (c === "{" || c === "[") depth++;
    else if (c === "}" || c === "]") {
      depth--;
      if (depth === 0) {
        try {
          values.push(JSON.parse(text.slice(start, i + 1)));
        } catch {
          return undefined;
        }
      }
    }
  }
  return depth === 0 && !inString ? values : undefined;
}

/** Parses what a profile process printed; throws `ProfileProtocolError` naming what was wrong. */
export function parseAnswer(stdout: string): ProfileAnswer {
  const values = jsonValues(stdout);
  if (values === undefined) throw new ProfileProtocolError(`profile printed something that is not JSON on stdout: ${JSON.stringify(stdout.slice(0, 200))}`);
  if (values.length === 0) throw new ProfileProtocolError("profile exited without answering (nothing on stdout)");
  if (values.length > 1) throw new ProfileProtocolError(`profile answered ${values.length} times: print one JSON answer on stdout`);
  const parsed = ProfileAnswer.safeParse(values[0]);
  if (!parsed.success) {
    const issues = parsed.error.issues.map((i) => `${i.path.length === 0 ? "(answer)" : i.path.join(".")}: ${i.message}`).join("; ");
    throw new ProfileProtocolError(`profile answer is not valid: ${issues}`);
  }
  return parsed.data;
}
