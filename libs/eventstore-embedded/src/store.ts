import { mkdir, open, readFile, rm, writeFile, type FileHandle } from "node:fs/promises";
import { join } from "node:path";
import {
  EventStoreError,
  WrongExpectedVersionError,
  decodeCommit,
  matchesFilter,
  validateAppend,
  type AppendOptions,
  type AppendResult,
  type Commit,
  type DomainEvent,
  type EventStore,
  type ExpectedVersion,
  type ReadOptions,
  type StreamSlice,
  type Subscription,
} from "@slap/events";
import type { Logger } from "pino";
import { HEADER_BYTES, MAGIC, encodeRecord, parseRecord, type RecordView } from "./record.js";

export interface EmbeddedOptions {
  /** Data folder; created when missing. Holds `events.log` and a `LOCK` file. */
  dir: string;
  logger: Logger;
  /**
   * How many of the latest commit ids are remembered for de-duplication (default 100,000).
   * A retry of a commit older than that is treated as new (JetStream has the same kind of
   * window, in time rather than count).
   */
  dedupeWindow?: number;
}

interface Pending {
  streamKey: string;
  commitId: string;
  payload: Uint8Array;
  expected: ExpectedVersion;
  resolve(result: AppendResult): void;
  reject(error: unknown): void;
}

const READ_CHUNK = 1024 * 1024;

/** What `open` cut off the end of the log: a torn last write, never acknowledged. */
export interface Recovery {
  /** File offset where the log now ends: the end of the last whole record. */
  cutAt: number;
  /** How many bytes were cut (and kept in `keptIn`). */
  bytesCut: number;
  /** Why the first cut byte does not start a whole record (`incomplete record`, `checksum mismatch`, …). */
  reason: string;
  /** The file holding the cut bytes. */
  keptIn: string;
}

/**
 * The embedded event store: a durable append-only log in a data folder, for a machine with
 * nothing but Node.
 *
 * - Durable: an append resolves only after its record is written and `fdatasync`ed. Appends
 *   that arrive while a write is in flight are grouped into the next write (group commit),
 *   so pipelined appends share one sync. Readers and subscribers see a commit only once it
 *   is synced, so nothing they saw can be lost by a crash.
 * - Crash-safe: a torn last record (a crash mid-write) is detected by its length or CRC when
 *   the log is opened, cut off, kept aside in `events.log.torn-<offset>`, logged (warn, with
 *   the file, offset and bytes cut) and reported in `recovered`. Damage followed by a valid
 *   record is not a torn tail: `open` refuses the log and cuts nothing.
 * - Single writer: a `LOCK` file with the owner's pid keeps a second process out; a lock
 *   left by a dead process is taken over.
 * - The index (record offsets, per-stream versions, recent commit ids) lives in memory and
 *   is rebuilt from record headers on open, without parsing JSON.
 */
export class EmbeddedEventStore implements EventStore {
  private readonly offsets: number[] = [];
  private readonly streams = new Map<string, number[]>();
  private readonly recentIds = new Map<string, number>();
  private readonly waiters = new Set<() => void>();
  private queue: Pending[] = [];
  private flushing: Promise<void> | undefined;
  private end: number;
  private closed = false;
  private failure: unknown;
  private recovery: Recovery | undefined;

  private constructor(
    private readonly file: FileHandle,
    private readonly lockPath: string,
    private readonly logger: Logger,
    private readonly dedupeWindow: number,
    end: number,
  ) {
    this.end = end;
  }

  /** What `open` cut off a torn tail of the log, if anything. */
  get recovered(): Recovery | undefined {
    return this.recovery;
  }

  /** Opens (or creates) the log in `options.dir`, repairing a torn tail (see `recovered`). */
  static async open(options: EmbeddedOptions): Promise<EmbeddedEventStore> {
    const logger = options.logger.child({ component: "embedded-store", dir: options.dir });
    // The log holds every tenant's parameters and secrets: private to the service that owns it.
    await mkdir(options.dir, { recursive: true, mode: 0o700 });
    const lockPath = join(options.dir, "LOCK");
    await takeLock(lockPath, logger);
    const path = join(options.dir, "events.log");
    let opened: FileHandle | undefined;
    try {
      await (await open(path, "a", 0o600)).close();
      const file = await open(path, "r+");
      opened = file;
      if (((await file.stat()).mode & 0o077) !== 0) await file.chmod(0o600);
      const { size } = await file.stat();
      if (size === 0) {
        await file.write(MAGIC, 0, MAGIC.length, 0);
        await file.sync();
        await syncDir(options.dir);
      } else {
        const head = Buffer.alloc(MAGIC.length);
        await file.read(head, 0, MAGIC.length, 0);
        if (!head.equals(MAGIC)) throw new EventStoreError(`${path} is not a slap event log (bad magic)`, { retryable: false });
      }
      const store = new EmbeddedEventStore(file, lockPath, logger, options.dedupeWindow ?? 100_000, MAGIC.length);
      await store.index(path);
      return store;
    } catch (error) {
      await opened?.close();
      await rm(lockPath, { force: true });
      throw error;
    }
  }

