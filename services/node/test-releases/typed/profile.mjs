// Test release profile: publishes the parameters it was given and their JSON types, as the
// release's instance-input-schema.json types them (defaults applied).
export default async function deploy(slap) {
  const types = Object.keys(slap.parameters)
    .sort()
    .map((name) => `${name}:${Array.isArray(slap.parameters[name]) ? "array" : typeof slap.parameters[name]}`)
    .join(",");
  slap.publish({ parameters: JSON.stringify(slap.parameters), types });
}
