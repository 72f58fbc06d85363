import { ParametersSchema, Token } from "@slap/events";
import { z } from "zod";

const RelativeFile = z
  .string()
  .min(1)
  .refine((p) => !p.startsWith("/") && !p.split(/[\\/]/).includes(".."), "must be a path inside the release");

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
  /** The instance parameters schema (JSON Schema); else the release's `instance-input-schema.json` (SlapOS's name), if any. */
  parameters: ParametersSchema.optional(),
  destroy: ProfileEntry.optional(),
  /** For releases served over http(s): every file to fetch besides the manifest. */
  files: z.array(RelativeFile).default([]),
});
export type ReleaseManifest = z.infer<typeof ReleaseManifest>;
