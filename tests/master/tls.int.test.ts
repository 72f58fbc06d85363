/**
 * The master over HTTPS (`--tls-cert`, `--tls-key`) with a certificate of its own CA: the CLI (a
 * process) and a node reach it given that CA (`--ca`, `SLAP_CA`), and without it the CLI says
 * the certificate is not trusted.
 */
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { join } from "node:path";
import { EmbeddedEventStore } from "@slap/eventstore-embedded";
import { runMaster, type RunningMaster } from "@slap/master";
import { runNode, type RunningNode } from "@slap/node";
import { captureLogger, freePortBlock, releasePortBlock, runSlap, tempDir, testCertificates, testToken, tokenFile } from "@slap/testkit";

const COMPUTER = "COMP-TLS";
let dir: Awaited<ReturnType<typeof tempDir>>;
let store: EmbeddedEventStore;
let master: RunningMaster;
let node: RunningNode | undefined;
let portBase = 0;
let ca = "";

const slap = (args: string[], env: Record<string, string> = {}) => runSlap(args, { SLAP_DATA: join(dir.path, "none"), ...env });

before(async () => {
  dir = await tempDir("slap-tls-");
  const certificates = testCertificates(dir.path);
  ca = certificates.ca;
  const { logger } = captureLogger();
  store = await EmbeddedEventStore.open({ dir: join(dir.path, "data"), logger });
  master = await runMaster(
    { port: 0, host: "127.0.0.1", tokens: tokenFile(join(dir.path, "tokens"), { users: ["alice"], computers: [COMPUTER] }), tlsCert: certificates.cert, tlsKey: certificates.key },
    { store, logger },
  );
});

after(async () => {
  await node?.stop();
  await master?.stop();
  await store?.close();
  if (portBase > 0) await releasePortBlock(portBase);
  await dir?.dispose();
});

describe("the master over HTTPS", () => {
  it("serves https:// only", async () => {
    assert.match(master.url, /^https:\/\/127\.0\.0\.1:\d+$/);
    await assert.rejects(fetch(master.url.replace("https:", "http:") + "/healthz"));
  });

  it("the CLI reaches it with --ca or SLAP_CA", async () => {
    const env = { SLAP_MASTER: master.url, SLAP_TOKEN: testToken.user("alice") };
    const withFlag = await slap(["instances", "--ca", ca], env);
    assert.equal(withFlag.code, 0, withFlag.stderr);
    assert.equal(withFlag.stdout, "no instances\n");
    const withEnv = await slap(["instances"], { ...env, SLAP_CA: ca });
    assert.equal(withEnv.code, 0, withEnv.stderr);
  });

  it("without the CA, the CLI says which master's certificate it does not trust and how to give the CA", async () => {
    const run = await slap(["instances"], { SLAP_MASTER: master.url, SLAP_TOKEN: testToken.user("alice") });
    assert.equal(run.code, 1);
    assert.match(run.stderr, new RegExp(`^slap instances: the master at ${master.url.replace(/[.]/g, "\\.")} has a certificate this client does not trust \\([A-Z_]+\\): give its CA with --ca FILE or SLAP_CA\\n$`));
  });

  it("a node given the CA registers its computer and sends its heartbeats over HTTPS", async () => {
    portBase = await freePortBlock(100);
    node = await runNode(
      { master: master.url, ca, token: testToken.node(COMPUTER), computer: COMPUTER, partitions: 1, root: join(dir.path, "srv"), portBase, partitionUsers: "off", logLevel: "silent" },
      { handleSignals: false },
    );
    const state = master.master.computers.computers[COMPUTER];
    assert.ok(state !== undefined, "registered");
    assert.equal(master.master.liveness(COMPUTER).state, "responsive");
  });
});
