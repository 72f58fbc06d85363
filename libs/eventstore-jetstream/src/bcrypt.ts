/**
 * bcrypt (`$2a$`), the password hash nats-server accepts in its configuration, without a
 * dependency. Blowfish's initial P-array and S-boxes are the first 1,042 32-bit words of the
 * fractional part of π; they are computed once (Machin's formula on BigInt, a few tens of ms)
 * instead of being pasted as 8,336 hex digits. Checked against published bcrypt vectors and
 * against nats-server logging users in with these hashes.
 */

const BCRYPT_ALPHABET = "./ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
/** "OrpheanBeholderScryDoubt", the text bcrypt encrypts 64 times. */
const MAGIC = [0x4f727068, 0x65616e42, 0x65686f6c, 0x64657253, 0x63727944, 0x6f756274];
const P_WORDS = 18;
const S_WORDS = 1_024;

let piWords: Uint32Array | undefined;

/** The first `count` 32-bit words of π's fractional part (0x243f6a88, 0x85a308d3, …). */
function piFraction(count: number): Uint32Array {
  const bits = BigInt(count * 32);
  const guard = 64n;
  const scale = bits + guard;
  const arctanInverse = (x: bigint): bigint => {
    const x2 = x * x;
    let term = (1n << scale) / x;
    let sum = 0n;
    for (let k = 0n; term !== 0n; k++) {
      sum += k % 2n === 0n ? term / (2n * k + 1n) : -(term / (2n * k + 1n));
      term /= x2;
    }
    return sum;
  };
  const pi = 16n * arctanInverse(5n) - 4n * arctanInverse(239n);
  const fraction = (pi >> guard) & ((1n << bits) - 1n);
  const words = new Uint32Array(count);
  for (let i = 0; i < count; i++) words[i] = Number((fraction >> (bits - 32n * BigInt(i + 1))) & 0xffffffffn);
  return words;
}

class Blowfish {
  readonly p: Uint32Array;
  readonly s: Uint32Array;

  constructor() {
    piWords ??= piFraction(P_WORDS + S_WORDS);
    this.p = piWords.slice(0, P_WORDS);
    this.s = piWords.slice(P_WORDS);
  }

  /** Enciphers `block[at]`, `block[at + 1]` in place. */
  encipher(block: Uint32Array, at: number): void {
    const { p, s } = this;
    let l = block[at]!;
    let r = block[at + 1]!;
    l ^= p[0]!;
    for (let i = 1; i <= 16; i += 2) {
      r ^= ((((s[l >>> 24]! + s[256 | ((l >>> 16) & 0xff)]!) ^ s[512 | ((l >>> 8) & 0xff)]!) + s[768 | (l & 0xff)]!) ^ p[i]!) >>> 0;
      l ^= ((((s[r >>> 24]! + s[256 | ((r >>> 16) & 0xff)]!) ^ s[512 | ((r >>> 8) & 0xff)]!) + s[768 | (r & 0xff)]!) ^ p[i + 1]!) >>> 0;
    }
    block[at] = (r ^ p[17]!) >>> 0;
    block[at + 1] = l >>> 0;
  }

  /** Blowfish's key schedule with bcrypt's salt (`salt` undefined: the plain schedule). */
  expand(key: Uint8Array, salt?: Uint8Array): void {
    const { p, s } = this;
    let keyAt = 0;
    for (let i = 0; i < P_WORDS; i++) {
      let word = 0;
      for (let b = 0; b < 4; b++) {
        word = (word << 8) | key[keyAt]!;
        keyAt = (keyAt + 1) % key.length;
      }
      p[i] = (p[i]! ^ word) >>> 0;
    }
    const block = new Uint32Array(2);
    let saltAt = 0;
    const saltWord = (): number => {
      let word = 0;
      for (let b = 0; b < 4; b++) {
        word = (word << 8) | salt![saltAt]!;
        saltAt = (saltAt + 1) % salt!.length;
      }
      return word >>> 0;
    };
    const next = (): void => {
      if (salt !== undefined) {
        block[0] = block[0]! ^ saltWord();
        block[1] = block[1]! ^ saltWord();
      }
      this.encipher(block, 0);
    };
    for (let i = 0; i < P_WORDS; i += 2) {
      next();
      p[i] = block[0]!;
      p[i + 1] = block[1]!;
    }
    for (let i = 0; i < S_WORDS; i += 2) {
      next();
      s[i] = block[0]!;
      s[i + 1] = block[1]!;
    }
  }
}

