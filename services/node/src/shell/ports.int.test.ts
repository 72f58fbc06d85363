import assert from "node:assert/strict";
import { spawn, type ChildProcess } from "node:child_process";
import { createServer, type Server } from "node:net";
import { after, describe, it } from "node:test";
import { eventually, freePortBlock, tempDir } from "@slap/testkit";
import { checkPortBlocks, foreignAnswer, PortsTakenError } from "./ports.js";
import { SERVICE_MARK } from "./supervisor.js";

const started: ChildProcess[] = [];
/** Each started in a process group of its own: the whole group (the wrapper's child too) is killed at the end. */
after(() => {
  for (const child of started) {
    try {
      if (child.pid !== undefined) process.kill(-child.pid, "SIGKILL");
    } catch {
      // Gone already.
    }
  }
});

/**
 * A service of the partition at `path` as a wrapper: the marked process starts a child that
 * listens on `port`, without the mark in its environment (a descendant, not marked itself).
 */
function wrappedService(path: string, port: number): ChildProcess {
  const server = `require("net").createServer((s) => s.end()).listen(${port}, "127.0.0.1")`;
  const wrapper = `require("child_process").spawn(process.execPath, ["-e", ${JSON.stringify(server)}], { env: { PATH: process.env.PATH }, stdio: "inherit" });`;
  const child = spawn(process.execPath, ["-e", wrapper], { env: { PATH: process.env.PATH ?? "/usr/bin:/bin", [SERVICE_MARK]: `${path}#main` }, stdio: "ignore", detached: true });
  started.push(child);
  return child;
}

function listening(port: number): () => Promise<true | undefined> {
  return () =>
    new Promise((resolve) => {
      const probe: Server = createServer().listen({ host: "127.0.0.1", port, exclusive: true });
      probe.once("listening", () => probe.close(() => resolve(undefined)));
      probe.once("error", () => resolve(true));
    });
}

describe("whose a partition's port is, without partition users (by the service mark)", () => {
  it("a listener started by a partition's service (a child without the mark) is the partition's own, and someone else's for another partition", async () => {
    const dir = await tempDir("slap-ports-");
    try {
      const base = await freePortBlock(100);
      const mine = { path: `${dir.path}/slappart0`, address: "127.0.0.1", ports: { from: base, to: base + 99 } };
      const other = { ...mine, path: `${dir.path}/slappart1` };
      wrappedService(mine.path, base + 3);
      await eventually("the service's child to listen", listening(base + 3));

      assert.equal(await foreignAnswer(mine, "127.0.0.1", base + 3), undefined);
      assert.equal(await foreignAnswer(mine, "localhost", base + 3), undefined, "localhost reaches the loopback address");
      const foreign = await foreignAnswer(other, "127.0.0.1", base + 3);
      assert.match(foreign ?? "", new RegExp(`^port ${base + 3} is answered by a process that is not this partition's \\(uid ${process.getuid?.()}( \\S+)?, pid \\d+ \\S*node -e require\\("net"\\)`));
      assert.equal(await foreignAnswer(other, "127.0.0.2", base + 3), undefined, "another address: not the partition's to check");
      assert.equal(await foreignAnswer({ ...other, ports: { from: base + 10, to: base + 99 } }, "127.0.0.1", base + 3), undefined, "a port outside the block: not checked");

      await checkPortBlocks([{ ...mine, partitionId: "slappart0" }]);
      await assert.rejects(checkPortBlocks([{ ...other, partitionId: "slappart1" }]), (error: unknown) => {
        assert.ok(error instanceof PortsTakenError);
        assert.deepEqual(error.taken.map((t) => t.port), [base + 3]);
        return true;
      });
    } finally {
      await dir.dispose();
    }
  });
});
