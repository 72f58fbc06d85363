/**
 * fast-check arbitraries of hostile values: wrong types, boundary and oversized strings,
 * control characters, path and shell tricks, odd unicode. Each "bad" arbitrary is built to be
 * invalid for the schema it names, so a test can expect a refusal for every value it draws.
 */
import fc from "fast-check";

export type JsonKind = "null" | "boolean" | "number" | "string" | "array" | "object";

export function kindOf(value: unknown): JsonKind {
  if (value === null) return "null";
  if (Array.isArray(value)) return "array";
  const type = typeof value;
  if (type === "boolean" || type === "number" || type === "string") return type;
  return "object";
}

/** Any JSON value (small). */
export const anyJson: fc.Arbitrary<unknown> = fc.jsonValue({ maxDepth: 3 });

/** A JSON value of any kind but `kind` (null included: null is never "absent"). */
export const notA = (kind: JsonKind): fc.Arbitrary<unknown> =>
  fc.oneof(
    fc.constantFrom<unknown>(null, true, false, 0, -1, 1.5, 1e308, "", "x", [], {}, ["x"], { a: "b" }),
    anyJson,
  ).filter((value) => kindOf(value) !== kind);

/** Strings meant to break things: path traversal, shell metacharacters, control characters, unicode oddities. */
export const TRICKS: readonly string[] = [
  "",
  " ",
  "\u0000",
  "a\u0000b",
  "\u0007\u001b[31mred\u001b[0m",
  "\r\n",
  "line\nbreak",
  "\t",
  "../../../etc/passwd",
  "..",
  ".",
  "/etc/passwd",
  "/",
  "C:\\Windows\\system32",
  "..\\..\\x",
  "%2e%2e%2f%2e%2e%2f",
  "%00",
  "$(touch /tmp/slap-hostile-canary)",
  "`touch /tmp/slap-hostile-canary`",
  "; rm -rf / ;",
  "a | b & c > d < e",
  "${IFS}",
  "'\"",
  "\u202e\u0644\u0627",
  "\ud800",
  "\udfff\ud800",
  "🙂",
  "e\u0301",
  "\ufeff",
  "\uffff",
  "__proto__",
  "constructor",
  "prototype",
  "toString",
  "NaN",
  "-1",
  "1e309",
  "0x10",
  "null",
  "true",
  "[]",
  "{}",
  "<script>alert(1)</script>",
  "' OR '1'='1",
];

/** Any string: random code points (lone surrogates and control characters included) or a trick. */
export const nasty: fc.Arbitrary<string> = fc.oneof(
  fc.constantFrom(...TRICKS),
  fc.string({ unit: "binary", maxLength: 40 }),
  fc.string({ unit: "binary-ascii", maxLength: 40 }),
  fc.tuple(fc.constantFrom(...TRICKS), fc.string({ maxLength: 8 }), fc.constantFrom(...TRICKS)).map(([a, b, c]) => a + b + c),
);

/** A string longer than `max` UTF-16 units (what zod counts), made of one repeated character. */
export const tooLong = (max: number): fc.Arbitrary<string> =>
  fc
    .tuple(fc.integer({ min: 1, max: 2_000 }), fc.constantFrom("a", "é", "\u0000", "/", "%", "\n"))
    .map(([extra, char]) => char.repeat(max + extra));

const TOKEN = /^[A-Za-z0-9_-]{1,64}$/;

/** Not an id token (`[A-Za-z0-9_-]{1,64}`). */
export const notToken: fc.Arbitrary<unknown> = fc.oneof(notA("string"), nasty.filter((s) => !TOKEN.test(s)), tooLong(64));

/** Not a string of `min`..`max` characters. */
export const notStringIn = (min: number, max: number): fc.Arbitrary<unknown> =>
  fc.oneof(notA("string"), tooLong(max), ...(min > 0 ? [fc.constant("")] : []));

/** Not one of `values`. */
export const notEnum = (values: readonly string[]): fc.Arbitrary<unknown> =>
  fc.oneof(
    notA("string"),
    nasty.filter((s) => !values.includes(s)),
    fc.constantFrom(...values).map((v) => v.toUpperCase()),
    fc.constantFrom(...values).map((v) => ` ${v}`),
  );

/** Not an integer (a JSON number field). */
export const notInt: fc.Arbitrary<unknown> = fc.oneof(
  notA("number"),
  fc.double({ min: -1e9, max: 1e9, noNaN: true }).filter((x) => !Number.isInteger(x)),
  fc.constantFrom("1", "0x1", "1e3"),
);

/** Not a flat string map (`{ key(1-256): value(<=65536) }`). */
export const notStringMap: fc.Arbitrary<unknown> = fc.oneof(
  notA("object"),
  fc.constant({ "": "empty key" }),
  tooLong(256).map((key) => ({ [key]: "long key" })),
  // Not __proto__ nor constructor: the JSON parser refuses those keys before any schema sees them.
  fc
    .tuple(fc.string({ minLength: 1, maxLength: 8 }).filter((k) => k !== "__proto__" && k !== "constructor"), notA("string"))
    .map(([key, value]) => ({ ok: "fine", [key]: value })),
  fc.constant({ big: "v".repeat(65_537) }),
);

/** Instance parameters the master must refuse: any JSON value is one, so only the map's shape, its keys and a value's size. */
export const notParameterMap: fc.Arbitrary<unknown> = fc.oneof(
  notA("object"),
  fc.constant({ "": "empty key" }),
  tooLong(256).map((key) => ({ [key]: "long key" })),
  fc.constant({ big: "v".repeat(65_537) }),
  fc.constant({ nested: { deep: ["v".repeat(65_537)] } }),
);

/** A query-string value that is not a log position (decimal digits, at most 15). */
export const notPosition: fc.Arbitrary<string> = fc.oneof(
  nasty.filter((s) => !/^\d{1,15}$/.test(s)),
  fc.constantFrom("", "-1", "1.5", "0x10", "1e3", "+1", " 1", "1 ", "١٢", "9".repeat(16), "Infinity"),
);

/** A query-string value that is not an ISO-8601 time with Z or an offset. */
export const notIsoTime: fc.Arbitrary<string> = fc.oneof(
  nasty,
  fc.constantFrom("2026-11-23", "2026-11-23T10:00:00", "2026-13-01T00:00:00Z", "2026-11-23T25:00:00Z", "yesterday", "0", "2026-11-23T10:00:00+25:00"),
);
