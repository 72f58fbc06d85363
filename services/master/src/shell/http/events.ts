import { showSecrets, type EventsQuery } from "@slap/api";
import type { Actor, Commit, DomainEvent } from "@slap/events";
import type { Logger } from "pino";
import { maskEvent, mayReadEvent } from "../../core/visibility.js";
import type { Master } from "../master.js";
import { STREAMED, type Handlers } from "./route.js";
import { openEventStream } from "./sse.js";
import { SEEN_WAIT_MS } from "./reads.js";

const matches = (query: EventsQuery, event: DomainEvent): boolean =>
  (query.type === undefined || event.type === query.type) && (query.since === undefined || Date.parse(event.time) >= Date.parse(query.since));

/** The log, a page at a time or live: only the events the actor may read, secrets masked unless asked for. */
export function eventHandlers(master: Master, logger: Logger): Handlers<"listEvents" | "streamEvents"> {
  const readable = (actor: Actor, query: EventsQuery, event: DomainEvent): DomainEvent | undefined =>
    matches(query, event) && mayReadEvent(actor, event, master.view.state) ? maskEvent(event, showSecrets(query)) : undefined;
  return {
    listEvents: {
      async handle({ actor, query }) {
        const events: Array<{ position: number; streamKey: string; event: DomainEvent }> = [];
        // Read to the end, `next` is the log's head, not the last commit the filter matched: it must
        // not tell whether someone else's tree or instance has events.
        const head = await master.store.head();
        if (head > master.position) await master.settledWithin(head, SEEN_WAIT_MS);
        let next = query.after;
        let complete = true;
        for await (const commit of master.store.readAll({ after: query.after, ...(query.filter === undefined ? {} : { filter: query.filter }) })) {
          for (const event of commit.events) {
            const shown = readable(actor, query, event);
            if (shown !== undefined) events.push({ position: commit.position, streamKey: commit.streamKey, event: shown });
          }
          next = commit.position;
          if (events.length >= query.limit) {
            complete = false;
            break;
          }
        }
        return { status: 200, body: { events, next: complete ? Math.max(next, head) : next } };
      },
    },
    streamEvents: {
      handle({ actor, query, request, reply }) {
        const stream = openEventStream(request, reply);
        const subscription = master.store.subscribe({ after: query.after, ...(query.filter === undefined ? {} : { filter: query.filter }) });
        stream.onClose(() => void subscription.close());
        void (async () => {
          try {
            for await (const commit of subscription as AsyncIterable<Commit>) {
              // Who may read an event depends on the read models (whose tree is it?): they must have
              // this commit, or a user's own new tree would be taken for someone else's.
              if (commit.position > master.position) await master.settledWithin(commit.position, SEEN_WAIT_MS);
              for (const event of commit.events) {
                const shown = readable(actor, query, event);
                // Backpressure: a slow reader pauses the subscription instead of buffering the log in memory.
                if (shown !== undefined) await stream.send("event", JSON.stringify({ position: commit.position, streamKey: commit.streamKey, event: shown }));
              }
            }
          } finally {
            stream.end();
          }
        })().catch((error: unknown) => logger.warn({ err: error }, "event stream ended"));
        return STREAMED;
      },
    },
  };
}
