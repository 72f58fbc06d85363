import assert from "node:assert/strict";
import { readFile, stat, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { tempDir } from "@slap/testkit";
import { Credentials, sha256Of } from "@slap/master";
import { fakeIo } from "./io.fixture.js";
import { main } from "./main.js";

let dir: Awaited<ReturnType<typeof tempDir>>;
before(async () => {
  dir = await tempDir("slap-token-");
});
after(() => dir.dispose());

async function slap(...argv: string[]) {
  const t = fakeIo();
  const code = await main(argv, t.io);
  return { code, stdout: t.stdout(), stderr: t.stderr() };
}

describe("slap token", () => {
  it("adds the token's hash to the token file and writes the token once, both readable by their owner only", async () => {
    const file = join(dir.path, "tokens.json");
    const out = join(dir.path, "node-1.token");
    const made = await slap("token", "--file", file, "--role", "node", "--computer", "COMP-1", "--out", out, "--name", "rack 3");
    assert.equal(made.code, 0, made.stderr);
    assert.equal(made.stdout, "", "with --out the token is not printed");
    const token = (await readFile(out, "utf8")).trim();
    assert.equal((await stat(out)).mode & 0o777, 0o600);
    assert.equal((await stat(file)).mode & 0o777, 0o600);
    const text = await readFile(file, "utf8");
    assert.ok(!text.includes(token) && text.includes(sha256Of(token)), "the file holds the hash only");
    assert.deepEqual((await Credentials.load(file)).identify(token), { role: "node", computer: "COMP-1" });

    const printed = await slap("token", "--file", file, "--role", "user", "--user", "alice");
    assert.equal(printed.code, 0, printed.stderr);
    assert.deepEqual((await Credentials.load(file)).identify(printed.stdout.trim()), { role: "user", user: "alice" });
    assert.deepEqual((await Credentials.load(file)).identify(token), { role: "node", computer: "COMP-1" }, "the earlier token stays");
  });

  it("refuses to overwrite a token file, a role without its id, and an invalid token file (left as it was)", async () => {
    const file = join(dir.path, "refusals.json");
    const out = join(dir.path, "kept.token");
    await writeFile(out, "someone's token\n");
    const overwrite = await slap("token", "--file", file, "--role", "admin", "--out", out);
    assert.equal(overwrite.code, 1);
    assert.match(overwrite.stderr, /exists: not overwritten/);
    assert.equal(await readFile(out, "utf8"), "someone's token\n");

    for (const [argv, message] of [
      [["--role", "user"], /--user: is required with --role user/],
      [["--role", "node"], /--computer: is required with --role node/],
      [["--role", "user", "--user", "admin"], /admin is a role/],
      [["--role", "admin", "--computer", "C1"], /--computer: goes with --role node only/],
      [["--role", "root"], /--role: must be admin, user, node or metrics/],
    ] as const) {
      const refused = await slap("token", "--file", file, ...argv);
      assert.equal(refused.code, 64, `${argv.join(" ")}: ${refused.stderr}`);
      assert.match(refused.stderr, message);
    }

    const broken = join(dir.path, "broken.json");
    await writeFile(broken, "{ not json");
    const invalid = await slap("token", "--file", broken, "--role", "admin");
    assert.equal(invalid.code, 1);
    assert.match(invalid.stderr, /is not JSON: not changed/);
    assert.equal(await readFile(broken, "utf8"), "{ not json");
  });
});
