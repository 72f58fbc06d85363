// Instance profile of the kvdb release: declares what a kvdb instance is; the node makes it so.
// Re-run on every processing, so everything here is idempotent: the password is created once
// (slap.secret), the config is rewritten only when it changes (slap.write), and directories are
// created with `recursive: true`.
import { createHash } from "node:crypto";
import { mkdir } from "node:fs/promises";
import { join } from "node:path";

/** An address as it appears in a URL (IPv6 in brackets). */
function urlHost(address) {
  return address.includes(":") ? `[${address}]` : address;
}

/** A secret name from an arbitrary id (slap.secret names are file names). */
function secretName(prefix, id) {
  return `${prefix}-${createHash("sha256").update(String(id)).digest("hex").slice(0, 16)}`;
}

export default async function deploy(slap) {
  const { path: root, address, ports } = slap.partition;
  const port = ports.from;
  const dataDir = join(root, "srv", "kvdb");
  await mkdir(dataDir, { recursive: true });
  await mkdir(join(root, "etc"), { recursive: true });

  const password = await slap.secret("password");
  const url = `http://${urlHost(address)}:${port}`;

  // Shared instances (slave instances in SlapOS terms): each gets its own password, confined to
  // keys starting with "<its instance id>/" — not its reference, which is only unique per user
  // (alice's shared "db" and bob's shared "db" on one kvdb must not share keys).
  const tenants = [];
  for (const shared of slap.sharedInstances ?? []) {
    const tenantPassword = await slap.secret(secretName("shared", shared.instanceId));
    const prefix = `${shared.instanceId}/`;
    tenants.push({ prefix, password: tenantPassword });
    await slap.publishShared(shared.instanceId, { url, password: tenantPassword, prefix });
  }

  const config = {
    host: address,
    port,
    password,
    dataFile: join(dataDir, "data.json"),
    maxKeys: Number(slap.parameters["max-keys"] ?? "10000"),
    tenants,
  };
  const text = `${JSON.stringify(config, null, 2)}\n`;
  const configPath = "etc/kvdb.json";
  await slap.write(configPath, text, { mode: 0o600 });

  // The node restarts a service only when its declaration changes: the config digest in env makes
  // a config change (new shared instance, new max-keys) restart the server.
  await slap.service("kvdb", {
    command: [process.execPath, join(slap.software, "server.mjs"), join(root, configPath)],
    env: { KVDB_CONFIG_DIGEST: createHash("sha256").update(text).digest("hex").slice(0, 16) },
  });
  await slap.promise("http", { http: `${url}/healthz` });
  await slap.publish({ url, password });
}
