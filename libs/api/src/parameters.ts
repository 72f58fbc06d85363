import { Ajv, type ErrorObject, type ValidateFunction } from "ajv";
import { Ajv2020 } from "ajv/dist/2020.js";
import { normalizeParameters, type JsonValue, type ParameterMap, type ParametersSchema } from "@slap/events";

/**
 * Instance parameters checked against a release's schema (SlapOS's `instance-input-schema.json`):
 * the one validator of the master (at request time) and the node (before a profile runs).
 */
export type ParametersCheck =
  | { ok: true; parameters: ParameterMap }
  | { ok: false; parameter: string; message: string };

// Release schemas use keywords and formats of their own (SlapOS's `title`, `textarea`…): not strict.
const options = { strict: false, useDefaults: true, allErrors: false, validateFormats: false } as const;
const draft07 = new Ajv(options);
const draft2020 = new Ajv2020(options);

/** Compiled validators by schema text (releases are few; a new schema text is compiled once). */
const compiled = new Map<string, ValidateFunction | Error>();
const MAX_COMPILED = 1_000;

function validatorOf(schema: ParametersSchema): ValidateFunction | Error {
  const text = JSON.stringify(schema);
  const known = compiled.get(text);
  if (known !== undefined) return known;
  if (compiled.size >= MAX_COMPILED) compiled.clear();
  const ajv = typeof schema.$schema === "string" && schema.$schema.includes("2020-12") ? draft2020 : draft07;
  let validator: ValidateFunction | Error;
  try {
    // Compiled without its `$id`: two releases may name their schemas alike.
    const { $id: _, ...rest } = schema;
    validator = ajv.compile(rest);
  } catch (error) {
    validator = error instanceof Error ? error : new Error(String(error));
  }
  compiled.set(text, validator);
  return validator;
}

/** The first error as "parameter <name> …", naming the top-level parameter it is about. */
function describe(error: ErrorObject, parameters: ParameterMap): { parameter: string; message: string } {
  if (error.keyword === "required") {
    const name = String((error.params as { missingProperty: string }).missingProperty);
    const inside = error.instancePath === "" ? "" : ` in ${error.instancePath.slice(1)}`;
    return { parameter: error.instancePath.split("/")[1] ?? name, message: `parameter ${name}${inside} is required` };
  }
  if (error.keyword === "additionalProperties" && error.instancePath === "") {
    const name = String((error.params as { additionalProperty: string }).additionalProperty);
    return { parameter: name, message: `parameter ${name} is not allowed` };
  }
  const path = error.instancePath.slice(1);
  const name = path.split("/")[0] ?? "";
  if (name === "") return { parameter: "", message: `parameters ${error.message ?? "are invalid"}` };
  let value: unknown = parameters;
  for (const step of path.split("/")) value = (value as Record<string, unknown> | undefined)?.[step.replaceAll("~1", "/").replaceAll("~0", "~")];
  return { parameter: name, message: `parameter ${path} ${error.message ?? "is invalid"} (got ${JSON.stringify(value)})` };
}

/**
 * The parameters a profile sees: empty values dropped (an empty value is the same as an absent
 * one), the schema's defaults applied, then validated (JSON Schema draft-07, or 2020-12 when its
 * `$schema` says so). A rejection names the bad parameter. Without a schema, the
 * parameters as they are.
 */
export function checkParameters(raw: Readonly<Record<string, JsonValue>>, schema: ParametersSchema | null | undefined): ParametersCheck {
  const parameters = structuredClone(normalizeParameters(raw));
  if (schema === null || schema === undefined) return { ok: true, parameters };
  const validate = validatorOf(schema);
  if (validate instanceof Error) return { ok: false, parameter: "", message: `the release's parameters schema is invalid: ${validate.message}` };
  if (!validate(parameters)) {
    // The last error is the outermost one (a oneOf's own, after its branches').
    const last = validate.errors?.at(-1);
    return { ok: false, ...(last === undefined ? { parameter: "", message: "parameters are invalid" } : describe(last, parameters)) };
  }
  // A default of "" is no value either.
  return { ok: true, parameters: normalizeParameters(parameters) };
}
