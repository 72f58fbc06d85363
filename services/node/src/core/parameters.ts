import type { ParametersSchema } from "./manifest.js";

export type ParametersCheck =
  | { ok: true; parameters: Record<string, string> }
  | { ok: false; parameter: string; message: string };

/**
 * The parameters a profile sees: empty values dropped (an empty value is the same as an absent
 * one), schema defaults applied, then validated. A rejection names the first bad parameter.
 */
export function checkParameters(raw: Record<string, string>, schema: ParametersSchema | undefined): ParametersCheck {
  const parameters: Record<string, string> = {};
  for (const [name, value] of Object.entries(raw)) if (value !== "") parameters[name] = value;
  if (schema === undefined) return { ok: true, parameters };
  for (const [name, property] of Object.entries(schema.properties)) {
    if (parameters[name] === undefined && property.default !== undefined && property.default !== "") parameters[name] = property.default;
  }
  for (const name of schema.required) {
    if (parameters[name] === undefined) return { ok: false, parameter: name, message: `parameter ${name} is required` };
  }
  for (const [name, value] of Object.entries(parameters)) {
    const property = schema.properties[name];
    if (property === undefined) {
      if (!schema.additionalProperties) return { ok: false, parameter: name, message: `parameter ${name} is not allowed` };
      continue;
    }
    const bad = (why: string): ParametersCheck => ({ ok: false, parameter: name, message: `parameter ${name} ${why} (got ${JSON.stringify(value)})` });
    if (property.enum !== undefined && !property.enum.includes(value)) return bad(`must be one of ${property.enum.join(", ")}`);
    if (property.minLength !== undefined && value.length < property.minLength) return bad(`must be at least ${property.minLength} characters`);
    if (property.maxLength !== undefined && value.length > property.maxLength) return bad(`must be at most ${property.maxLength} characters`);
    if (property.pattern !== undefined) {
      let pattern: RegExp;
      try {
        pattern = new RegExp(property.pattern, "u");
      } catch {
        return { ok: false, parameter: name, message: `parameter ${name} has an invalid pattern in the release schema` };
      }
      if (!pattern.test(value)) return bad(`must match ${property.pattern}`);
    }
  }
  return { ok: true, parameters };
}