  /** Scans every record header, building the index; cuts a torn or damaged tail. */
  private async index(path: string): Promise<void> {
    const { size } = await this.file.stat();
    let fileOffset = MAGIC.length;
    let buffer = Buffer.alloc(0);
    let at = 0;
    for (;;) {
      const parsed = parseRecord(buffer, at, fileOffset);
      if (parsed.kind === "record") {
        this.remember(parsed.record.streamKey, parsed.record.commitId);
        this.offsets.push(parsed.record.offset);
        at += parsed.record.size;
        continue;
      }
      const available = size - (fileOffset + buffer.length);
      if (parsed.kind === "incomplete" && available > 0) {
        const rest = buffer.subarray(at);
        const want = Math.max(READ_CHUNK, parsed.needed);
        const chunk = Buffer.allocUnsafe(rest.length + Math.min(want, available));
        rest.copy(chunk, 0);
        const { bytesRead } = await this.file.read(chunk, rest.length, chunk.length - rest.length, fileOffset + buffer.length);
        fileOffset += at;
        buffer = chunk.subarray(0, rest.length + bytesRead);
        at = 0;
        continue;
      }
      const goodEnd = fileOffset + at;
      if (goodEnd < size) {
        const reason = parsed.kind === "damaged" ? parsed.reason : "incomplete record";
        const aside = `${path}.torn-${goodEnd}`;
        const cut = Buffer.alloc(size - goodEnd);
        await this.file.read(cut, 0, cut.length, goodEnd);
        const follower = firstValidRecord(cut, goodEnd);
        if (follower !== undefined) {
          throw new EventStoreError(
            `${path} is damaged at offset ${goodEnd} (${reason}) but a valid record follows at offset ${follower}: ` +
              "this is not a torn tail, so nothing is cut; restore the log or move the damaged region aside by hand",
            { retryable: false },
          );
        }
        await writeFile(aside, cut, { mode: 0o600 });
        await this.file.truncate(goodEnd);
        await this.file.sync();
        this.recovery = { cutAt: goodEnd, bytesCut: cut.length, reason, keptIn: aside };
        this.logger.warn(
          { file: path, offset: goodEnd, bytesCut: cut.length, reason, keptIn: aside, commits: this.offsets.length },
          "torn tail cut off the event log: the last record was not complete, so it was never acknowledged",
        );
      }
      this.end = goodEnd;
      this.logger.info({ commits: this.offsets.length, bytes: goodEnd }, "event log opened");
      return;
    }
  }

  /** Adds a committed record to the index and returns its position. */
  private remember(streamKey: string, commitId: string): number {
    const position = this.offsets.length + 1;
    const list = this.streams.get(streamKey);
    if (list === undefined) this.streams.set(streamKey, [position]);
    else list.push(position);
    this.recentIds.set(commitId, position);
    if (this.recentIds.size > this.dedupeWindow) {
      const oldest = this.recentIds.keys().next();
      if (oldest.done !== true) this.recentIds.delete(oldest.value);
    }
    return position;
  }

  async append(events: readonly DomainEvent[], options: AppendOptions): Promise<AppendResult> {
    if (this.closed) throw new EventStoreError("event store is closed", { retryable: false });
    if (this.failure !== undefined) {
      throw new EventStoreError("event log failed earlier; reopen it", { retryable: false, cause: this.failure });
    }
    const validated = validateAppend(events);
    const payload = Buffer.from(JSON.stringify(validated.events));
    return new Promise<AppendResult>((resolve, reject) => {
      this.queue.push({
        streamKey: validated.streamKey,
        commitId: validated.events[0]!.id,
        payload,
        expected: options.expectedVersion,
        resolve,
        reject,
      });
      this.flushing ??= new Promise<void>((resolve) => setImmediate(resolve)).then(() => this.flush());
    });
  }

  /**
   * Writes queued appends until the queue is empty. It starts one macrotask after the first
   * append (so appends made in the same burst share the first write and sync, instead of the
   * first paying a sync alone), and `flushing` is cleared in the same turn as the last
   * empty-queue check, so an append can never be queued with no flush to pick it up.
   */
  private async flush(): Promise<void> {
    try {
      while (this.queue.length > 0) {
        const batch = this.queue;
        this.queue = [];
        try {
          await this.writeBatch(batch);
        } catch (cause) {
          this.failure = cause;
          const error = new EventStoreError("append failed unexpectedly; reopen the event log", { retryable: false, cause });
          for (const item of batch) item.reject(error);
        }
      }
    } finally {
      this.flushing = undefined;
    }
  }