/**
 * The bcrypt hash of `password` (`$2a$<cost>$<salt><hash>`, 60 characters), as nats-server
 * checks it. `salt` is 16 random bytes (the caller's: this function is pure); `cost` 4–31,
 * 2^cost rounds (nats-server's own tool uses 11). Only the first 72 bytes of the password count.
 */
export function bcryptHash(password: string, salt: Uint8Array, cost = 11): string {
  if (!Number.isInteger(cost) || cost < 4 || cost > 31) throw new RangeError(`bcrypt cost must be an integer from 4 to 31, not ${cost}`);
  if (salt.length !== 16) throw new RangeError(`bcrypt salt must be 16 bytes, not ${salt.length}`);
  const encoded = Buffer.from(password, "utf8");
  const key = new Uint8Array(Math.min(encoded.length, 72) + 1);
  key.set(encoded.subarray(0, 72));
  const state = new Blowfish();
  state.expand(key, salt);
  for (let round = 0, rounds = 2 ** cost; round < rounds; round++) {
    state.expand(key);
    state.expand(salt);
  }
  const text = Uint32Array.from(MAGIC);
  for (let i = 0; i < 64; i++) for (let at = 0; at < text.length; at += 2) state.encipher(text, at);
  const bytes = new Uint8Array(24);
  text.forEach((word, i) => {
    bytes[4 * i] = word >>> 24;
    bytes[4 * i + 1] = (word >>> 16) & 0xff;
    bytes[4 * i + 2] = (word >>> 8) & 0xff;
    bytes[4 * i + 3] = word & 0xff;
  });
  return `$2a$${String(cost).padStart(2, "0")}$${bcryptBase64(salt)}${bcryptBase64(bytes.subarray(0, 23))}`;
}

/**
 * The salt of a bcrypt hash (`$2a$NN$` + 22 characters), decoded: `bcryptHash(password,
 * bcryptSalt(hash), cost)` recomputes `hash` for the right password.
 */
export function bcryptSalt(hash: string): Uint8Array {
  const match = /^\$2[abxy]?\$\d\d\$([./A-Za-z0-9]{22})/.exec(hash);
  if (match === null) throw new RangeError("not a bcrypt hash");
  return bcryptBase64Decode(match[1]!, 16);
}

/** bcrypt's base64: its own alphabet, no padding. */
function bcryptBase64(bytes: Uint8Array): string {
  let out = "";
  for (let i = 0; i < bytes.length; i += 3) {
    const b0 = bytes[i]!;
    const b1 = bytes[i + 1];
    const b2 = bytes[i + 2];
    out += BCRYPT_ALPHABET[b0 >>> 2]!;
    out += BCRYPT_ALPHABET[((b0 & 0x03) << 4) | ((b1 ?? 0) >>> 4)]!;
    if (b1 === undefined) break;
    out += BCRYPT_ALPHABET[((b1 & 0x0f) << 2) | ((b2 ?? 0) >>> 6)]!;
    if (b2 === undefined) break;
    out += BCRYPT_ALPHABET[b2 & 0x3f]!;
  }
  return out;
}

function bcryptBase64Decode(text: string, length: number): Uint8Array {
  const out = new Uint8Array(length);
  let bits = 0;
  let buffer = 0;
  let at = 0;
  for (const char of text) {
    buffer = (buffer << 6) | BCRYPT_ALPHABET.indexOf(char);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      if (at < length) out[at++] = (buffer >>> bits) & 0xff;
    }
  }
  return out;
}
