import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { listenersOf, normalizeIp, parseProcNetTcp, TCP_LISTEN } from "./sockets.js";

const TCP = `  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 0100007F:7A12 00000000:0000 0A 00000000:00000000 00:00000000 00000000  1003        0 405846 1 00000000a81b85e5 100 0 0 10 0
   1: 00000000:7A13 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1081 1 00000000eb7cd83b 100 0 0 10 0
   2: 0100007F:7A12 0100007F:D2F0 01 00000000:00000000 00:00000000 00000000  1003        0 0 1 0000000000000000 20 4 30 10 -1
   3: garbage
`;
const TCP6 = `  sl  local_address                         remote_address                        st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 00000000000000000000000001000000:7A14 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 4093 1 00000000fe56ffce 100 0 0 10 0
   1: 00000000000000000000000000000000:7A15 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000   106        0 6592 1 000000001796f289 100 0 0 10 0
   2: 0000000000000000FFFF00000100007F:7A16 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000   107        0 6593 1 000000001796f289 100 0 0 10 0
`;

describe("sockets from /proc/net/tcp and tcp6", () => {
  it("reads address, port, state, uid and inode of each line, skipping lines that do not parse", () => {
    const v4 = parseProcNetTcp(TCP, 4);
    assert.deepEqual(v4[0], { address: "127.0.0.1", port: 31250, state: TCP_LISTEN, uid: 1003, inode: 405846, family: 4 });
    assert.deepEqual(v4[1], { address: "0.0.0.0", port: 31251, state: TCP_LISTEN, uid: 0, inode: 1081, family: 4 });
    assert.equal(v4[2]!.state, 1, "an established connection");
    assert.equal(v4.length, 3);
    const v6 = parseProcNetTcp(TCP6, 6);
    assert.deepEqual(
      v6.map((s) => [s.address, s.port, s.uid]),
      [
        ["0:0:0:0:0:0:0:1", 31252, 0],
        ["0:0:0:0:0:0:0:0", 31253, 106],
        ["127.0.0.1", 31254, 107],
      ],
    );
    assert.equal(parseProcNetTcp(TCP, 4, false)[0]!.address, "1.0.0.127", "a big-endian host prints the bytes in order");
  });

  it("spells an address one way: IPv6 expanded, IPv4-mapped as IPv4, brackets dropped", () => {
    assert.equal(normalizeIp("::1"), "0:0:0:0:0:0:0:1");
    assert.equal(normalizeIp("[::]"), "0:0:0:0:0:0:0:0");
    assert.equal(normalizeIp("2001:DB8::0:1"), "2001:db8:0:0:0:0:0:1");
    assert.equal(normalizeIp("::ffff:127.0.0.1"), "127.0.0.1");
    assert.equal(normalizeIp("127.000.0.1"), "127.0.0.1");
    assert.equal(normalizeIp("LocalHost"), "localhost");
  });

  it("finds the listeners that take a connection: the exact address first, else the wildcards of its family", () => {
    const sockets = [...parseProcNetTcp(TCP, 4), ...parseProcNetTcp(TCP6, 6)];
    assert.deepEqual(listenersOf(sockets, "127.0.0.1", 31250).map((s) => s.inode), [405846], "the connection to it is not a listener");
    assert.deepEqual(listenersOf(sockets, "127.0.0.1", 31251).map((s) => s.inode), [1081], "0.0.0.0 takes 127.0.0.1");
    assert.deepEqual(listenersOf(sockets, "127.0.0.1", 31253).map((s) => s.inode), [6592], ":: takes IPv4 too");
    assert.deepEqual(listenersOf(sockets, "127.0.0.1", 31254).map((s) => s.inode), [6593], "an IPv4-mapped listener");
    assert.deepEqual(listenersOf(sockets, "127.0.0.1", 31252), [], "::1 does not take 127.0.0.1");
    assert.deepEqual(listenersOf(sockets, "::1", 31251), [], "0.0.0.0 does not take ::1");
    assert.deepEqual(listenersOf(sockets, "0.0.0.0", 31250).map((s) => s.inode), [405846], "binding the wildcard collides with any IPv4 listener");
  });
});
