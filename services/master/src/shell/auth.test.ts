import assert from "node:assert/strict";
import { readFile, stat, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { tempDir } from "@slap/testkit";
import { authenticate, Credentials, openOrCreateTokenFile, sha256Of, TokenFileError, type TokenEntry } from "./auth.js";

const ADMIN = "admin-token-0123456789";
const ALICE = "alice-token-0123456789";
const NODE = "node-token-COMP-1-0123";

let dir: Awaited<ReturnType<typeof tempDir>>;
before(async () => {
  dir = await tempDir("slap-auth-");
});
after(() => dir.dispose());

let files = 0;
/** Writes `content` (JSON unless a string) to a fresh file of the temp dir; returns its path. */
async function fileWith(content: unknown): Promise<string> {
  const path = join(dir.path, `tokens-${++files}.json`);
  await writeFile(path, typeof content === "string" ? content : JSON.stringify(content));
  return path;
}

async function loadError(content: unknown): Promise<string> {
  const path = await fileWith(content);
  try {
    await Credentials.load(path);
  } catch (error) {
    assert.ok(error instanceof TokenFileError, String(error));
    assert.equal(error.retryable, false);
    assert.ok(error.message.includes(path), `${error.message} names the file`);
    return error.message.slice(error.message.indexOf(path) + path.length);
  }
  return assert.fail(`${JSON.stringify(content)} was accepted`);
}

describe("the token file", () => {
  it("names the entry and the field of each mistake", async () => {
    const admin = { role: "admin", token: ADMIN };
    assert.equal(await loadError({ tokens: [admin, { role: "user", user: "a b", token: ALICE }] }), ": tokens.1.user: must be 1-64 characters of A-Z, a-z, 0-9, _ or -");
    assert.equal(await loadError({ tokens: [admin, { role: "node", computer: "COMP/1", token: NODE }] }), ": tokens.1.computer: must be 1-64 characters of A-Z, a-z, 0-9, _ or -");
    assert.equal(await loadError({ tokens: [{ role: "admin", token: "short" }] }), ": tokens.0.token: must be at least 16 characters");
    assert.equal(await loadError({ tokens: [{ role: "admin", token: `${"x".repeat(20)} ${"y".repeat(20)}` }] }), ": tokens.0.token: must be printable ASCII without spaces");
    assert.equal(await loadError({ tokens: [{ role: "admin", token: "x".repeat(513) }] }), ": tokens.0.token: must be at most 512 characters");
    assert.equal(await loadError({ tokens: [{ role: "admin", sha256: "ABC" }] }), ": tokens.0.sha256: must be 64 lowercase hex digits (the token's SHA-256)");
    assert.equal(await loadError({ tokens: [admin, admin, { role: "node", computer: "C1" }] }), ": tokens.2: give exactly one of token or sha256");
    assert.equal(await loadError({ tokens: [{ ...admin, sha256: sha256Of(ADMIN) }] }), ": tokens.0: give exactly one of token or sha256");
    assert.match(await loadError({ tokens: [{ role: "root", token: ADMIN }] }), /^: tokens\.0\.role: /);
    assert.equal(await loadError({ tokens: [{ ...admin, extra: 1 }] }), ': tokens.0: Unrecognized key: "extra"');
    assert.match(await loadError([]), /^: \(root\): /);
  });

  it("refuses one token listed twice, naming both entries", async () => {
    const twice = await loadError({ tokens: [{ role: "user", user: "alice", token: ALICE }, { role: "admin", token: ADMIN }, { role: "admin", sha256: sha256Of(ALICE) }] });
    assert.equal(twice, ": tokens.2: the same token as tokens.0");
  });

  it("refuses a user entry named admin: admin is a role", async () => {
    assert.equal(await loadError({ tokens: [{ role: "user", user: "admin", token: ALICE }] }), ": tokens.0.user: admin is a role: use role admin");
  });

  it("says when the file is missing or not JSON", async () => {
    const missing = join(dir.path, "nope.json");
    await assert.rejects(Credentials.load(missing), { name: "TokenFileError", message: new RegExp(`^cannot read the token file ${missing}: ENOENT`) });
    assert.equal(await loadError("{ tokens: ["), " is not JSON");
    // The parser's message would quote the text around the mistake: a token, here.
    assert.ok(!(await loadError('{"tokens":[{"role":"admin","token":slap_SECRETSECRETSECRET}]}')).includes("SECRET"));
  });

  it("accepts a token in clear or as its SHA-256, and knows which identity each names", async () => {
    const credentials = await Credentials.load(
      await fileWith({
        tokens: [
          { role: "admin", sha256: sha256Of(ADMIN), name: "ops" },
          { role: "user", user: "alice", token: ALICE },
          { role: "node", computer: "COMP-1", sha256: sha256Of(NODE) },
        ],
      }),
    );
    assert.equal(credentials.size, 3);
    assert.deepEqual(credentials.identify(ADMIN), { role: "admin" });
    assert.deepEqual(credentials.identify(ALICE), { role: "user", user: "alice" });
    assert.deepEqual(credentials.identify(NODE), { role: "node", computer: "COMP-1" });
    assert.equal(credentials.identify(sha256Of(ADMIN)), undefined, "the hash itself is not a token");
    assert.equal(credentials.identify(`${ALICE}x`), undefined);
    assert.equal(credentials.identify(""), undefined);
  });

  it("adds tokens minted in the process to those of the file", () => {
    const file = new Credentials([{ role: "admin", token: ADMIN }]);
    const more: TokenEntry[] = [{ role: "node", computer: "COMP-9", token: NODE }];
    const merged = file.with(more);
    assert.equal(merged.size, 2);
    assert.deepEqual(merged.identify(NODE), { role: "node", computer: "COMP-9" });
    assert.deepEqual(merged.identify(ADMIN), { role: "admin" });
    assert.equal(file.identify(NODE), undefined, "the original is unchanged");
  });
});

describe("the token file made at first start", () => {
  it("creates tokens.json and admin.token, both readable by their owner only, the token in the file as its hash only", async () => {
    const path = join(dir.path, "first", "tokens.json");
    const opened = await openOrCreateTokenFile(path);
    const adminTokenFile = join(dir.path, "first", "admin.token");
    assert.deepEqual(opened.created, { adminTokenFile });
    for (const file of [path, adminTokenFile]) assert.equal((await stat(file)).mode & 0o777, 0o600, file);
    const token = (await readFile(adminTokenFile, "utf8")).trim();
    assert.match(token, /^slap_[A-Za-z0-9_-]{43}$/);
    assert.deepEqual(opened.credentials.identify(token), { role: "admin" });
    const text = await readFile(path, "utf8");
    assert.ok(!text.includes(token), "the token file holds no secret");
    assert.ok(text.includes(sha256Of(token)));
  });

  it("reloads the same admin token next time, creating nothing", async () => {
    const path = join(dir.path, "again", "tokens.json");
    await openOrCreateTokenFile(path);
    const adminTokenFile = join(dir.path, "again", "admin.token");
    const token = (await readFile(adminTokenFile, "utf8")).trim();
    const before = await stat(adminTokenFile);
    const again = await openOrCreateTokenFile(path);
    assert.equal(again.created, undefined);
    assert.deepEqual(again.credentials.identify(token), { role: "admin" });
    assert.equal((await readFile(adminTokenFile, "utf8")).trim(), token);
    assert.equal((await stat(adminTokenFile)).mtimeMs, before.mtimeMs);
  });

  it("never replaces a token file that exists but is invalid", async () => {
    const path = await fileWith({ tokens: [{ role: "user", user: "admin", token: ALICE }] });
    await assert.rejects(openOrCreateTokenFile(path), { name: "TokenFileError", message: /tokens\.0\.user: admin is a role/ });
    assert.equal(await readFile(path, "utf8"), JSON.stringify({ tokens: [{ role: "user", user: "admin", token: ALICE }] }));
  });
});

describe("authenticating a request", () => {
  const credentials = new Credentials([
    { role: "admin", token: ADMIN },
    { role: "user", user: "alice", token: ALICE },
    { role: "node", computer: "COMP-1", token: NODE },
  ]);
  const bearer = (token: string) => `Bearer ${token}`;

  it("names the actor of a known token", () => {
    assert.deepEqual(authenticate(credentials, bearer(ADMIN), undefined), { actor: { kind: "user", userId: "admin" } });
    assert.deepEqual(authenticate(credentials, bearer(ALICE), undefined), { actor: { kind: "user", userId: "alice" } });
    assert.deepEqual(authenticate(credentials, bearer(NODE), undefined), { actor: { kind: "node", computerId: "COMP-1" } });
    assert.deepEqual(authenticate(credentials, bearer(NODE), "COMP-1/slappart3"), { actor: { kind: "partition", computerId: "COMP-1", partitionId: "slappart3" } });
    // The scheme is case-insensitive (RFC 9110); the token is not.
    assert.deepEqual(authenticate(credentials, `bearer ${ALICE}`, undefined), { actor: { kind: "user", userId: "alice" } });
    assert.equal("status" in authenticate(credentials, `Bearer ${ALICE.toUpperCase()}`, undefined), true);
  });

  it("answers 401 without a token, with another scheme, a malformed header, an unknown or too long token", () => {
    for (const header of [undefined, "", ADMIN, `Basic ${ADMIN}`, `Bearer  ${ADMIN}`, `Bearer ${ADMIN} `, "Bearer ", `Bearer ${ADMIN}x`, bearer("x".repeat(513)), bearer("é".repeat(20))]) {
      const result = authenticate(credentials, header, undefined);
      assert.ok("status" in result && result.status === 401 && result.code === "Unauthorized", `${JSON.stringify(header)}: ${JSON.stringify(result)}`);
    }
    assert.deepEqual(authenticate(credentials, undefined, undefined), {
      status: 401,
      code: "Unauthorized",
      message: "missing credentials: send the header Authorization: Bearer <token>",
    });
  });

  it("lets a node's token act for its own computer's partitions only, and no other token at all", () => {
    assert.deepEqual(authenticate(credentials, bearer(NODE), "COMP-2/slappart0"), {
      status: 403,
      code: "Forbidden",
      message: "header x-slap-partition: the token of computer COMP-1 cannot act for a partition of COMP-2",
    });
    for (const token of [ADMIN, ALICE]) {
      const result = authenticate(credentials, bearer(token), "COMP-1/slappart0");
      assert.ok("status" in result && result.status === 403, JSON.stringify(result));
    }
    for (const header of ["../../etc", "COMP-1", "COMP-1/slappart0/x", "COMP-1/"]) {
      const result = authenticate(credentials, bearer(NODE), header);
      assert.ok("status" in result && result.status === 400, `${header}: ${JSON.stringify(result)}`);
    }
    const unknown = authenticate(credentials, bearer(`${NODE}x`), "COMP-1/slappart0");
    assert.ok("status" in unknown && unknown.status === 401, "an unknown token is 401 before its partition header is looked at");
  });
});
