/** What a masked value shows. */
export const MASK = "********";

/**
 * The masking rules — one place for the master's views and events, the dashboard and the CLI
 * (README, "Secrets"). A parameter is masked whole when its **name** says it is a credential:
 * split into words (at `-`, `_`, `.`, spaces and camelCase humps), one word contains `password`,
 * `passwd`, `passphrase`, `secret`, `token` or `credential`, or is `pass`, `pwd`, `apikey`,
 * `privatekey`, or `key` comes right after `api`, `private`, `secret`, `access`, `auth`,
 * `signing` or `encryption` (`api-key`, `privateKey`, `AWS_SECRET_ACCESS_KEY`). A word `key` or
 * `keys` alone says nothing (`max-keys`, `key-prefix` stay in clear). In **every** value, the
 * password of a URL's userinfo (`scheme://user:password@host`, `redis://:password@host:port`) is
 * masked, whatever the parameter's name: a connection URL carries its credential in it.
 */
const SECRET_WORD = /password|passwd|passphrase|secret|token|credential/;
const SECRET_WHOLE_WORD = new Set(["pass", "pwd", "apikey", "privatekey"]);
const KEY_QUALIFIER = new Set(["api", "private", "secret", "access", "auth", "signing", "encryption"]);

/** The words of a parameter name, lower case: `AWS_SECRET_ACCESS_KEY` → aws, secret, access, key; `apiKey` → api, key. */
function wordsOf(name: string): string[] {
  return name
    .replace(/([a-z0-9])([A-Z])/g, "$1 $2")
    .toLowerCase()
    .split(/[^a-z0-9]+/)
    .filter((w) => w !== "");
}

/** Whether a parameter's name says its value is a credential (see the rules above). */
export function isSecretName(name: string): boolean {
  const words = wordsOf(name);
  return words.some((word, i) => SECRET_WORD.test(word) || SECRET_WHOLE_WORD.has(word) || (word === "key" && i > 0 && KEY_QUALIFIER.has(words[i - 1]!)));
}

/** `scheme://user:password@`: the password runs from the userinfo's first `:` to its last `@` (an unencoded `@` in a password is still masked). */
const URL_PASSWORD = /\b([a-z][a-z0-9+.-]*:\/\/[^\s:/?#@]*):[^\s/?#]*@/gi;

/** A value with the password of every URL in it masked: `redis://:s3cret@10.0.0.1:6379` → `redis://:********@10.0.0.1:6379`. */
export function maskUrlPasswords(value: string): string {
  return value.replace(URL_PASSWORD, `$1:${MASK}@`);
}

/** A value with URL passwords masked in every string inside it (typed parameters: arrays and objects too). */
function maskUrlPasswordsIn<V>(value: V): V {
  if (typeof value === "string") return maskUrlPasswords(value) as V;
  if (Array.isArray(value)) return value.map((v: unknown) => maskUrlPasswordsIn(v)) as V;
  if (value !== null && typeof value === "object") return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, maskUrlPasswordsIn(v)])) as V;
  return value;
}

/**
 * The map as shown to who may not see its secrets: secret-named values replaced by `MASK` (a
 * typed parameter's whole value), URL passwords masked in the others (in every string of them).
 */
export function maskSecrets<V>(map: Readonly<Record<string, V>>): Record<string, V | typeof MASK> {
  return Object.fromEntries(Object.entries(map).map(([name, value]) => [name, isSecretName(name) ? MASK : maskUrlPasswordsIn(value)]));
}
