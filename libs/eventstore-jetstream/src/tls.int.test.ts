import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { captureLogger, startNatsServer, tempDir, testCertificates, type NatsServer } from "@slap/testkit";
import { connectServiceLog } from "./service.js";

/** A service's log over TLS to a nats-server that requires it (NATS_CA), as the master and the allocators connect. */
let server: NatsServer;
let dir: Awaited<ReturnType<typeof tempDir>>;
let ca = "";

before(async () => {
  dir = await tempDir("slap-nats-tls-");
  const certificates = testCertificates(dir.path);
  ca = certificates.ca;
  server = await startNatsServer({ args: ["--tls", "--tlscert", certificates.cert, "--tlskey", certificates.key] });
});

after(async () => {
  await server?.dispose();
  await dir?.dispose();
});

describe("the log over TLS (natsCa)", () => {
  it("connects with the server's CA and reads the log", async () => {
    const { logger } = captureLogger();
    const store = await connectServiceLog({ nats: server.url, natsCa: ca }, logger);
    try {
      assert.equal(await store.head(), 0);
    } finally {
      await store.close();
    }
  });

  it("without the CA, the connection is refused: the server's certificate is not trusted", async () => {
    const { logger } = captureLogger();
    await assert.rejects(connectServiceLog({ nats: server.url }, logger), { name: "EventStoreError", message: /cannot connect to NATS/ });
  });
});
