import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { MASK, isSecretName, maskSecrets, maskUrlPasswords } from "./secrets.js";

describe("what is masked", () => {
  it("a name that says credential is masked whole, in any spelling", () => {
    for (const name of ["password", "db-password", "DB_PASSWORD", "adminPassword", "passwd", "pass", "pwd", "passphrase", "secret", "client_secret", "token", "authToken", "access-token", "credentials", "api-key", "apiKey", "API_KEY", "apikey", "private-key", "privateKey", "AWS_SECRET_ACCESS_KEY", "access_key", "signing-key"]) {
      assert.equal(isSecretName(name), true, name);
    }
  });

  it("a name that only mentions keys, passes or the like is not (max-keys is not a key)", () => {
    for (const name of ["max-keys", "maxKeys", "key", "keys", "key-prefix", "keyspace", "monkey", "url", "host", "port", "passive", "compass", "bypass-cache", "passenger", "hotkey", "user"]) {
      assert.equal(isSecretName(name), false, name);
    }
  });

  it("a URL's password is masked in any value, whatever its name; the rest of the URL stays", () => {
    assert.equal(maskUrlPasswords("redis://:s3cret@10.0.0.1:6379"), `redis://:${MASK}@10.0.0.1:6379`);
    assert.equal(maskUrlPasswords("postgresql://app:p%40ss@db.example:5432/app?sslmode=require"), `postgresql://app:${MASK}@db.example:5432/app?sslmode=require`);
    assert.equal(maskUrlPasswords("https://user:p@ss@host/x"), `https://user:${MASK}@host/x`, "an unencoded @ in the password");
    assert.equal(maskUrlPasswords("first amqp://a:b@h1 then mongodb://c:d@h2/db"), `first amqp://a:${MASK}@h1 then mongodb://c:${MASK}@h2/db`);
    for (const clear of ["http://10.0.0.1:8080/path", "ssh://user@host:22", "http://host:8080/a@b", "kv://10.0.0.1:20000", "plain text: a@b"]) {
      assert.equal(maskUrlPasswords(clear), clear, clear);
    }
  });

  it("a map: secret names masked, URL passwords masked in the others, nothing else touched", () => {
    assert.deepEqual(maskSecrets({ url: "redis://:pw@10.0.0.1:6379", password: "pw", "max-keys": "100", host: "10.0.0.1" }), {
      url: `redis://:${MASK}@10.0.0.1:6379`,
      password: MASK,
      "max-keys": "100",
      host: "10.0.0.1",
    });
  });
});
