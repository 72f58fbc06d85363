import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { serverSentEvents } from "./sse.js";

function chunks(...parts: string[]): ReadableStream<Uint8Array> {
  const encoder = new TextEncoder();
  return new ReadableStream({
    start(controller) {
      for (const part of parts) controller.enqueue(encoder.encode(part));
      controller.close();
    },
  });
}

async function collect<T>(items: AsyncIterable<T>): Promise<T[]> {
  const out: T[] = [];
  for await (const item of items) out.push(item);
  return out;
}

describe("server-sent events", () => {
  it("splits events across chunks, joins data lines and skips comments", async () => {
    const events = await collect(serverSentEvents(chunks(": connected\n\nevent: ans", "wer\ndata: {\"a\":\ndata: 1}\n\n: heartbeat\n\ndata: plain\r", "\n\r\n")));
    assert.deepEqual(events, [
      { event: "answer", data: '{"a":\n1}' },
      { event: "message", data: "plain" },
    ]);
  });

  it("decodes a character split across chunks and cancels the body when the reader stops", async () => {
    const bytes = new TextEncoder().encode("event: e\ndata: é\n\nevent: e\ndata: second\n\n");
    let cancelled = false;
    const body = new ReadableStream<Uint8Array>({
      start(controller) {
        controller.enqueue(bytes.subarray(0, 16));
        controller.enqueue(bytes.subarray(16));
      },
      cancel() {
        cancelled = true;
      },
    });
    for await (const event of serverSentEvents(body)) {
      assert.deepEqual(event, { event: "e", data: "é" });
      break;
    }
    assert.equal(cancelled, true);
  });
});
