/**
 * A bounds-checked little-endian cursor over a Buffer. Every binary loader (GGUF, llama2.c, tokenizer.bin) reads
 * through it, so a truncated or lying file becomes a FormatError naming the file and what was being read, never an
 * out-of-range read, a RangeError from DataView or a silently short array.
 */
import { FormatError } from '../tensor/errors.js';

export class BinaryReader {
  pos = 0;
  private readonly view: DataView;

  constructor(
    readonly buf: Buffer,
    readonly file: string,
  ) {
    this.view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  }

  get length(): number {
    return this.buf.byteLength;
  }

  get remaining(): number {
    return this.buf.byteLength - this.pos;
  }

  /** Throws unless `n` more bytes are available; `what` says what was being read, for the message. */
  need(n: number, what: string, tensor?: string): void {
    if (!Number.isSafeInteger(n) || n < 0 || this.pos + n > this.buf.byteLength) {
      throw new FormatError(
        this.file,
        `truncated: reading ${what} needs ${n} bytes at offset ${this.pos}, but the file has ${this.buf.byteLength} bytes`,
        'the file is incomplete (interrupted download or copy?); fetch it again',
        tensor,
      );
    }
  }

  u8(what: string): number {
    this.need(1, what);
    return this.view.getUint8(this.pos++);
  }

  i32(what: string): number {
    this.need(4, what);
    const v = this.view.getInt32(this.pos, true);
    this.pos += 4;
    return v;
  }

  u32(what: string): number {
    this.need(4, what);
    const v = this.view.getUint32(this.pos, true);
    this.pos += 4;
    return v;
  }

  f32(what: string): number {
    this.need(4, what);
    const v = this.view.getFloat32(this.pos, true);
    this.pos += 4;
    return v;
  }

  /** A u64 that must fit a JS safe integer (sizes, counts, offsets). */
  u64(what: string): number {
    this.need(8, what);
    const v = this.view.getBigUint64(this.pos, true);
    this.pos += 8;
    if (v > BigInt(Number.MAX_SAFE_INTEGER)) {
      throw new FormatError(this.file, `${what} = ${v} at offset ${this.pos - 8} is too large`, 'the file is corrupt');
    }
    return Number(v);
  }

  bytes(n: number, what: string): Buffer {
    this.need(n, what);
    const b = this.buf.subarray(this.pos, this.pos + n);
    this.pos += n;
    return b;
  }

  utf8(n: number, what: string): string {
    return this.bytes(n, what).toString('utf8');
  }

  /** `n` float32 values, copied (the source offset may not be 4-byte aligned). */
  f32Array(n: number, what: string, tensor?: string): Float32Array {
    this.need(n * 4, what, tensor);
    const out = new Float32Array(n);
    new Uint8Array(out.buffer).set(this.buf.subarray(this.pos, this.pos + n * 4));
    this.pos += n * 4;
    return out;
  }
}
