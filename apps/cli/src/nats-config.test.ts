import assert from "node:assert/strict";
import { readFile, readdir, stat, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { describe, it } from "node:test";
import { tempDir } from "@slap/testkit";
import { HELP } from "./args.js";
import { fakeIo } from "./io.fixture.js";
import { main } from "./main.js";
import { natsConfigFiles, parseNatsConfigArgs } from "./nats-config.js";

describe("slap nats-config arguments", () => {
  it("takes the allocators (default 2), the folder and SLAP_STREAM; no computers (nodes have no NATS user)", () => {
    assert.deepEqual(parseNatsConfigArgs(["--out", "d"], {}), {
      allocators: 2,
      out: "d",
      force: false,
    });
    const args = parseNatsConfigArgs(["--allocators", "0", "--out", "d", "--force"], { SLAP_STREAM: "LOG" });
    assert.deepEqual(args !== HELP && [args.allocators, args.streamName, args.force], [0, "LOG", true]);
    assert.equal(parseNatsConfigArgs(["--help"], {}), HELP);
  });

  it("names the flag of every mistake in one line", () => {
    const cases: Array<[string[], RegExp]> = [
      [["--computers", "C1", "--out", "d"], /computers/],
      [["--allocators", "two", "--out", "d"], /^--allocators: must be a number/],
      [["--allocators", "101", "--out", "d"], /^--allocators: /],
      [["--allocators", "-1", "--out", "d"], /^--allocators needs a value/],
      [[], /^--out: is required/],
    ];
    for (const [argv, message] of cases) assert.throws(() => parseNatsConfigArgs(argv, {}), { name: "UsageError", message }, argv.join(" "));
    assert.throws(() => parseNatsConfigArgs(["--out", "d"], { SLAP_STREAM: "a.b" }), { message: /^SLAP_STREAM: / });
  });
});

describe("slap nats-config files", () => {
  it("holds hashes in nats.conf and each service's user and password in its env file", () => {
    let counter = 0;
    const random = (size: number) => Uint8Array.from({ length: size }, () => counter++ & 0xff);
    const files = natsConfigFiles({ allocators: 1 }, random);
    assert.deepEqual(files.map((f) => f.name), ["nats.conf", "master.env", "allocator-1.env"]);
    const env = (name: string) => Object.fromEntries(files.find((f) => f.name === name)!.text.split("\n").filter((l) => l.includes("=")).map((l) => l.split("=", 2) as [string, string]));
    assert.deepEqual(Object.keys(env("master.env")), ["NATS_USER", "NATS_PASSWORD"]);
    assert.equal(env("allocator-1.env").ALLOCATOR_REPLICA, "allocator-1");
    const passwords = files.slice(1).map((f) => env(f.name).NATS_PASSWORD!);
    assert.equal(new Set(passwords).size, 2);
    for (const password of passwords) {
      assert.match(password, /^[A-Za-z0-9_-]{32}$/);
      assert.ok(!files[0]!.text.includes(password));
    }
    assert.equal(files[0]!.text.match(/password: "\$2a\$11\$/g)?.length, 2);
  });

  it("writes them 0600 in a 0700 folder, and replaces them only with --force", async () => {
    const dir = await tempDir("slap-natsconf-");
    try {
      const out = join(dir.path, "nats");
      const first = fakeIo();
      assert.equal(await main(["nats-config", "--allocators", "1", "--out", out], first.io), 0, first.stderr());
      assert.deepEqual((await readdir(out)).sort(), ["allocator-1.env", "master.env", "nats.conf"]);
      assert.equal((await stat(out)).mode & 0o777, 0o700);
      for (const name of await readdir(out)) assert.equal((await stat(join(out, name))).mode & 0o777, 0o600, name);
      assert.equal(first.stdout().trim().split("\n").length, 3);
      const before = await readFile(join(out, "master.env"), "utf8");

      const again = fakeIo();
      assert.equal(await main(["nats-config", "--allocators", "1", "--out", out], again.io), 1);
      assert.match(again.stderr(), /^slap nats-config: .*nats\.conf exists: pass --force to replace the files \(every password changes\)\n$/);
      assert.equal(await readFile(join(out, "master.env"), "utf8"), before);

      await writeFile(join(out, "master.env"), "x", { mode: 0o644 });
      const forced = fakeIo();
      assert.equal(await main(["nats-config", "--allocators", "1", "--out", out, "--force"], forced.io), 0);
      assert.notEqual(await readFile(join(out, "master.env"), "utf8"), before);
      assert.equal((await stat(join(out, "master.env"))).mode & 0o777, 0o600);
    } finally {
      await dir.dispose();
    }
  });
});
