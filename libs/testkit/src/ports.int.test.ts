import assert from "node:assert/strict";
import { existsSync } from "node:fs";
import { readFile } from "node:fs/promises";
import { createServer, type Server } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, it } from "node:test";
import { freePortBlock, releasePortBlock } from "./ports.js";

const listen = (port: number): Promise<Server> =>
  new Promise((resolve, reject) => {
    const server = createServer();
    server.once("error", reject);
    server.listen({ host: "127.0.0.1", port, exclusive: true }, () => resolve(server));
  });

describe("free port blocks for tests", () => {
  it("hands out a block of ports that can all be bound, from 30000 up and outside the ephemeral range", async () => {
    const [first, last] = (await readFile("/proc/sys/net/ipv4/ip_local_port_range", "utf8")).trim().split(/\s+/).map(Number);
    const base = await freePortBlock(150);
    assert.ok(base >= 30_000 && base + 149 <= 65_535, `block ${base}`);
    assert.ok(base + 149 < first! || base > last!, `block ${base}-${base + 149} is outside ${first}-${last}`);
    const servers: Server[] = [];
    try {
      for (let port = base; port < base + 150; port++) servers.push(await listen(port));
    } finally {
      await Promise.all(servers.map((s) => new Promise((resolve) => s.close(resolve))));
    }
    assert.equal(servers.length, 150);
  });

  it("never hands out overlapping blocks to one process", async () => {
    const blocks = await Promise.all(Array.from({ length: 8 }, () => freePortBlock(200)));
    const ports = blocks.flatMap((base) => Array.from({ length: 200 }, (_, k) => base + k));
    assert.equal(new Set(ports).size, ports.length, `overlapping blocks ${blocks.join(", ")}`);
  });

  it("reserves a block's slots for this process (files in the temporary folder naming its pid) until it is released", async () => {
    const base = await freePortBlock(250);
    const files = [0, 100, 200].map((k) => join(tmpdir(), `slap-test-ports-${process.getuid?.() ?? "user"}`, String(base + k)));
    for (const file of files) assert.equal(await readFile(file, "utf8"), String(process.pid), file);
    await releasePortBlock(base);
    for (const file of files) assert.equal(existsSync(file), false, `${file} is gone`);
  });

  it("checks every port on the addresses the test names, and gives up when none can be bound there", async () => {
    // 192.0.2.1 (TEST-NET-1) is no address of this host: nothing can be bound on it.
    await assert.rejects(freePortBlock(10, { addresses: ["192.0.2.1"], attempts: 3 }), /no block of 10 free ports found after 3 tries \(on 127\.0\.0\.1, 192\.0\.2\.1\)/);
    const base = await freePortBlock(10, { addresses: ["127.0.0.1"], highest: 32_000 });
    assert.ok(base >= 30_000 && base + 9 <= 32_000, `block ${base}`);
  });
});
