import { openApiDocument } from "@slap/api";
import { mayAudit } from "../../core/visibility.js";
import type { Master } from "../master.js";
import { refuseIf, type Handlers } from "./route.js";

/** Health, the API document, who the sender is, and the audit (admin). */
export function adminHandlers(master: Master): Handlers<"health" | "openApi" | "whoami" | "audit"> {
  return {
    health: { handle: () => ({ status: 200, body: { ok: true, position: master.position } }) },
    openApi: { handle: () => ({ status: 200, body: openApiDocument() as { openapi: string; paths: Record<string, unknown> } }) },
    whoami: { handle: ({ actor }) => ({ status: 200, body: { actor } }) },
    audit: {
      async handle({ actor }) {
        refuseIf(mayAudit(actor));
        return { status: 200, body: await master.audit() };
      },
    },
  };
}
