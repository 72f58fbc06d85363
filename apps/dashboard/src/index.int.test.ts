import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { dashboardFiles } from "./index.js";

describe("the dashboard's files", () => {
  it("are the page, its style and its script bundled into one module the browser loads with no other import", async () => {
    const files = await dashboardFiles();
    assert.deepEqual(Object.keys(files).sort(), ["dashboard.css", "dashboard.mjs", "index.html"]);
    assert.match(files["index.html"]!.contentType, /^text\/html/);
    assert.match(files["index.html"]!.body, /<script type="module" src="\/dashboard\/dashboard\.mjs"><\/script>/);
    assert.match(files["dashboard.css"]!.contentType, /^text\/css/);
    const script = files["dashboard.mjs"]!;
    assert.match(script.contentType, /^text\/javascript/);
    assert.doesNotMatch(script.body, /^\s*import\b|\bfrom\s*["']|\bimport\(/m, "no import left for the browser to resolve");
    assert.match(script.body, /createParser/, "eventsource-parser is bundled in");
    assert.match(script.body, /\/v1\/events\/stream/);
    assert.doesNotMatch(script.body, /innerHTML|outerHTML|insertAdjacentHTML|document\.write/);
  });
});
