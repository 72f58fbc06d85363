import type { Io } from "./args.js";

/** An `Io` for in-process tests: captured stdout/stderr, a chosen env and a stop signal the test controls. */
export function fakeIo(env: Record<string, string> = {}, options: { tty?: boolean; fetch?: typeof fetch } = {}) {
  let stdout = "";
  let stderr = "";
  const stop = new AbortController();
  const io: Io = {
    env,
    stdout: { write: (text: string) => (stdout += text) },
    stderr: { write: (text: string) => (stderr += text), isTTY: options.tty ?? false, columns: 80 },
    stopSignal: () => stop.signal,
    ...(options.fetch === undefined ? {} : { fetch: options.fetch }),
  };
  return { io, stdout: () => stdout, stderr: () => stderr, stop: () => stop.abort() };
}

/** A `fetch` answering from a list of handlers, in order, recording what was asked. */
export function scriptedFetch(...answers: Array<(url: URL, init: RequestInit) => Response | Promise<Response>>) {
  const calls: Array<{ method: string; url: URL; body: unknown; headers: Record<string, string> }> = [];
  const fetchImpl = (async (input: string | URL | Request, init: RequestInit = {}) => {
    const url = new URL(typeof input === "string" ? input : input instanceof URL ? input.href : input.url);
    calls.push({
      method: init.method ?? "GET",
      url,
      body: typeof init.body === "string" ? (JSON.parse(init.body) as unknown) : undefined,
      headers: { ...(init.headers as Record<string, string>) },
    });
    const answer = answers.shift();
    if (answer === undefined) throw new Error(`unexpected call ${init.method ?? "GET"} ${url.pathname}`);
    return answer(url, init);
  }) as typeof fetch;
  return { fetchImpl, calls };
}

export function json(status: number, body: unknown): Response {
  return new Response(JSON.stringify(body), { status, headers: { "content-type": "application/json" } });
}

/** A `text/event-stream` response sending `events` then staying open until the request is aborted. */
export function sse(events: Array<{ event: string; data: unknown }>, init: RequestInit, options: { end?: boolean } = {}): Response {
  const encoder = new TextEncoder();
  const body = new ReadableStream<Uint8Array>({
    start(controller) {
      controller.enqueue(encoder.encode(": connected\n\n"));
      for (const e of events) controller.enqueue(encoder.encode(`event: ${e.event}\ndata: ${JSON.stringify(e.data)}\n\n`));
      if (options.end === true) controller.close();
      else init.signal?.addEventListener("abort", () => controller.error(init.signal?.reason), { once: true });
    },
  });
  return new Response(body, { status: 200, headers: { "content-type": "text/event-stream" } });
}
