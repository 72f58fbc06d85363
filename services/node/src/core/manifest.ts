import { Token } from "@slap/events";
import { z } from "zod";

const RelativeFile = z
  .string()
  .min(1)
  .refine((p) => !p.startsWith("/") && !p.split(/[\\/]/).includes(".."), "must be a path inside the release");

/** One property of the parameters schema: the JSON Schema subset of DESIGN.md. */
export const ParameterProperty = z.object({
  type: z.literal("string").default("string"),
  default: z.string().optional(),
  enum: z.array(z.string()).optional(),
  pattern: z.string().optional(),
  minLength: z.number().int().nonnegative().optional(),
  maxLength: z.number().int().nonnegative().optional(),
  description: z.string().optional(),
});
export type ParameterProperty = z.infer<typeof ParameterProperty>;

export const ParametersSchema = z.object({
  type: z.literal("object").default("object"),
  properties: z.record(z.string(), ParameterProperty).default({}),
  required: z.array(z.string()).default([]),
  additionalProperties: z.boolean().default(true),
});
export type ParametersSchema = z.infer<typeof ParametersSchema>;

/**
 * A profile: a JS module run by the node's profile runner (`"profile.mjs"`), or any executable
 * (`{ "command": ["./instance.sh", ...args] }`, its first element relative to the release) that
 * speaks the profile protocol on stdin/stdout (DESIGN.md, "Profile processes").
 */
export const ProfileEntry = z.union([RelativeFile, z.strictObject({ command: z.tuple([RelativeFile], z.string()) })]);
export type ProfileEntry = z.infer<typeof ProfileEntry>;

/** `slap-release.json`: see DESIGN.md. */
export const ReleaseManifest = z.object({
  name: Token,
  install: z.array(z.array(z.string()).min(1)).default([]),
  profiles: z.record(z.string(), ProfileEntry),
  parameters: ParametersSchema.optional(),
  destroy: ProfileEntry.optional(),
  /** For releases served over http(s): every file to fetch besides the manifest. */
  files: z.array(RelativeFile).default([]),
});
export type ReleaseManifest = z.infer<typeof ReleaseManifest>;
