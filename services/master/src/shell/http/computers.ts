import { decideComputerBang, decideRegisterComputer, decideSoftwareStatus, decideSupply } from "../../core/decide.js";
import { computerAsSeen, mayHeartbeat, mayReadDesired } from "../../core/visibility.js";
import type { Master } from "../master.js";
import { asOfOf, modelsOf, presentComputer, readAt } from "./reads.js";
import { HttpError, refuseIf, type Handlers } from "./route.js";

type ComputerOperation = "listComputers" | "registerComputer" | "getComputer" | "supplySoftware" | "reportSoftware" | "bangComputer" | "heartbeat" | "getDesiredState";

/** The computers (now or as of a past moment, holders masked as the actor may see them), their registration, software and heartbeats. */
export function computerHandlers(master: Master): Handlers<ComputerOperation> {
  return {
    listComputers: {
      async handle({ actor, query }) {
        const read = await readAt(master, query);
        const models = modelsOf(master, read);
        const computers = Object.values(read.views.computers.computers).map((c) => presentComputer(master, computerAsSeen(actor, c, models), read));
        return { status: 200, body: { computers, ...asOfOf(read) } };
      },
    },
    getComputer: {
      async handle({ actor, params: { computerId }, query }) {
        const read = await readAt(master, query);
        const computer = read.views.computers.computers[computerId];
        if (computer === undefined) throw new HttpError(404, "NotFound", `no computer ${computerId}`);
        return { status: 200, body: { computer: presentComputer(master, computerAsSeen(actor, computer, modelsOf(master, read)), read), ...asOfOf(read) } };
      },
    },
    registerComputer: {
      async handle({ actor, body }) {
        const { position } = await master.execute(actor, (ctx) => decideRegisterComputer(body, ctx));
        return { status: 200, body: { computerId: body.computerId, position } };
      },
    },
    supplySoftware: {
      async handle({ actor, params: { computerId }, body }) {
        const { position } = await master.execute(actor, (ctx) => decideSupply(computerId, body, ctx));
        return { status: 200, body: { computerId, position } };
      },
    },
    reportSoftware: {
      async handle({ actor, params: { computerId }, body }) {
        const { position } = await master.execute(actor, (ctx) => decideSoftwareStatus(computerId, body, ctx));
        return { status: 200, body: { computerId, position } };
      },
    },
    // A blocking query (Nomad's `?index=`): a commit that changes nothing of this computer wakes no one here.
    getDesiredState: {
      guard: (actor, { computerId }) => refuseIf(mayReadDesired(actor, computerId, master.view.state)),
      async handle({ params: { computerId }, query, reply }) {
        // The response closes before it is sent only when the watcher went away.
        const gone = new AbortController();
        const onClose = (): void => gone.abort();
        reply.raw.once("close", onClose);
        try {
          const desired = await master.waitForDesired(computerId, query.index ?? -1, query.index === undefined ? 0 : query.wait, gone.signal);
          if (desired === undefined) throw new HttpError(404, "NotFound", `no computer ${computerId}`);
          return { status: 200, body: desired };
        } finally {
          reply.raw.off("close", onClose);
        }
      },
    },
    bangComputer: {
      async handle({ actor, params: { computerId }, body }) {
        const { position } = await master.execute(actor, (ctx) => decideComputerBang(computerId, body, ctx));
        return { status: 200, body: { computerId, position } };
      },
    },
    // A node's sign of life (recorded by the onRequest hook, as for any call with its token).
    heartbeat: {
      handle({ actor, params: { computerId } }) {
        refuseIf(mayHeartbeat(actor, computerId, master.view.state));
        return { status: 200, body: { computerId, liveness: master.liveness(computerId) } };
      },
    },
  };
}