  /** One group commit: checks versions and duplicates in order, writes once, syncs once. */
  private async writeBatch(batch: Pending[]): Promise<void> {
    const versions = new Map<string, number>();
    const ids = new Map<string, number>();
    const records: Buffer[] = [];
    const accepted: Array<{ item: Pending; position: number }> = [];
    const duplicates: Array<{ item: Pending; position: number }> = [];
    let position = this.offsets.length;
    let bytes = 0;
    for (const item of batch) {
      const seen = this.recentIds.get(item.commitId) ?? ids.get(item.commitId);
      if (seen !== undefined) {
        duplicates.push({ item, position: seen });
        continue;
      }
      const current = versions.get(item.streamKey) ?? this.streams.get(item.streamKey)?.at(-1) ?? 0;
      if (item.expected !== "any" && item.expected !== current) {
        item.reject(new WrongExpectedVersionError(item.streamKey, item.expected, current));
        continue;
      }
      position += 1;
      versions.set(item.streamKey, position);
      ids.set(item.commitId, position);
      const record = encodeRecord(item.streamKey, item.commitId, item.payload);
      records.push(record);
      bytes += record.length;
      accepted.push({ item, position });
    }
    if (accepted.length > 0) {
      const start = this.end;
      try {
        const buffer = records.length === 1 ? records[0]! : Buffer.concat(records, bytes);
        await writeFully(this.file, buffer, start);
        await this.file.datasync();
      } catch (cause) {
        const error = new EventStoreError("append failed: the event log could not be written", { retryable: true, cause });
        try {
          await this.file.truncate(start);
        } catch (truncateError) {
          this.failure = truncateError;
        }
        for (const { item } of [...accepted, ...duplicates]) item.reject(error);
        return;
      }
      let offset = start;
      for (const record of records) {
        this.remember(parseRecordKey(record), parseRecordId(record));
        this.offsets.push(offset);
        offset += record.length;
      }
      this.end = offset;
    }
    for (const { item, position: p } of accepted) item.resolve({ position: p, duplicate: false });
    for (const { item, position: p } of duplicates) item.resolve({ position: p, duplicate: true });
    if (accepted.length > 0) this.wake();
  }

  private wake(): void {
    const waiters = [...this.waiters];
    this.waiters.clear();
    for (const w of waiters) w();
  }

  readStream(streamKey: string): Promise<StreamSlice> {
    const positions = this.streams.get(streamKey) ?? [];
    return (async () => {
      const commits: Commit[] = [];
      for (const position of positions) {
        const record = await this.readRecord(position);
        const commit = this.toCommit(position, record);
        if (commit !== undefined) commits.push(commit);
      }
      return { version: positions.at(-1) ?? 0, commits };
    })();
  }

  readAll(options: ReadOptions = {}): AsyncIterable<Commit> {
    return this.range(options.after ?? 0, this.offsets.length, options.filter);
  }

  subscribe(options: ReadOptions = {}): Subscription {
    let closed = false;
    let wakeMe: (() => void) | undefined;
    const close = (): Promise<void> => {
      closed = true;
      if (wakeMe !== undefined) {
        this.waiters.delete(wakeMe);
        wakeMe();
      }
      return Promise.resolve();
    };
    const follow = async function* (this: EmbeddedEventStore): AsyncGenerator<Commit> {
      let after = options.after ?? 0;
      while (!closed && !this.closed) {
        const head = this.offsets.length;
        if (after < head) {
          for await (const commit of this.range(after, head, options.filter)) {
            if (closed || this.closed) return;
            yield commit;
          }
          after = head;
          continue;
        }
        await new Promise<void>((resolve) => {
          wakeMe = resolve;
          this.waiters.add(resolve);
        });
        wakeMe = undefined;
      }
    }.bind(this);
    const iterator = follow();
    return { [Symbol.asyncIterator]: () => iterator, close };
  }

  head(): Promise<number> {
    return Promise.resolve(this.offsets.length);
  }

  /** Waits for pending appends, ends subscriptions and reads in progress, closes the file and releases the lock. */
  async close(): Promise<void> {
    if (this.closed) return;
    await this.flushing;
    this.closed = true;
    this.wake();
    await this.file.close();
    await rm(this.lockPath, { force: true });
  }

