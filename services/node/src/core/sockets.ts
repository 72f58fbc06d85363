/**
 * TCP sockets as Linux lists them in `/proc/net/tcp` and `/proc/net/tcp6`, and which of them
 * answer (or would stop a bind on) an address and port. Pure: the text comes in as an argument.
 */

/** One line of `/proc/net/tcp` or `/proc/net/tcp6`. */
export interface TcpSocket {
  /** The local address, canonical (`normalizeIp`): an IPv4-mapped IPv6 address is given as IPv4. */
  address: string;
  port: number;
  /** The kernel's state number; `TCP_LISTEN` for a listening socket. */
  state: number;
  /** The uid that owns the socket (the one that created it). */
  uid: number;
  /** The socket's inode: `/proc/<pid>/fd/*` links of the processes holding it read `socket:[inode]`. */
  inode: number;
  family: 4 | 6;
}

/** The state number of a listening socket in `/proc/net/tcp*`. */
export const TCP_LISTEN = 0x0a;

const WILDCARD4 = "0.0.0.0";
const WILDCARD6 = "0:0:0:0:0:0:0:0";

/**
 * An IP address in one spelling, to compare: IPv4 dotted; IPv6 as 8 lower-case groups without
 * leading zeros and no `::`; an IPv4-mapped IPv6 address (`::ffff:127.0.0.1`) as its IPv4.
 * Anything else (a host name) is returned lower-cased.
 */
export function normalizeIp(ip: string): string {
  const bare = ip.startsWith("[") && ip.endsWith("]") ? ip.slice(1, -1) : ip;
  if (/^\d{1,3}(\.\d{1,3}){3}$/.test(bare)) return bare.split(".").map((b) => String(Number(b))).join(".");
  if (!bare.includes(":")) return bare.toLowerCase();
  let text = bare.toLowerCase();
  const v4 = /(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/.exec(text);
  if (v4 !== null) {
    const [a, b, c, d] = v4.slice(1).map(Number) as [number, number, number, number];
    text = `${text.slice(0, v4.index)}${((a << 8) | b).toString(16)}:${((c << 8) | d).toString(16)}`;
  }
  const [head = "", rest] = text.split("::") as [string, string | undefined];
  const left = head === "" ? [] : head.split(":").map((g) => parseInt(g, 16));
  const right = rest === undefined || rest === "" ? [] : rest.split(":").map((g) => parseInt(g, 16));
  const fill = rest === undefined ? [] : new Array<number>(Math.max(0, 8 - left.length - right.length)).fill(0);
  const groups = [...left, ...fill, ...right];
  if (groups.length !== 8 || groups.some((g) => !Number.isInteger(g) || g < 0 || g > 0xffff)) return bare.toLowerCase();
  if (groups.slice(0, 5).every((g) => g === 0) && groups[5] === 0xffff) {
    return [groups[6]! >> 8, groups[6]! & 0xff, groups[7]! >> 8, groups[7]! & 0xff].join(".");
  }
  return groups.map((g) => g.toString(16)).join(":");
}

/** Whether `ip` (any spelling) is an IPv4 address once normalized. */
function isV4(ip: string): boolean {
  return /^\d{1,3}(\.\d{1,3}){3}$/.test(ip);
}

/** A 32-bit word of `/proc/net/tcp*` (printed from memory, so byte-swapped on a little-endian host) as 4 bytes. */
function wordBytes(hex: string, littleEndian: boolean): number[] {
  const bytes = [0, 2, 4, 6].map((i) => parseInt(hex.slice(i, i + 2), 16));
  return littleEndian ? bytes.reverse() : bytes;
}

function decodeAddress(hex: string, littleEndian: boolean): string {
  if (hex.length === 8) return wordBytes(hex, littleEndian).join(".");
  const bytes = [0, 8, 16, 24].flatMap((i) => wordBytes(hex.slice(i, i + 8), littleEndian));
  const groups = [];
  for (let i = 0; i < 16; i += 2) groups.push(((bytes[i]! << 8) | bytes[i + 1]!).toString(16));
  return normalizeIp(groups.join(":"));
}

/**
 * The sockets of a `/proc/net/tcp` (`family` 4) or `/proc/net/tcp6` (6) text. Lines that do not
 * parse are skipped. `littleEndian`: the host's byte order (`os.endianness() === "LE"`).
 */
export function parseProcNetTcp(text: string, family: 4 | 6, littleEndian = true): TcpSocket[] {
  const out: TcpSocket[] = [];
  for (const line of text.split("\n").slice(1)) {
    // sl local rem st tx:rx tr:when retrnsmt uid timeout inode …
    const fields = line.trim().split(/\s+/);
    if (fields.length < 10) continue;
    const [addressHex, portHex] = fields[1]!.split(":") as [string, string | undefined];
    if (portHex === undefined || (addressHex.length !== 8 && addressHex.length !== 32)) continue;
    const socket: TcpSocket = {
      address: decodeAddress(addressHex, littleEndian),
      port: parseInt(portHex, 16),
      state: parseInt(fields[3]!, 16),
      uid: Number(fields[7]),
      inode: Number(fields[9]),
      family,
    };
    if ([socket.port, socket.state, socket.uid, socket.inode].every(Number.isInteger)) out.push(socket);
  }
  return out;
}

/**
 * The listening sockets that take a connection to `ip:port` (or stop a bind of it): those bound to
 * that very address if any (the kernel prefers them), else those bound to the wildcard of its
 * family (`0.0.0.0`; `::`, which also takes IPv4 unless it is IPv6-only, which /proc does not
 * tell). A wildcard `ip` matches every listener of its family on the port.
 */
export function listenersOf(sockets: readonly TcpSocket[], ip: string, port: number): TcpSocket[] {
  const target = normalizeIp(ip);
  const listening = sockets.filter((s) => s.state === TCP_LISTEN && s.port === port);
  if (target === WILDCARD4) return listening.filter((s) => isV4(s.address) || s.address === WILDCARD6);
  if (target === WILDCARD6) return listening;
  const exact = listening.filter((s) => s.address === target);
  if (exact.length > 0) return exact;
  return listening.filter((s) => s.address === WILDCARD6 || (isV4(target) && s.address === WILDCARD4));
}
