import assert from "node:assert/strict";
import { createServer, type Server } from "node:http";
import { readFile, stat } from "node:fs/promises";
import type { AddressInfo } from "node:net";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { fileURLToPath } from "node:url";
import { tempDir } from "@slap/testkit";
import { install, InstallError, INSTALLED_MARKER } from "./software.js";

const RELEASES = fileURLToPath(new URL("../../test-releases/", import.meta.url));
let server: Server;
let base = "";
let dir: { path: string; dispose(): Promise<void> };

before(async () => {
  dir = await tempDir("slap-software-");
  server = createServer((request, response) => {
    readFile(join(RELEASES, decodeURIComponent(request.url ?? "/").replace(/^\/+/, "")))
      .then((bytes) => response.end(bytes))
      .catch(() => {
        response.statusCode = 404;
        response.end("not found");
      });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});

after(async () => {
  await new Promise((resolve) => server.close(resolve));
  await dir.dispose();
});

describe("installing a release", () => {
  it("fetches a release served over http (the manifest and every file it lists), runs its install steps, writes the marker", async () => {
    const target = join(dir.path, "web");
    await install(`${base}/web/`, target);
    for (const file of ["slap-release.json", "profile.mjs", "destroy.mjs", "server.mjs", "web.conf.in", "installed.txt", INSTALLED_MARKER]) {
      assert.ok((await stat(join(target, file))).isFile(), file);
    }
  });

  it("fails with the log tail when an install step exits non-zero, and writes no marker", async () => {
    const target = join(dir.path, "broken");
    await assert.rejects(install(join(RELEASES, "broken"), target), (error: unknown) => error instanceof InstallError && /boom/.test(error.log) && /exited with code 3/.test(error.message));
    await assert.rejects(stat(join(target, INSTALLED_MARKER)));
  });

  it("fails clearly when the release is not there", async () => {
    await assert.rejects(install(`${base}/missing/`, join(dir.path, "missing")), /cannot fetch the release: GET slap-release.json: HTTP 404/);
  });
});
