import type { IncomingMessage, ServerResponse } from "node:http";
import type { FastifyBaseLogger, FastifyInstance, FastifyRequest, RawServerDefault } from "fastify";
import { routes, routerPath, type Readiness } from "@slap/api";
import type { Actor } from "@slap/events";
import { readTokenFile, revokeInTokenFile, tokenInfoOf, type TokenFileWatch } from "../auth.js";
import type { Master } from "../master.js";
import { headWithin, type MasterMetrics } from "../metrics.js";
import { HttpError, orRefuse, type Handlers } from "./route.js";

/** How long `/readyz` waits for the store's head and for the read models to reach it. */
const READY_WAIT_MS = 2_000;

/**
 * Whether the master can serve: its store answers (its head, within `READY_WAIT_MS`) and its read
 * models reach that head (waiting as long again). Liveness is `/healthz`, which answers as long as
 * the process does.
 */
async function readiness(master: Master): Promise<Readiness> {
  const head = await headWithin(master, READY_WAIT_MS);
  if (head === undefined) return { ready: false, position: master.position, head: null, reason: "the event store does not answer" };
  if (master.position < head) await master.settledWithin(head, READY_WAIT_MS);
  if (master.position < head) return { ready: false, position: master.position, head, reason: `the read models are at ${master.position}, the log at ${head}: catching up` };
  return { ready: true, position: master.position, head };
}

/**
 * The operator's routes that answer other than JSON 2xx: `GET /readyz` (200 or 503) and
 * `GET /metrics` (Prometheus text, for admin or a metrics token: `allowed` says whether the
 * request carries one).
 */
export function operationsRoutes<L extends FastifyBaseLogger>(
  app: FastifyInstance<RawServerDefault, IncomingMessage, ServerResponse, L>,
  master: Master,   metrics: MasterMetrics,
  allowed: (request: FastifyRequest) => true | Actor,
): void {
  app.get(routerPath(routes.ready), async (_request, reply) => {
    const state = await readiness(master);
    return reply.code(state.ready ? 200 : 503).send(state);
  });
  app.get(routerPath(routes.metrics), async (request, reply) => {
    const who = allowed(request);
    if (who !== true && !(who.kind === "user" && who.userId === "admin")) throw new HttpError(403, "Forbidden", "only admin or a metrics token may read the metrics");
    const { contentType, text } = await metrics.scrape();
    return reply.code(200).type(contentType).send(text);
  });
}

const adminOnly = (actor: Actor): void => {
  if (!(actor.kind === "user" && actor.userId === "admin")) throw new HttpError(403, "Forbidden", "only admin may list or revoke tokens");
};

/** Listing and revoking the tokens of the master's token file (admin); refused (409) when its tokens were given in-process. */
export function tokenHandlers(tokenFile: TokenFileWatch | undefined): Handlers<"listTokens" | "revokeToken"> {
  const file = (): TokenFileWatch => {
    if (tokenFile === undefined) throw new HttpError(409, "Conflict", "this master was given its tokens in-process, not read from a token file");
    return tokenFile;
  };
  return {
    listTokens: {
      async handle({ actor }) {
        adminOnly(actor);
        const { path } = file();
        return { status: 200, body: { file: path, tokens: (await readTokenFile(path)).tokens.map(tokenInfoOf) } };
      },
    },
    revokeToken: {
      guard: (actor) => adminOnly(actor),
      async handle({ params }) {
        const watch = file();
        const revoked = orRefuse(await revokeInTokenFile(watch.path, params.tokenId));
        // At once, not when the watcher notices: the answer means the token is refused from now on.
        await watch.reload();
        return { status: 200, body: { revoked } };
      },
    },
  };
}
