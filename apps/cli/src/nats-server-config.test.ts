import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { decodeBase64 } from "bcryptjs";
import { bcryptHash, logReaderApi, natsPermissions, renderNatsConfig } from "./nats-server-config.js";

const pw = (c: string): string => c.repeat(12);

describe("nats-server configuration", () => {
  it("renders one user per service with its permissions, quoting every value", () => {
    const config = renderNatsConfig({
      master: { password: "$2a$11$abcdefghijklmnopqrstuuABCDEFGHIJKLMNOPQRSTUVWXYZ01234" },
      allocators: [{ user: "allocator-1", password: pw("a") }],
    });
    assert.match(config, /authorization \{\n {2}users = \[/);
    assert.match(config, /user: "master"\n {6}password: "\$2a\$11\$abcdefghijklmnopqrstuuABCDEFGHIJKLMNOPQRSTUVWXYZ01234"/);
    assert.match(config, /user: "allocator-1"/);
    assert.match(config, /publish: \{ allow: \["\$JS\.API\.>", "slap\.ev\.>", "slap\.dead\.SLAP_EVENTS\.>"\] \}/);
    assert.equal(config.match(/user: /g)?.length, 2, "the master and the allocator: nodes have no NATS user");
  });

  it("gives allocators the read side of the log's JetStream API, and partition and instance subjects", () => {
    const allocator = natsPermissions("allocator");
    assert.ok(logReaderApi("SLAP_EVENTS").every((s) => allocator.publish.allow.includes(s)));
    assert.ok(allocator.publish.allow.includes("slap.ev.computer.*.partition.*"));
    assert.ok(allocator.publish.allow.includes("slap.ev.tree.*.instance.*"));
    assert.ok(!allocator.publish.allow.some((s) => s.endsWith(".computer") || s === "slap.ev.>"));
  });

  it("refuses a user name that is not a token, a password that would need escaping, and two users of one name", () => {
    const base = { master: { password: pw("m") }, allocators: [] };
    assert.throws(() => renderNatsConfig({ ...base, allocators: [{ user: "ALLOC 1", password: pw("a") }] }), /allocators\.0\.user: must be 1-64 characters/);
    assert.throws(() => renderNatsConfig({ ...base, allocators: [{ user: "A1", password: 'abc"defghij' }] }), /allocators\.0\.password/);
    assert.throws(() => renderNatsConfig({ ...base, master: { password: "short" } }), /master\.password/);
    assert.throws(() => renderNatsConfig({ ...base, allocators: [{ user: "master", password: pw("a") }] }), /allocators\.0\.user: user master is already master\.user/);
    assert.throws(
      () => renderNatsConfig({ ...base, allocators: [{ user: "A1", password: pw("a") }, { user: "A1", password: pw("b") }] }),
      /user A1 is already allocators\.0\.user/,
    );
  });
});

describe("bcrypt hashes for nats.conf", () => {
  it("puts the given salt and cost in a $2a$ hash that reproduces published vectors", () => {
    for (const [password, hash] of [
      ["U*U", "$2a$05$CCCCCCCCCCCCCCCCCCCCC.E5YPO9kmyuRGyh0XouQYb4YMJKvyOeW"], // OpenWall
      ["", "$2a$06$DCq7YPn5Rq63x1Lad4cll.TV4S6ytwfsfvkgY8jIucDrjc8deX1s."], // jBCrypt
    ] as const) {
      const salt = Uint8Array.from(decodeBase64(hash.slice(7, 29), 16));
      assert.equal(bcryptHash(password, salt, Number(hash.slice(4, 6))), hash);
    }
    assert.throws(() => bcryptHash("x", new Uint8Array(15), 4), RangeError);
  });

  it("agrees with libxcrypt on a non-ASCII password and counts only the first 72 bytes", () => {
    // From Python's crypt (libxcrypt) with salt "abcdefghijklmnopqrstuu"; bcrypt keeps 128 of the salt's 132 bits.
    const salt = Uint8Array.from(decodeBase64("abcdefghijklmnopqrstuu", 16));
    assert.equal(bcryptHash("abcdefghijabcdefghijabcdefghij12x\u00e9", salt, 4).slice(-31), ".ZuPmGyp.dTNF3AUV9hKJjHQBkePPfC");
    const long = bcryptHash("0123456789".repeat(10), salt, 4);
    assert.equal(long.slice(-31), "m2G75IXDN/xsgbNa/hCiPSKyIHQd70S");
    assert.equal(bcryptHash(`${"0123456789".repeat(7)}01`, salt, 4), long);
  });

  it("gives a 60-character $2a$ hash whose salt reads back, and refuses a bad cost", () => {
    const salt = Uint8Array.from({ length: 16 }, (_, i) => i * 13);
    const hash = bcryptHash("secret", salt, 4);
    assert.match(hash, /^\$2a\$04\$[./A-Za-z0-9]{53}$/);
    assert.deepEqual(Uint8Array.from(decodeBase64(hash.slice(7, 29), 16)), salt);
    assert.notEqual(bcryptHash("secret!", salt, 4), hash);
    assert.throws(() => bcryptHash("x", salt, 3), RangeError);
    assert.throws(() => bcryptHash("x", salt, 32), RangeError);
  });
});
