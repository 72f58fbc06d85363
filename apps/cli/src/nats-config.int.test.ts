import assert from "node:assert/strict";
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { jetstream } from "@nats-io/jetstream";
import { connect } from "@nats-io/transport-node";
import { encodeCommit } from "@slap/events";
import { JetStreamEventStore, inboxPrefixOf, natsCredentialsFromEnv } from "@slap/eventstore-jetstream";
import { captureLogger, fixtures, startNatsServer, tempDir, type NatsServer } from "@slap/testkit";
import { fakeIo } from "./io.fixture.js";
import { main } from "./main.js";

/** An env file as the services get it: `KEY=value` lines, `#` comments. */
async function envFile(path: string): Promise<Record<string, string>> {
  const lines = (await readFile(path, "utf8")).split("\n").filter((l) => l !== "" && !l.startsWith("#"));
  return Object.fromEntries(lines.map((l) => [l.slice(0, l.indexOf("=")), l.slice(l.indexOf("=") + 1)]));
}

describe("slap nats-config output on a real nats-server", () => {
  let dir: Awaited<ReturnType<typeof tempDir>>;
  let server: NatsServer;

  before(async () => {
    dir = await tempDir("slap-natsconf-int-");
    const t = fakeIo();
    assert.equal(await main(["nats-config", "--allocators", "2", "--out", dir.path], t.io), 0, t.stderr());
    server = await startNatsServer({ args: ["-c", join(dir.path, "nats.conf")] });
  });
  after(async () => {
    await server.dispose();
    await dir.dispose();
  });

  it("lets every service in with the credentials of its env file, and no node at all (nodes have no NATS user)", async () => {
    const credentials = async (name: string) => natsCredentialsFromEnv(await envFile(join(dir.path, name)));
    const open = async (name: string) =>
      JetStreamEventStore.connect({ servers: server.url, ...(await credentials(name)), logger: captureLogger().logger });
    const master = await open("master.env");
    const stores = [master];
    try {
      await master.append([fixtures.computerRegistered("COMP-1")], { expectedVersion: 0 });
      for (const name of ["allocator-1.env", "allocator-2.env"]) {
        const store = await open(name);
        stores.push(store);
        assert.equal(await store.head(), 1, name);
      }
      const allocator = stores[1]!;
      await allocator.append([fixtures.partitionAllocated("COMP-1", "slappart0", "I1")], { expectedVersion: 0 });
      const nc = await connect({ servers: server.url, ...(await credentials("allocator-1.env")), inboxPrefix: inboxPrefixOf("allocator-1"), reconnect: false });
      try {
        await assert.rejects(jetstream(nc).publish("slap.ev.computer.COMP-1.computer", encodeCommit([fixtures.computerRegistered("COMP-1")])), /Permissions Violation for Publish to "slap\.ev\.computer\.COMP-1\.computer"/);
      } finally {
        await nc.close();
      }
      assert.equal(await master.head(), 2);
      await assert.rejects(connect({ servers: server.url, user: "COMP-1", pass: (await credentials("allocator-1.env")).pass!, reconnect: false }), {
        name: "AuthorizationError",
      });
    } finally {
      for (const store of stores.reverse()) await store.close();
    }
  });
});
