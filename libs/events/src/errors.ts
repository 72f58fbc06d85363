import type { z } from "zod";

/** Base of the infrastructure failures of the event store. `retryable` says whether trying again can help. */
export class EventStoreError extends Error {
  override name = "EventStoreError";
  readonly retryable: boolean;
  constructor(message: string, options: { cause?: unknown; retryable: boolean }) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.retryable = options.retryable;
  }
}

/**
 * The stream was not at the expected version: someone else appended first. Nothing was written.
 * Reload the stream, decide again, and retry.
 */
export class WrongExpectedVersionError extends EventStoreError {
  override name = "WrongExpectedVersionError";
  constructor(
    readonly streamKey: string,
    readonly expected: number,
    readonly actual: number | undefined,
    options: { cause?: unknown } = {},
  ) {
    super(
      `stream ${streamKey} is at version ${actual ?? "unknown"}, expected ${expected}`,
      { ...options, retryable: true },
    );
  }
}

export interface ValidationIssue {
  /** Dotted path of the offending field, e.g. `events.0.data.partitions.1.address`. */
  path: string;
  message: string;
}

/** An event (or message) does not match its schema. Never retryable: the input itself is wrong. */
export class EventValidationError extends EventStoreError {
  override name = "EventValidationError";
  constructor(
    readonly issues: readonly ValidationIssue[],
    context: string,
  ) {
    super(`${context}: ${issues.map((i) => `${i.path || "(root)"}: ${i.message}`).join("; ")}`, {
      retryable: false,
    });
  }
}

/** Turns zod issues into `path: message` pairs, with `prefix` before every path. */
export function issuesOf(error: z.ZodError, prefix: readonly (string | number)[] = []): ValidationIssue[] {
  return error.issues.map((issue) => ({
    path: [...prefix, ...issue.path].map(String).join("."),
    message: issue.message,
  }));
}
