import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { openApiDocument } from "./openapi.js";
import { ROUTES, routes, pathOf, routerPath } from "./routes.js";
import { ApiError } from "./schemas.js";

type Operation = { operationId: string; security?: unknown[]; responses: Record<string, { content?: Record<string, { schema?: unknown; itemSchema?: unknown }> }> };

describe("the route table", () => {
  it("names each operation once, by its key, and each method and path once", () => {
    for (const [key, route] of Object.entries(routes)) assert.equal(route.operationId, key);
    const routesSeen = ROUTES.map((r) => `${r.method} ${r.path}`);
    assert.equal(new Set(routesSeen).size, routesSeen.length, routesSeen.join(", "));
  });

  it("gives every operation a success answer, and its error answers the one error shape (but readiness's 503, its own answer); a route needing a token answers 401", () => {
    for (const route of ROUTES) {
      const statuses = Object.keys(route.responses).map(Number);
      assert.ok(statuses.some((s) => s >= 200 && s < 300), `${route.operationId} has no success answer`);
      for (const status of statuses.filter((s) => s >= 400 && !(route.operationId === "ready" && s === 503))) {
        const spec = route.responses[status]!;
        assert.ok("body" in spec && spec.body === ApiError, `${route.operationId} ${status} is not ApiError`);
      }
      if (route.auth !== "public") assert.ok(statuses.includes(401), `${route.operationId} needs a token but lists no 401`);
      if (route.body !== undefined || route.query !== undefined || route.params !== undefined) assert.ok(route.auth === "public" || statuses.includes(400), `${route.operationId} takes input but lists no 400`);
    }
  });

  it("writes paths for the router and with parameters encoded", () => {
    assert.equal(routerPath(routes.getInstance), "/v1/instances/:instanceId");
    assert.equal(pathOf(routes.getByReference, { reference: "my db/1?" }), "/v1/references/my%20db%2F1%3F");
  });
});

describe("the OpenAPI document", () => {
  it("lists every operation of the table, with a schema for every answer of every operation", () => {
    const document = openApiDocument() as { openapi: string; paths: Record<string, Record<string, Operation>> };
    assert.equal(document.openapi, "3.1.0");
    const operations = Object.values(document.paths).flatMap((ops) => Object.values(ops));
    assert.deepEqual(operations.map((o) => o.operationId).sort(), ROUTES.map((r) => r.operationId).sort());
    for (const operation of operations) {
      for (const [status, response] of Object.entries(operation.responses)) {
        const media = Object.values(response.content ?? {});
        assert.ok(media.length === 1 && media[0]!.schema !== undefined, `${operation.operationId} ${status} has no schema`);
      }
    }
    const request = document.paths["/v1/requests"]!.post as Operation & { requestBody: { required: boolean } };
    assert.equal(request.requestBody.required, true);
    assert.equal(document.paths["/healthz"]!.get!.security?.length, 0, "a public route needs no token");
    const names = (op: unknown) => (op as { parameters: Array<{ name: string; in: string }> }).parameters.map((p) => `${p.in} ${p.name}`);
    assert.deepEqual(names(document.paths["/v1/instances/{instanceId}"]!.get), ["path instanceId", "query secrets", "query asOf", "query at", "header x-slap-seen"]);
    const watch = document.paths["/v1/instances/{instanceId}/watch"]!.get!;
    assert.ok(watch.responses["200"]!.content!["text/event-stream"]!.itemSchema !== undefined, "a stream documents its events' data");
  });
});
