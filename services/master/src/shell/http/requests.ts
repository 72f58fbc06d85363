import type { Answer } from "@slap/api";
import { decideRequest } from "../../core/decide.js";
import { guardReason } from "../../core/visibility.js";
import type { Master } from "../master.js";
import { modelsOf } from "./reads.js";
import { HttpError, type Handlers } from "./route.js";

/** An answer with its status: 202 while pending ("ask again"), 200 once ready or destroyed. */
export const withStatus = (answer: Answer) => (answer.status === "pending" ? { status: 202 as const, body: answer } : { status: 200 as const, body: answer });

/** `POST /v1/requests`: request (idempotently), then answer, after a long poll of `wait` ms at most. */
export function requestHandlers(master: Master): Handlers<"requestInstance"> {
  return {
    requestInstance: {
      async handle({ actor, query, body }) {
        const result = await master.execute(actor, (ctx) => decideRequest(body, ctx));
        const instanceId = result.instanceId!;
        const answer = await master.waitForAnswer(instanceId, query.wait);
        if (answer === undefined) throw new HttpError(500, "Internal", `instance ${instanceId} is missing from the read model`);
        return withStatus(guardReason(actor, master.instance(instanceId)!, answer, modelsOf(master)));
      },
    },
  };
}
