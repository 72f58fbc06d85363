/**
 * Why a call to the master failed, as one hierarchy for every client (the CLI, the node): the
 * HTTP `status` (0: no answer), the API's error `code`, and whether retrying can help. An
 * expected refusal is a `MasterRejected` with the master's own code and message.
 */
export class MasterError extends Error {
  override name = "MasterError";
  constructor(
    message: string,
    /** The HTTP status of the answer; 0 when there was none. */
    readonly status: number,
    /** The API's error code (`BadRequest`, `NotFound`, …), or this client's (`Unreachable`, `Timeout`, `UnexpectedAnswer`). */
    readonly code: string,
    /** Whether asking again later may succeed (the master was down, busy or failing); never for a refusal of the input. */
    readonly retryable: boolean,
    options?: ErrorOptions,
  ) {
    super(message, options);
  }
}

/** No answer at all: refused, reset, unknown host. Retrying may help. */
export class MasterUnreachable extends MasterError {
  override name = "MasterUnreachable";
  constructor(
    readonly master: string,
    readonly operation: string,
    cause: unknown,
  ) {
    super(`cannot reach the master at ${master} (${operation}): ${cause instanceof Error ? cause.message : String(cause)}`, 0, "Unreachable", true, { cause });
  }
}

/** No answer within the call's time. Retrying may help. */
export class MasterTimedOut extends MasterUnreachable {
  override name = "MasterTimedOut";
  override readonly code = "Timeout";
  constructor(
    master: string,
    operation: string,
    readonly timeoutMs: number,
    cause: unknown,
  ) {
    super(master, operation, cause);
    this.message = `the master at ${master} did not answer ${operation} within ${Math.round(timeoutMs / 1000)} s`;
  }
}

/** An issue of a refused input, as the master names it. */
export interface ApiIssue {
  path: string;
  message: string;
}

/** The master answered with the API's error shape (`{ error: { code, message, issues } }`). Retryable only for a 5xx. */
export class MasterRejected extends MasterError {
  override name = "MasterRejected";
  constructor(
    status: number,
    code: string,
    /** The master's own message, without the code. */
    readonly detail: string,
    readonly issues: readonly ApiIssue[] = [],
  ) {
    super(`${code}: ${detail}${issueList(detail, issues)}`, status, code, status >= 500);
  }
}

/** The issues, when the message does not already say them: ` (path: message; …)`. */
function issueList(message: string, issues: readonly ApiIssue[]): string {
  if (issues.length === 0 || message.includes(issues[0]?.message ?? "")) return "";
  return ` (${issues.map((i) => `${i.path}: ${i.message}`).join("; ")})`;
}

/**
 * The master answered something that is not what the route table promises (not JSON, a shape
 * that does not parse, a status it does not list). Retryable only for a 5xx (a proxy's error page).
 */
export class UnexpectedAnswer extends MasterError {
  override name = "UnexpectedAnswer";
  constructor(message: string, status: number, options?: ErrorOptions) {
    super(message, status, "UnexpectedAnswer", status >= 500, options);
  }
}
