import { crc32 } from "node:zlib";

/**
 * On-disk format of the embedded log (`events.log`):
 *
 *     file   := MAGIC record*
 *     record := u32le bodyLength | u32le crc32(body) | body
 *     body   := u16le keyLength | key (utf8) | u8 idLength | id (ascii) | payload (JSON array of events)
 *
 * The stream key and commit id sit in the record header so the log can be indexed on open
 * without parsing JSON. The CRC makes a torn or damaged record detectable.
 */
export const MAGIC = Buffer.from("SLAPLOG1");
export const HEADER_BYTES = 8;
/** Largest body accepted; anything bigger in a header is treated as damage. */
export const MAX_BODY_BYTES = 64 * 1024 * 1024;

export interface RecordView {
  /** Offset of the record in the file. */
  offset: number;
  /** Total bytes of the record, header included. */
  size: number;
  streamKey: string;
  commitId: string;
  payload: Buffer;
}

export function encodeRecord(streamKey: string, commitId: string, payload: Uint8Array): Buffer {
  const key = Buffer.from(streamKey, "utf8");
  const id = Buffer.from(commitId, "ascii");
  const bodyLength = 2 + key.length + 1 + id.length + payload.byteLength;
  const out = Buffer.allocUnsafe(HEADER_BYTES + bodyLength);
  out.writeUInt32LE(bodyLength, 0);
  let at = HEADER_BYTES;
  out.writeUInt16LE(key.length, at);
  at += 2;
  key.copy(out, at);
  at += key.length;
  out.writeUInt8(id.length, at);
  at += 1;
  id.copy(out, at);
  at += id.length;
  out.set(payload, at);
  out.writeUInt32LE(crc32(out.subarray(HEADER_BYTES)), 4);
  return out;
}

export type Parsed =
  | { kind: "record"; record: RecordView }
  /** Not enough bytes in `buffer` for the whole record: read more (or, at end of file, a torn tail). */
  | { kind: "incomplete"; needed: number }
  | { kind: "damaged"; reason: string };

/** Parses the record starting at `at` in `buffer`, which holds file bytes from `fileOffset`. */
export function parseRecord(buffer: Buffer, at: number, fileOffset: number): Parsed {
  if (buffer.length - at < HEADER_BYTES) return { kind: "incomplete", needed: HEADER_BYTES };
  const bodyLength = buffer.readUInt32LE(at);
  if (bodyLength < 3 || bodyLength > MAX_BODY_BYTES) return { kind: "damaged", reason: `impossible record length ${bodyLength}` };
  const size = HEADER_BYTES + bodyLength;
  if (buffer.length - at < size) return { kind: "incomplete", needed: size };
  const body = buffer.subarray(at + HEADER_BYTES, at + size);
  if (crc32(body) !== buffer.readUInt32LE(at + 4)) return { kind: "damaged", reason: "checksum mismatch" };
  const keyLength = body.readUInt16LE(0);
  const idAt = 2 + keyLength;
  if (idAt + 1 > body.length) return { kind: "damaged", reason: "key overruns record" };
  const idLength = body.readUInt8(idAt);
  const payloadAt = idAt + 1 + idLength;
  if (payloadAt > body.length) return { kind: "damaged", reason: "id overruns record" };
  return {
    kind: "record",
    record: {
      offset: fileOffset + at,
      size,
      streamKey: body.toString("utf8", 2, idAt),
      commitId: body.toString("ascii", idAt + 1, payloadAt),
      payload: body.subarray(payloadAt),
    },
  };
}
