import type { FastifyReply, FastifyRequest } from "fastify";

/** Server-sent events on a hijacked reply, with a heartbeat so proxies keep the stream open. */
export function openEventStream(request: FastifyRequest, reply: FastifyReply) {
  reply.hijack();
  const raw = reply.raw;
  raw.writeHead(200, { "content-type": "text/event-stream", "cache-control": "no-cache", connection: "keep-alive" });
  raw.write(": connected\n\n");
  const heartbeat = setInterval(() => raw.write(": heartbeat\n\n"), 15_000);
  const closers: Array<() => void> = [() => clearInterval(heartbeat)];
  request.raw.on("close", () => {
    for (const close of closers) close();
  });
  let closed = false;
  closers.push(() => {
    closed = true;
  });
  return {
    /** Writes one event; resolves once the socket can take more (or is gone). */
    send(event: string, data: string): Promise<void> {
      if (closed || raw.write(`event: ${event}\ndata: ${data}\n\n`)) return Promise.resolve();
      return new Promise((resolve) => {
        raw.once("drain", resolve);
        closers.push(resolve);
      });
    },
    onClose(close: () => void): void {
      closers.push(close);
    },
    end(): void {
      if (!closed) raw.end();
    },
  };
}
