import assert from "node:assert/strict";
import { readFile } from "node:fs/promises";
import { describe, it } from "node:test";
import { tempDir } from "@slap/testkit";
import { formatTable, runBench, selectScenarios, writeReport, type BenchReport } from "./harness.js";
import { scenarios } from "./scenarios/index.js";

describe("bench harness", () => {
  it("selects scenarios by substring and pulls in the ones they reference", () => {
    const { selected, asReference } = selectScenarios(scenarios, "adapter");
    assert.deepEqual(
      selected.map((s) => s.name),
      ["jetstream-raw", "jetstream-adapter"],
    );
    assert.deepEqual([...asReference], ["jetstream-raw"]);
    assert.deepEqual(
      selectScenarios(scenarios, "embedded").selected.map((s) => s.name),
      ["embedded"],
    );
    assert.equal(selectScenarios(scenarios, undefined).selected.length, scenarios.length);
  });

  // Every scenario starts servers and nodes: minutes on a loaded 2-core machine.
  it("runs every scenario at a tiny size and writes the report", { timeout: 300_000 }, async () => {
    const report = await runBench({
      runs: 1,
      sizes: { serial: 20, pipelined: 300, window: 50 },
      warmup: false,
      flags: { test: true },
    });

    assert.equal(report.format, "slap-bench/1");
    assert.ok(report.machine.cpus > 0);
    assert.match(report.machine.natsServer, /v\d+\.\d+/);
    assert.deepEqual(
      report.scenarios.map((s) => s.name),
      scenarios.map((s) => s.name),
    );
    for (const scenario of report.scenarios) {
      assert.deepEqual(scenario.errors, [], `${scenario.name} failed`);
      const spec = scenarios.find((s) => s.name === scenario.name)!;
      assert.deepEqual(
        scenario.figures.map((f) => f.key),
        spec.figures.map((f) => f.key),
      );
      for (const figure of scenario.figures) {
        const where = `${scenario.name}/${figure.key}`;
        assert.equal(figure.samples.length, 1, where);
        for (const value of [figure.median, figure.min, figure.max]) {
          assert.ok(typeof value === "number" && Number.isFinite(value) && value > 0, `${where}: ${value}`);
        }
        if (figure.target !== null) assert.equal(typeof figure.pass, "boolean", where);
        if (figure.reference !== null) {
          assert.ok(figure.reference.median !== null && figure.reference.median > 0, `${where}: reference measured`);
          assert.ok(figure.reference.ratio !== null && Number.isFinite(figure.reference.ratio), `${where}: ratio`);
        }
      }
    }

    const table = formatTable(report);
    for (const s of scenarios) assert.ok(table.includes(s.name), `table lists ${s.name}`);

    const out = await tempDir("slap-bench-test-");
    try {
      const path = await writeReport(report, `${out.path}/nested/results`);
      assert.match(path, /\/nested\/results\/\d{4}-\d{2}-\d{2}\.json$/);
      const written = JSON.parse(await readFile(path, "utf8")) as BenchReport;
      assert.deepEqual(written, report);
      const named = await writeReport({ ...report, flags: { quick: true, only: "jet stream" } }, out.path);
      assert.match(named, /\d{4}-\d{2}-\d{2}\.quick\.only-jet_stream\.json$/);
    } finally {
      await out.dispose();
    }
  });
});
