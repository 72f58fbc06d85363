/**
 * The master over HTTPS (`--tls-cert`, `--tls-key`) with a certificate of its own CA: the CLI (a
 * process) and a node reach it given that CA (`--ca`, `SLAP_CA`), and without it the CLI says
 * the certificate is not trusted.
 */
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { execFileSync, spawn } from "node:child_process";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { EmbeddedEventStore } from "@slap/eventstore-embedded";
import { runMaster, type RunningMaster } from "@slap/master";
import { runNode, type RunningNode } from "@slap/node";
import { captureLogger, freePortBlock, releasePortBlock, tempDir, testToken, tokenFile } from "@slap/testkit";

const root = fileURLToPath(new URL("../../", import.meta.url));
const COMPUTER = "COMP-TLS";
let dir: Awaited<ReturnType<typeof tempDir>>;
let store: EmbeddedEventStore;
let master: RunningMaster;
let node: RunningNode | undefined;
let portBase = 0;
let ca = "";

/** A CA, and a certificate it signs for 127.0.0.1 and localhost (openssl). */
function makeCertificates(at: string): { ca: string; cert: string; key: string } {
  const file = (name: string) => join(at, name);
  const openssl = (...args: string[]) => execFileSync("openssl", args, { stdio: ["ignore", "ignore", "pipe"] });
  openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=slap test CA", "-keyout", file("ca.key"), "-out", file("ca.pem"));
  openssl("req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=127.0.0.1", "-keyout", file("master.key"), "-out", file("master.csr"));
  writeFileSync(file("san.ext"), "subjectAltName=IP:127.0.0.1,DNS:localhost\n");
  openssl("x509", "-req", "-in", file("master.csr"), "-CA", file("ca.pem"), "-CAkey", file("ca.key"), "-CAcreateserial", "-days", "1", "-extfile", file("san.ext"), "-out", file("master.pem"));
  return { ca: file("ca.pem"), cert: file("master.pem"), key: file("master.key") };
}

function slap(args: string[], env: Record<string, string> = {}): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const { SLAP_MASTER: _m, SLAP_TOKEN: _t, SLAP_TOKEN_FILE: _f, SLAP_DATA: _d, SLAP_CA: _c, ...inherited } = process.env;
  const child = spawn(process.execPath, ["bin/slap.mjs", ...args], { cwd: root, env: { ...inherited, SLAP_DATA: join(dir.path, "none"), ...env }, stdio: ["ignore", "pipe", "pipe"] });
  let stdout = "";
  let stderr = "";
  child.stdout.setEncoding("utf8").on("data", (chunk: string) => (stdout += chunk));
  child.stderr.setEncoding("utf8").on("data", (chunk: string) => (stderr += chunk));
  return new Promise((resolve, reject) => {
    child.on("error", reject);
    child.on("close", (code) => resolve({ code, stdout, stderr }));
  });
}

before(async () => {
  dir = await tempDir("slap-tls-");
  const certificates = makeCertificates(dir.path);
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
