import assert from "node:assert/strict";
import { spawn, type ChildProcess } from "node:child_process";
import { mkdir } from "node:fs/promises";
import { join } from "node:path";
import { after, describe, it } from "node:test";
import { captureLogger, eventually, tempDir } from "@slap/testkit";
import { markedServices, reapLeftovers, SERVICE_MARK } from "./supervisor.js";

const started: ChildProcess[] = [];
after(() => {
  for (const child of started) if (child.exitCode === null && child.signalCode === null) child.kill("SIGKILL");
});

/** A service as a killed node leaves it: running, marked with its partition, no pid file. */
function orphan(partition: string, name: string): ChildProcess {
  const child = spawn("sleep", ["300"], { env: { PATH: process.env.PATH ?? "/usr/bin:/bin", [SERVICE_MARK]: `${partition}#${name}` }, stdio: "ignore" });
  started.push(child);
  return child;
}

const alive = (child: ChildProcess): boolean => child.exitCode === null && child.signalCode === null;

describe("services left behind by a node killed before it recorded their pid", () => {
  it("are found by their mark and stopped when the node starts again; another partition's are left alone", async () => {
    const dir = await tempDir("slap-leftovers-");
    try {
      const mine = join(dir.path, "slappart0");
      const other = join(dir.path, "slappart1");
      await mkdir(mine, { recursive: true });
      const left = orphan(mine, "main");
      const neighbour = orphan(other, "main");
      const marked = await eventually("the orphans are marked in /proc", async () => {
        const found = await markedServices();
        return found.get(mine)?.some((p) => p.pid === left.pid) === true && found.get(other)?.some((p) => p.pid === neighbour.pid) === true ? found : undefined;
      });

      const { logger, lines } = captureLogger();
      const reaped = await reapLeftovers(mine, logger, marked.get(mine));
      assert.equal(reaped, 1);
      await eventually("the orphan is gone", () => Promise.resolve(alive(left) ? undefined : true));
      assert.ok(alive(neighbour), "another partition's service runs on");
      assert.ok(lines.some((l) => l.msg === "stopping a service left running by a previous run of the node" && l.pid === left.pid));
    } finally {
      await dir.dispose();
    }
  });
});
