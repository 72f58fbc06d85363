import { z } from "zod";
import { SeenHeader } from "./inputs.js";
import { ROUTES, type ResponseSpec, type RouteSpec } from "./routes.js";

/** A zod schema as JSON Schema: inputs as a sender writes them (defaults optional), answers as they come. */
function json(schema: z.ZodType, io: "input" | "output"): Record<string, unknown> {
  const document: Record<string, unknown> = z.toJSONSchema(schema, { io, unrepresentable: "any" });
  // Each is embedded in the document, which says its dialect once (OpenAPI 3.1: JSON Schema 2020-12).
  delete document.$schema;
  return document;
}

/** A query or path schema's fields, each an OpenAPI parameter. */
function parameters(schema: z.ZodType | undefined, where: "path" | "query"): unknown[] {
  if (schema === undefined) return [];
  const document = json(schema, "input") as { properties?: Record<string, { description?: string }>; required?: string[] };
  return Object.entries(document.properties ?? {}).map(([name, property]) => {
    const { description, ...rest } = property;
    return {
      name,
      in: where,
      ...(where === "path" || document.required?.includes(name) === true ? { required: true } : {}),
      schema: rest,
      ...(description === undefined ? {} : { description }),
    };
  });
}

function response(spec: ResponseSpec): unknown {
  if ("body" in spec) return { description: spec.description, content: { "application/json": { schema: json(spec.body, "output") } } };
  if ("stream" in spec) {
    return {
      description: `${spec.description}: each \`event: ${spec.stream.event}\` message's data is this JSON; \`:\` comments are heartbeats`,
      content: { "text/event-stream": { schema: { type: "string" }, itemSchema: json(spec.stream.data, "output"), "x-event": spec.stream.event } },
    };
  }
  return { description: spec.description, content: { [spec.file]: { schema: { type: "string" } } } };
}

/** `x-slap-seen` (API.md, "Reading after what you have seen"), taken by every route that needs a token. */
const seen = {
  name: "x-slap-seen",
  in: "header",
  schema: json(SeenHeader, "input"),
  description: "a log position the caller has seen: the answer waits (5 s at most) for the read models to include it",
};

function operation(route: RouteSpec): unknown {
  return {
    operationId: route.operationId,
    summary: route.summary,
    ...(route.auth === "public" ? { security: [] } : { "x-roles": route.auth }),
    parameters: [...parameters(route.params, "path"), ...parameters(route.query, "query"), ...(route.auth === "public" ? [] : [seen])],
    ...(route.body === undefined ? {} : { requestBody: { required: route.body.safeParse({}).success === false, content: { "application/json": { schema: json(route.body, "input") } } } }),
    responses: Object.fromEntries(Object.entries(route.responses).map(([status, spec]) => [status, response(spec)])),
  };
}

let cached: unknown;

/** The OpenAPI 3.1 document of the master's API, generated from the route table (routes.ts). */
export function openApiDocument(): unknown {
  if (cached !== undefined) return cached;
  const paths: Record<string, Record<string, unknown>> = {};
  for (const route of ROUTES) (paths[route.path] ??= {})[route.method.toLowerCase()] = operation(route);
  cached = {
    openapi: "3.1.0",
    info: { title: "slap master", version: "1", description: "Request instances, get them placed, get their connection parameters. See services/master/API.md." },
    components: {
      securitySchemes: {
        token: { type: "http", scheme: "bearer", description: "an API token of the master's token file: role admin, user or node" },
        partition: { type: "apiKey", in: "header", name: "x-slap-partition", description: "with a node's token: act for <computerId>/<partitionId> of that node's computer" },
      },
    },
    security: [{ token: [] }],
    paths,
  };
  return cached;
}
