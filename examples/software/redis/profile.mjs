// Instance profile of the redis release: wraps the redis-server found on PATH (the install step,
// `redis-server --version`, fails clearly when it is missing). Renders etc/redis.conf from the
// release's redis.conf.in, runs redis-server in the foreground, checks the port answers.
import { createHash } from "node:crypto";
import { mkdir } from "node:fs/promises";
import { join } from "node:path";

/** A redis config string argument, double-quoted (redis unescapes \\ and \" inside quotes). */
function quote(value) {
  return `"${String(value).replace(/[\\"]/g, (c) => `\\${c}`).replace(/\n/g, "\\n").replace(/\r/g, "\\r")}"`;
}

export default async function deploy(slap) {
  const { path: root, address, ports } = slap.partition;
  const port = ports.from;
  const dir = join(root, "srv", "redis");
  await mkdir(dir, { recursive: true });
  await mkdir(join(root, "etc"), { recursive: true });

  const password = await slap.secret("password");
  const configPath = "etc/redis.conf";
  const values = {
    address,
    port: String(port),
    password: quote(password),
    dir: quote(dir),
    maxmemory: slap.parameters.maxmemory ?? "64mb",
    maxmemoryPolicy: slap.parameters["maxmemory-policy"] ?? "noeviction",
  };
  await slap.render("redis.conf.in", configPath, values);
  // The node restarts a service only when its declaration changes: the digest of the config's
  // values in env makes a parameter change restart redis-server. (The node writes the config after
  // the profile returned, so the profile cannot read it back; the template is fixed by the release.)
  await slap.service("redis", {
    command: ["redis-server", join(root, configPath)],
    env: { REDIS_CONFIG_DIGEST: createHash("sha256").update(JSON.stringify(values)).digest("hex").slice(0, 16) },
  });
  await slap.promise("tcp", { tcp: { host: address, port } });

  const host = address.includes(":") ? `[${address}]` : address;
  await slap.publish({
    url: `redis://:${encodeURIComponent(password)}@${host}:${port}`,
    host: address,
    port: String(port),
    password,
  });
}
