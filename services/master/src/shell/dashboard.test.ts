import assert from "node:assert/strict";
import { describe, it } from "node:test";
import Fastify from "fastify";
import { checkDashboardFiles, isDashboardPath, registerDashboard, type DashboardFiles } from "./dashboard.js";

const files: DashboardFiles = {
  "index.html": { contentType: "text/html; charset=utf-8", body: "<!doctype html><title>d</title>" },
  "app.mjs": { contentType: "text/javascript; charset=utf-8", body: "export {};" },
  "logo.png": { contentType: "image/png", body: Uint8Array.of(0x89, 0x50, 0x4e, 0x47) },
};

describe("the dashboard's files", () => {
  it("serves index.html at / and /dashboard and every other file at /dashboard/<name>, with its content type", async () => {
    const app = Fastify();
    try {
      registerDashboard(app, checkDashboardFiles(files));
      for (const [url, type, body] of [
        ["/", "text/html; charset=utf-8", "<!doctype html><title>d</title>"],
        ["/dashboard", "text/html; charset=utf-8", "<!doctype html><title>d</title>"],
        ["/dashboard/app.mjs", "text/javascript; charset=utf-8", "export {};"],
      ] as const) {
        const response = await app.inject({ method: "GET", url });
        assert.equal(response.statusCode, 200, url);
        assert.equal(response.headers["content-type"], type, url);
        assert.equal(response.headers["cache-control"], "no-cache", url);
        assert.equal(response.body, body, url);
      }
      const png = await app.inject({ method: "GET", url: "/dashboard/logo.png" });
      assert.deepEqual([...png.rawPayload], [0x89, 0x50, 0x4e, 0x47]);
      assert.equal((await app.inject({ method: "GET", url: "/dashboard/index.html" })).statusCode, 404);
      assert.equal((await app.inject({ method: "GET", url: "/dashboard/other.js" })).statusCode, 404);
    } finally {
      await app.close();
    }
  });

  it("are refused at start without an index.html, with a name that is not a plain file name, or without a content type", () => {
    const { "index.html": _index, ...noIndex } = files;
    assert.throws(() => checkDashboardFiles(noIndex), /the dashboard has no index\.html/);
    assert.throws(() => checkDashboardFiles({ ...files, "../secret": { contentType: "text/plain", body: "" } }), /"\.\.\/secret" is not a plain file name/);
    assert.throws(() => checkDashboardFiles({ ...files, "a/b.js": { contentType: "text/javascript", body: "" } }), /is not a plain file name/);
    assert.throws(() => checkDashboardFiles({ ...files, "x.js": { contentType: " ", body: "" } }), /x\.js has no content type/);
  });

  it("are public paths: / and everything under /dashboard, nothing else", () => {
    assert.ok(isDashboardPath("/") && isDashboardPath("/dashboard") && isDashboardPath("/dashboard/app.mjs?x=1"));
    assert.ok(!isDashboardPath("/dashboards") && !isDashboardPath("/v1/instances"));
  });
});
