import type { Logger } from "pino";
import type { JsonValue } from "@slap/events";
import type { FileDeclaration, ProfileInput } from "./profile-protocol.js";

/** A profile stopped at a request whose instance is not ready: processing ends as `waiting`. */
export class Waiting extends Error {
  override name = "Waiting";
  constructor(
    readonly reference: string,
    readonly reason: string,
  ) {
    super(`waiting for ${reference}: ${reason}`);
  }
}

export interface ProcessDeclaration {
  command: string[];
  env?: Record<string, string> | undefined;
  cwd?: string | undefined;
}

export type PromiseCheck = { command: string[] } | { http: string } | { tcp: { host: string; port: number } };

/** What a profile run declared; the node applies it after the profile process answered. */
export interface Declarations {
  services: Map<string, ProcessDeclaration>;
  runs: Map<string, ProcessDeclaration>;
  promises: Map<string, PromiseCheck>;
  /** Files to write in the partition (paths relative to it), in order. */
  files: FileDeclaration[];
  published: Record<string, string> | undefined;
  publishedShared: Map<string, Record<string, string>>;
}

/**
 * The `slap` object a profile module's default export receives (DESIGN.md), as the JS profile
 * runner (profile-runner.mjs) builds it in the profile's own process: its calls only declare.
 */
export interface Slap {
  /** Typed as the release's schema says (strings the common case). */
  readonly parameters: Readonly<Record<string, JsonValue>>;
  readonly instance: ProfileInput["instance"];
  readonly partition: ProfileInput["partition"];
  readonly software: string;
  readonly sharedInstances: ProfileInput["sharedInstances"];
  readonly destroying: boolean;
  readonly log: Logger;
  write(path: string, content: string | Uint8Array, options?: { mode?: number }): Promise<string>;
  render(template: string, path: string, values: Record<string, string | number>): Promise<string>;
  once(path: string, create: () => string | Uint8Array | Promise<string | Uint8Array>): Promise<string>;
  secret(name: string, options?: { length?: number }): Promise<string>;
  service(name: string, declaration: ProcessDeclaration): void;
  run(name: string, declaration: ProcessDeclaration): void;
  promise(name: string, check: PromiseCheck): void;
  request(
    releaseUrl: string,
    reference: string,
    options?: { parameters?: Record<string, JsonValue>; softwareType?: string; sla?: Record<string, string>; shared?: boolean; state?: "started" | "stopped" | "destroyed" },
  ): Promise<Record<string, string>>;
  publish(parameters: Record<string, string | number>): void;
  publishShared(instanceId: string, parameters: Record<string, string | number>): void;
}

/** A profile process that did not answer in time: its process group is killed, processing ends in error. */
export class ProfileTimeout extends Error {
  override name = "ProfileTimeout";
  constructor(
    readonly file: string,
    readonly timeoutMs: number,
  ) {
    super(`profile timed out after ${secondsOf(timeoutMs)} s`);
  }
}

/** Milliseconds as seconds for a message: `600`, `1.5`. */
export function secondsOf(ms: number): string {
  return String(Math.round(ms) / 1000);
}

/** Default of a profile process's timeout: 10 min. */
export const PROFILE_TIMEOUT_MS = 600_000;
