/**
 * Reading model files without holding them.
 *
 * `ByteSource` is random access to a file's bytes: `fileSource` reads through a file descriptor at the offsets asked
 * for, so a file of any size (a 2.5 GB checkpoint is common; a Node Buffer tops out at 2 or 4 GiB depending on the
 * version) costs only the bytes actually read; `bufferSource` serves a file already in memory (tests, fuzzing).
 *
 * `BinaryReader` is a bounds-checked little-endian cursor over a source. Every binary loader (GGUF, llama2.c,
 * tokenizer.bin) reads through it, so a truncated or lying file becomes a FormatError naming the file and what was
 * being read, never an out-of-range read, a RangeError from DataView or a silently short array. Bounds are checked
 * against the whole file before anything is read or allocated, so a count of 2^40 fails at once.
 */
import { closeSync, fstatSync, openSync, readSync, statSync, type Stats } from 'node:fs';
import { resolve } from 'node:path';
import { FormatError } from '../tensor/errors.js';

export interface ByteSource {
  readonly file: string;
  readonly size: number;
  /** Fill `into` with the file's bytes from `offset` on (callers check bounds first; a short file still throws). */
  read(offset: number, into: ArrayBufferView): void;
  /** The whole file when it is already in memory (lets the reader skip copying). */
  readonly buffer?: Buffer;
}

/** Larger reads are split: readSync takes at most 2^31 - 1 bytes at a time. */
const READ_CHUNK = 1 << 30;

export function bufferSource(buf: Buffer, file: string): ByteSource {
  return {
    file,
    size: buf.byteLength,
    buffer: buf,
    read(offset, into) {
      checkRange(file, offset, into.byteLength, buf.byteLength);
      bytesOf(into).set(buf.subarray(offset, offset + into.byteLength));
    },
  };
}

/**
 * A file read on demand. Each read opens the file again (no descriptor outlives a call) and checks that it is still
 * the file whose header was parsed: lazily loaded tensors may be read long after the header, and a file replaced in
 * between (re-downloaded, re-exported) would otherwise give tensors from two different files.
 */
export function fileSource(path: string): ByteSource {
  const abs = resolve(path); // tensors may be read after a chdir
  const at = statSync(abs);
  const same = (s: Stats) => s.ino === at.ino && s.dev === at.dev && s.size === at.size && s.mtimeMs === at.mtimeMs;
  return {
    file: path,
    size: at.size,
    read(offset, into) {
      checkRange(path, offset, into.byteLength, at.size);
      const fd = openSync(abs, 'r');
      try {
        if (!same(fstatSync(fd))) {
          throw new FormatError(path, 'changed on disk after its header was read', 'load the model again once the file is complete');
        }
        const bytes = bytesOf(into);
        for (let done = 0; done < bytes.byteLength;) {
          const n = readSync(fd, bytes, done, Math.min(bytes.byteLength - done, READ_CHUNK), offset + done);
          if (n === 0) throw new FormatError(path, `truncated: the file ends at ${offset + done}`, 'the file shrank while it was read');
          done += n;
        }
      } finally {
        closeSync(fd);
      }
    },
  };
}

function checkRange(file: string, offset: number, n: number, size: number): void {
  if (offset + n > size) {
    throw new FormatError(file, `truncated: reading ${n} bytes at offset ${offset}, but the file has ${size} bytes`,
      'the file is incomplete (interrupted download or copy?); fetch it again');
  }
}

function bytesOf(v: ArrayBufferView): Uint8Array {
  return new Uint8Array(v.buffer, v.byteOffset, v.byteLength);
}

/** The reader's window grows to the largest single value read; beyond this a header is corrupt, not large. */
const MAX_WINDOW = 1 << 30;
const MIN_WINDOW = 1 << 18;

export class BinaryReader {
  /** Absolute offset in the file. */
  pos = 0;
  readonly file: string;
  readonly length: number;
  /** The bytes [winStart, winStart + win.byteLength) of the file. */
  private win: Buffer;
  private winStart = 0;
  private view: DataView;

