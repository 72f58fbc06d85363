import { createParser, type EventSourceMessage } from "eventsource-parser";

/** One server-sent event: its name (`message` when the stream names none) and its data lines joined by newlines. */
export interface ServerSentEvent {
  event: string;
  data: string;
}

/**
 * The events of a `text/event-stream` body, parsed by `eventsource-parser` (comments, such as
 * the master's heartbeats, and `id`/`retry` fields are skipped). The body is cancelled when the
 * caller stops reading.
 */
export async function* serverSentEvents(body: ReadableStream<Uint8Array>): AsyncGenerator<ServerSentEvent> {
  const ready: ServerSentEvent[] = [];
  const parser = createParser({ onEvent: (message: EventSourceMessage) => ready.push({ event: message.event ?? "message", data: message.data }) });
  const reader = body.getReader();
  const decoder = new TextDecoder();
  try {
    for (;;) {
      const { done, value } = await reader.read();
      parser.feed(done ? decoder.decode() : decoder.decode(value, { stream: true }));
      while (ready.length > 0) yield ready.shift()!;
      if (done) return;
    }
  } finally {
    await reader.cancel().catch(() => undefined);
  }
}
