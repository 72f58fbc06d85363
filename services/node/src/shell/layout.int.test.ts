import assert from "node:assert/strict";
import { chmod, chown, mkdir } from "node:fs/promises";
import { join } from "node:path";
import { describe, it } from "node:test";
import { tempDir } from "@slap/testkit";
import { checkLayout, checkRootReachable, LayoutError } from "./layout.js";
import type { PartitionUser } from "./users.js";

const ROOT = process.getuid?.() === 0;
/** A user that owns nothing here (chown needs root: these tests run as root, as CI does). */
const nobody: PartitionUser = { name: "nobody", uid: 65_534, gid: 65_534 };

const refused = (path: string, pattern: RegExp) => (error: unknown) => {
  assert.ok(error instanceof LayoutError, String(error));
  assert.equal(error.path, path);
  assert.match(error.message, pattern);
  return true;
};

describe("the node's folders and the partition users", { skip: ROOT ? false : "chown needs root" }, () => {
  it("a root is reachable when every parent is traversable by the users, by others' bits or their group's", async () => {
    const dir = await tempDir("slap-layout-");
    try {
      const root = join(dir.path, "root");
      await mkdir(root);
      await chmod(dir.path, 0o700);
      await assert.rejects(checkRootReachable(root, [nobody]), refused(dir.path, /is not reachable by the partition users \(nobody\): .* \(mode 0700, owner uid 0 gid 0\) is not traversable/));
      await chmod(dir.path, 0o701);
      await checkRootReachable(root, [nobody]);
      await chown(dir.path, 0, nobody.gid);
      await chmod(dir.path, 0o710);
      await checkRootReachable(root, [nobody]);
    } finally {
      await dir.dispose();
    }
  });

  it("refuses a software folder a partition user may write into, and a partition folder that is not its user's 0750", async () => {
    const dir = await tempDir("slap-layout-");
    try {
      const software = join(dir.path, "software");
      const partition = join(dir.path, "slappart0");
      await mkdir(software, { mode: 0o755 });
      await mkdir(partition);
      await chmod(dir.path, 0o755);
      await chmod(software, 0o777);
      await chown(partition, nobody.uid, nobody.gid);
      await chmod(partition, 0o750);
      const partitions = [{ path: partition, user: nobody }];
      await assert.rejects(checkLayout(dir.path, software, partitions), refused(software, /\(mode 0777, owner uid 0 gid 0\) is writable by the partition user nobody/));
      await chmod(software, 0o755);
      await checkLayout(dir.path, software, partitions);
      await chmod(partition, 0o755);
      await assert.rejects(checkLayout(dir.path, software, partitions), refused(partition, /must belong to its partition user nobody \(uid 65534 gid 65534\), mode 0750/));
    } finally {
      await dir.dispose();
    }
  });
});
