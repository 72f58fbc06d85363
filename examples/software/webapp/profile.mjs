// Instance profile of the webapp release: requests a kvdb in the same tree, then runs a small web
// server that counts its visits in that kvdb.
//
// The kvdb release URL comes from the `kvdb-url` parameter. Its default, "examples/software/kvdb",
// is a path relative to the node's working directory (the repository root when the node runs from
// it): it can not be derived from this file's location, because the node runs a copy of this
// release from <root>/software/<hash>/, where no sibling kvdb folder exists.
import { createHash } from "node:crypto";
import { mkdir } from "node:fs/promises";
import { join } from "node:path";

function urlHost(address) {
  return address.includes(":") ? `[${address}]` : address;
}

export default async function deploy(slap) {
  const { path: root, address, ports } = slap.partition;
  const port = ports.from;
  const kvdbUrl = slap.parameters["kvdb-url"] ?? "examples/software/kvdb";
  const reference = slap.parameters["kvdb-reference"] ?? "kvdb";

  // Throws the node's Waiting error until the kvdb is deployed and has published its connection
  // parameters: processing ends with "waiting for kvdb" and resumes when it is ready.
  const kvdb = await slap.request(kvdbUrl, reference, { softwareType: "default" });
  if (!kvdb?.url || !kvdb?.password) {
    throw new Error(`kvdb "${reference}" published no url/password: ${JSON.stringify(Object.keys(kvdb ?? {}))}`);
  }

  await mkdir(join(root, "etc"), { recursive: true });
  const config = {
    host: address,
    port,
    title: slap.parameters.title ?? "slap webapp",
    kvdbUrl: kvdb.url,
    kvdbPassword: kvdb.password,
    counterKey: `webapp/${slap.instance?.instanceId ?? "default"}/visits`,
  };
  const text = `${JSON.stringify(config, null, 2)}\n`;
  const configPath = "etc/webapp.json";
  await slap.write(configPath, text, { mode: 0o600 });

  const url = `http://${urlHost(address)}:${port}`;
  await slap.service("webapp", {
    command: [process.execPath, join(slap.software, "server.mjs"), join(root, configPath)],
    // a changed config (new kvdb password or address) changes the declaration: the node restarts it
    env: { WEBAPP_CONFIG_DIGEST: createHash("sha256").update(text).digest("hex").slice(0, 16) },
  });
  await slap.promise("http", { http: `${url}/healthz` });
  await slap.publish({ url });
}
