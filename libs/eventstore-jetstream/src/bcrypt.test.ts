import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { bcryptHash, bcryptSalt } from "./bcrypt.js";

describe("bcrypt", () => {
  it("reproduces published bcrypt vectors", () => {
    for (const hash of [
      "$2a$05$CCCCCCCCCCCCCCCCCCCCC.E5YPO9kmyuRGyh0XouQYb4YMJKvyOeW", // "U*U" (OpenWall)
      "$2a$06$DCq7YPn5Rq63x1Lad4cll.TV4S6ytwfsfvkgY8jIucDrjc8deX1s.", // "" (jBCrypt)
    ]) {
      const password = hash.startsWith("$2a$05") ? "U*U" : "";
      assert.equal(bcryptHash(password, bcryptSalt(hash), Number(hash.slice(4, 6))), hash);
    }
  });

  it("agrees with libxcrypt on a non-ASCII password and counts only the first 72 bytes", () => {
    // From Python's crypt (libxcrypt) with salt "abcdefghijklmnopqrstuu"; bcrypt keeps 128 of the salt's 132 bits.
    const salt = bcryptSalt("$2b$04$abcdefghijklmnopqrstuu");
    assert.equal(bcryptHash("abcdefghijabcdefghijabcdefghij12x\u00e9", salt, 4).slice(-31), ".ZuPmGyp.dTNF3AUV9hKJjHQBkePPfC");
    const long = bcryptHash("0123456789".repeat(10), salt, 4);
    assert.equal(long.slice(-31), "m2G75IXDN/xsgbNa/hCiPSKyIHQd70S");
    assert.equal(bcryptHash(`${"0123456789".repeat(7)}01`, salt, 4), long);
  });

  it("gives a 60-character $2a$ hash whose salt reads back, and refuses a bad cost or salt", () => {
    const salt = Uint8Array.from({ length: 16 }, (_, i) => i * 13);
    const hash = bcryptHash("secret", salt, 4);
    assert.match(hash, /^\$2a\$04\$[./A-Za-z0-9]{53}$/);
    assert.deepEqual(bcryptSalt(hash), salt);
    assert.notEqual(bcryptHash("secret!", salt, 4), hash);
    assert.throws(() => bcryptHash("x", salt, 3), RangeError);
    assert.throws(() => bcryptHash("x", salt.subarray(1), 4), RangeError);
    assert.throws(() => bcryptSalt("plain"), RangeError);
  });
});
