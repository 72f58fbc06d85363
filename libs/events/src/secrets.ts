/** What a masked value shows. */
export const MASK = "********";

/** Parameter names whose values are treated as secret: the one rule for views, logs and the CLI. */
const SECRET_NAME = /pass|secret|token|key/i;

/** The map with the values whose name looks secret replaced by `MASK` (a typed parameter's whole value). */
export function maskSecrets<V>(map: Readonly<Record<string, V>>): Record<string, V | typeof MASK> {
  return Object.fromEntries(Object.entries(map).map(([name, value]) => [name, SECRET_NAME.test(name) ? MASK : value]));
}
