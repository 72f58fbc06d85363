import { showSecrets } from "@slap/api";
import type { Actor } from "@slap/events";
import { decideBang, decideDestroyed, decidePublish, decideStateChange, decideStatus, keyOf, requesterOf } from "../../core/decide.js";
import { findInstance, guardReason, maskAnswer, mustSeeBeforeChanging, visibleInstances } from "../../core/visibility.js";
import type { Master } from "../master.js";
import { asOfOf, details, modelsOf, presentInstance, readAt } from "./reads.js";
import { withStatus } from "./requests.js";
import { orRefuse, STREAMED, type Handlers } from "./route.js";
import { openEventStream } from "./sse.js";

type InstanceOperation = "listInstances" | "getInstance" | "getByReference" | "watchInstance" | "changeState" | "bang" | "publishConnection" | "reportInstanceStatus" | "reportDestroyed";

/** The instance reads (now or as of a past moment), the watch, and the commands about one instance. */
export function instanceHandlers(master: Master): Handlers<InstanceOperation> {
  /** The instance, live, if the actor may see it; else a 404. */
  const found = (actor: Actor, instanceId: string) => orRefuse(findInstance(actor, instanceId, modelsOf(master)));
  /** Users first see the instance: they must not learn from a 403 or a 409 that someone else's exists. */
  const seenFirst = (actor: Actor, { instanceId }: { instanceId: string }): void => {
    if (mustSeeBeforeChanging(actor)) found(actor, instanceId);
  };
  return {
    listInstances: {
      async handle({ actor, query }) {
        const read = await readAt(master, query, actor);
        const instances = visibleInstances(actor, modelsOf(master, read));
        const treeIds = new Set(instances.map((i) => i.treeId));
        const show = showSecrets(query);
        return {
          status: 200,
          body: {
            instances: instances.map((i) => presentInstance(master, i, show, read)),
            trees: Object.values(read.views.instances.trees).filter((t) => treeIds.has(t.treeId)),
            ...asOfOf(read),
          },
        };
      },
    },
    getInstance: {
      async handle({ actor, params, query }) {
        const read = await readAt(master, query, actor);
        const instance = orRefuse(findInstance(actor, params.instanceId, modelsOf(master, read)));
        return { status: 200, body: details(master, actor, instance, showSecrets(query), read) };
      },
    },
    getByReference: {
      async handle({ actor, params, query }) {
        const read = await readAt(master, query, actor);
        const requester = orRefuse(requesterOf({ ...master.context(actor), ...read.views }));
        const instance = orRefuse(findInstance(actor, keyOf(requester, params.reference).instanceId, modelsOf(master, read)));
        return { status: 200, body: details(master, actor, instance, showSecrets(query), read) };
      },
    },
    watchInstance: {
      handle({ actor, params: { instanceId }, request, reply }) {
        found(actor, instanceId);
        // Like the answer to a request, a watch serves the requester: connection parameters unmasked.
        const show = true;
        let last = "";
        const stream = openEventStream(request, reply);
        const push = (): void => {
          const instance = master.instance(instanceId);
          if (instance === undefined) return;
          const answer = JSON.stringify(maskAnswer(guardReason(actor, instance, master.answer(instance), modelsOf(master)), show));
          if (answer !== last) {
            last = answer;
            void stream.send("answer", answer);
          }
        };
        push();
        const unsubscribe = master.onChange(push);
        stream.onClose(unsubscribe);
        return STREAMED;
      },
    },
    changeState: {
      async handle({ actor, params: { instanceId }, body }) {
        found(actor, instanceId);
        await master.execute(actor, (ctx) => decideStateChange(instanceId, body.state, ctx));
        const instance = master.instance(instanceId)!;
        return withStatus(guardReason(actor, instance, master.answer(instance), modelsOf(master)));
      },
    },
    bang: {
      // Every sender must see the instance it bangs (a partition: its own tree).
      guard: (actor, { instanceId }) => void found(actor, instanceId),
      async handle({ actor, params: { instanceId }, body }) {
        const { position } = await master.execute(actor, (ctx) => decideBang(instanceId, body, ctx));
        return { status: 200, body: { instanceId, position } };
      },
    },
    publishConnection: {
      guard: seenFirst,
      async handle({ actor, params: { instanceId }, body }) {
        const { position } = await master.execute(actor, (ctx) => decidePublish(instanceId, body, ctx));
        return { status: 200, body: { instanceId, position } };
      },
    },
    reportInstanceStatus: {
      guard: seenFirst,
      async handle({ actor, params: { instanceId }, body }) {
        const { position } = await master.execute(actor, (ctx) => decideStatus(instanceId, body, ctx));
        return { status: 200, body: { instanceId, position } };
      },
    },
    reportDestroyed: {
      guard: seenFirst,
      async handle({ actor, params: { instanceId } }) {
        const { position } = await master.execute(actor, (ctx) => decideDestroyed(instanceId, ctx));
        return { status: 200, body: { instanceId, position } };
      },
    },
  };
}