  /** Commits with positions in (after, upTo], read sequentially in large chunks. */
  private async *range(after: number, upTo: number, filter: string | undefined): AsyncGenerator<Commit> {
    let position = Math.max(after, 0);
    while (position < upTo && !this.closed) {
      const startOffset = this.offsets[position]!;
      const endOffset = upTo < this.offsets.length ? this.offsets[upTo]! : this.end;
      const length = Math.min(Math.max(READ_CHUNK, this.recordSize(position + 1)), endOffset - startOffset);
      const buffer = Buffer.allocUnsafe(length);
      const { bytesRead } = await this.file.read(buffer, 0, length, startOffset);
      let at = 0;
      while (position < upTo) {
        const parsed = parseRecord(buffer.subarray(0, bytesRead), at, startOffset);
        if (parsed.kind !== "record") break;
        position += 1;
        at += parsed.record.size;
        if (filter !== undefined && !matchesFilter(parsed.record.streamKey, filter)) continue;
        const commit = this.toCommit(position, parsed.record);
        if (commit !== undefined) yield commit;
      }
      if (at === 0) throw new EventStoreError(`event log damaged at position ${position + 1}`, { retryable: false });
    }
  }

  private recordSize(position: number): number {
    const next = position < this.offsets.length ? this.offsets[position]! : this.end;
    return next - this.offsets[position - 1]!;
  }

  private async readRecord(position: number): Promise<RecordView> {
    const size = this.recordSize(position);
    const buffer = Buffer.allocUnsafe(size);
    const offset = this.offsets[position - 1]!;
    await this.file.read(buffer, 0, size, offset);
    const parsed = parseRecord(buffer, 0, offset);
    if (parsed.kind !== "record") throw new EventStoreError(`event log damaged at position ${position}`, { retryable: false });
    return parsed.record;
  }

  private toCommit(position: number, record: RecordView): Commit | undefined {
    const decoded = decodeCommit(record.payload, record.streamKey);
    if (decoded.ok) return { position, streamKey: record.streamKey, events: decoded.events };
    this.logger.warn({ position, streamKey: record.streamKey, issues: decoded.issues }, "malformed commit skipped");
    return undefined;
  }

  /**
   * Writes `payload` as a commit of `streamKey` without any validation, as a foreign or buggy
   * writer would. For tests of how readers cope with malformed commits; never used by services.
   */
  async appendRawForTesting(streamKey: string, commitId: string, payload: Uint8Array): Promise<number> {
    await this.flushing;
    const record = encodeRecord(streamKey, commitId, payload);
    await writeFully(this.file, record, this.end);
    await this.file.datasync();
    const position = this.remember(streamKey, commitId);
    this.offsets.push(this.end);
    this.end += record.length;
    this.wake();
    return position;
  }
}

/**
 * The file offset of the first whole, checksum-valid record starting anywhere after the first
 * byte of `tail` (which holds the file from `tailOffset`), if any. A torn tail has none: only the
 * last write can be incomplete, and nothing was written after it.
 */
function firstValidRecord(tail: Buffer, tailOffset: number): number | undefined {
  for (let at = 1; at + HEADER_BYTES < tail.length; at++) {
    const parsed = parseRecord(tail, at, tailOffset);
    if (parsed.kind === "record") return parsed.record.offset;
  }
  return undefined;
}

/** `write` may write less than asked (a full disk, a signal); writes the rest or throws. */
async function writeFully(file: FileHandle, buffer: Buffer, position: number): Promise<void> {
  let done = 0;
  while (done < buffer.length) {
    const { bytesWritten } = await file.write(buffer, done, buffer.length - done, position + done);
    if (bytesWritten === 0) throw new Error(`short write at offset ${position + done}: no byte written`);
    done += bytesWritten;
  }
}

function parseRecordKey(record: Buffer): string {
  const keyLength = record.readUInt16LE(HEADER_BYTES);
  return record.toString("utf8", HEADER_BYTES + 2, HEADER_BYTES + 2 + keyLength);
}

function parseRecordId(record: Buffer): string {
  const idAt = HEADER_BYTES + 2 + record.readUInt16LE(HEADER_BYTES);
  return record.toString("ascii", idAt + 1, idAt + 1 + record.readUInt8(idAt));
}

async function takeLock(lockPath: string, logger: Logger): Promise<void> {
  for (let attempt = 0; attempt < 2; attempt++) {
    try {
      await writeFile(lockPath, String(process.pid), { flag: "wx", mode: 0o600 });
      return;
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== "EEXIST") throw error;
    }
    const owner = Number((await readFile(lockPath, "utf8").catch(() => "")).trim());
    if (Number.isInteger(owner) && owner > 0 && (owner === process.pid || isAlive(owner))) {
      throw new EventStoreError(`data folder is in use by process ${owner} (${lockPath})`, { retryable: false });
    }
    logger.warn({ lockPath, owner }, "taking over a lock left by a process that is gone");
    await rm(lockPath, { force: true });
  }
  throw new EventStoreError(`could not lock ${lockPath}`, { retryable: true });
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === "EPERM";
  }
}

async function syncDir(dir: string): Promise<void> {
  const handle = await open(dir, "r");
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}