  constructor(private readonly src: ByteSource) {
    this.file = src.file;
    this.length = src.size;
    this.win = src.buffer ?? Buffer.alloc(0);
    this.view = new DataView(this.win.buffer, this.win.byteOffset, this.win.byteLength);
  }

  get remaining(): number {
    return this.length - this.pos;
  }

  /** Throws unless `n` more bytes are in the file, then makes sure they are in the window. */
  need(n: number, what: string, tensor?: string): void {
    if (!Number.isSafeInteger(n) || n < 0 || this.pos + n > this.length) {
      throw new FormatError(
        this.file,
        `truncated: reading ${what} needs ${n} bytes at offset ${this.pos}, but the file has ${this.length} bytes`,
        'the file is incomplete (interrupted download or copy?); fetch it again',
        tensor,
      );
    }
    if (this.pos >= this.winStart && this.pos + n <= this.winStart + this.win.byteLength) return;
    if (n > MAX_WINDOW) {
      throw new FormatError(this.file, `${what} claims ${n} bytes at offset ${this.pos}, more than a header value can hold`,
        'the file is corrupt', tensor);
    }
    // Read ahead so a header of many small values costs few reads.
    this.win = Buffer.allocUnsafe(Math.min(Math.max(n, MIN_WINDOW), this.length - this.pos));
    this.src.read(this.pos, this.win);
    this.winStart = this.pos;
    this.view = new DataView(this.win.buffer, this.win.byteOffset, this.win.byteLength);
  }

  /**
   * Window offset of `n` bytes at the cursor, advancing it. Call it before reading `this.view` or `this.win` (not in
   * the same expression): a refill replaces both.
   */
  private take(n: number, what: string): number {
    this.need(n, what);
    const at = this.pos - this.winStart;
    this.pos += n;
    return at;
  }

  u8(what: string): number {
    const at = this.take(1, what);
    return this.view.getUint8(at);
  }

  u16(what: string): number {
    const at = this.take(2, what);
    return this.view.getUint16(at, true);
  }

  i16(what: string): number {
    const at = this.take(2, what);
    return this.view.getInt16(at, true);
  }

  i32(what: string): number {
    const at = this.take(4, what);
    return this.view.getInt32(at, true);
  }

  u32(what: string): number {
    const at = this.take(4, what);
    return this.view.getUint32(at, true);
  }

  f32(what: string): number {
    const at = this.take(4, what);
    return this.view.getFloat32(at, true);
  }

  f64(what: string): number {
    const at = this.take(8, what);
    return this.view.getFloat64(at, true);
  }

  /** A raw 64-bit integer (metadata values that may exceed 2^53). */
  big64(signed: boolean, what: string): bigint {
    const at = this.take(8, what);
    return signed ? this.view.getBigInt64(at, true) : this.view.getBigUint64(at, true);
  }

  /** A u64 that must fit a JS safe integer (sizes, counts, offsets). */
  u64(what: string): number {
    const v = this.big64(false, what);
    if (v > BigInt(Number.MAX_SAFE_INTEGER)) {
      throw new FormatError(this.file, `${what} = ${v} at offset ${this.pos - 8} is too large`, 'the file is corrupt');
    }
    return Number(v);
  }

  /** `n` bytes at the cursor, a view of the reader's window (valid after later reads too: windows are not reused). */
  bytes(n: number, what: string): Buffer {
    const at = this.take(n, what);
    return this.win.subarray(at, at + n);
  }

  utf8(n: number, what: string): string {
    return this.bytes(n, what).toString('utf8');
  }

  /** `n` float32 values, copied (the source offset may not be 4-byte aligned). */
  f32Array(n: number, what: string, tensor?: string): Float32Array {
    this.need(n * 4, what, tensor);
    const out = new Float32Array(n);
    new Uint8Array(out.buffer).set(this.bytes(n * 4, what));
    return out;
  }
}
