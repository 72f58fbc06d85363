// Test release profile: a tree `depth` levels deep below this instance (each level requests one
// child of the same release), serving shared instances: each gets its own parameters back with
// the host's reference. Publishes its release and the shared instances it serves. `crash=yes`
// declares a service that dies at once; `slow=<ms>` makes each processing take that long;
// `promise=yes` declares a promise that holds while the partition has no file `sick` (each check
// appends a line to `checks`).
export default async function deploy(slap) {
  const depth = Number(slap.parameters.depth ?? "0");
  if (depth > 0) await slap.request(slap.instance.releaseUrl, `${slap.instance.reference}-child`, { parameters: { depth: String(depth - 1) } });
  if (slap.parameters.slow !== undefined) await new Promise((resolve) => setTimeout(resolve, Number(slap.parameters.slow)));
  if (slap.parameters.crash === "yes") slap.service("crash", { command: [process.execPath, "-e", "console.error('dying on purpose'); process.exit(4)"] });
  if (slap.parameters.promise === "yes") slap.promise("flag", { command: ["/bin/sh", "-c", "echo checked >> checks; test ! -e sick"] });
  for (const shared of slap.sharedInstances) slap.publishShared(shared.instanceId, { ...shared.parameters, host: slap.instance.reference });
  slap.publish({
    release: slap.instance.releaseUrl,
    reference: slap.instance.reference,
    tenants: slap.sharedInstances.map((s) => s.reference).sort().join(","),
  });
}
