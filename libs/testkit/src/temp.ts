import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Writable } from "node:stream";
import { pino, type Logger } from "pino";

/** A temporary folder, deleted by `dispose()`. */
export async function tempDir(prefix = "slap-"): Promise<{ path: string; dispose(): Promise<void> }> {
  const path = await mkdtemp(join(tmpdir(), prefix));
  return { path, dispose: () => rm(path, { recursive: true, force: true }) };
}

export interface CapturedLogger {
  logger: Logger;
  /** Every line logged so far, parsed. */
  lines: Array<Record<string, unknown> & { level: number; msg?: string }>;
}

/** A pino logger (level debug) that keeps its lines in memory for assertions. */
export function captureLogger(): CapturedLogger {
  const lines: CapturedLogger["lines"] = [];
  const sink = new Writable({
    write(chunk: Buffer, _encoding, done) {
      for (const line of chunk.toString().split("\n")) if (line) lines.push(JSON.parse(line) as CapturedLogger["lines"][number]);
      done();
    },
  });
  return { logger: pino({ level: "debug" }, sink), lines };
}

/** One JSON HTTP call: headers as given, the body as JSON when there is one; answers the status and the parsed body. */
export async function callJson(
  url: string,
  method: string,
  headers: Record<string, string>,
  body?: unknown,
): Promise<{ status: number; body: Record<string, unknown> }> {
  const response = await fetch(url, {
    method,
    headers: { ...headers, ...(body === undefined ? {} : { "content-type": "application/json" }) },
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
  });
  return { status: response.status, body: (await response.json()) as Record<string, unknown> };
}
