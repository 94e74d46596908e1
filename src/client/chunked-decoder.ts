import { MalformedResponseError } from './http1-head.ts';

/** A chunk-size line (with extensions) or a trailer field longer than this is refused. */
const MAX_LINE = 4096;

type State = 'size' | 'data' | 'data-end' | 'trailer' | 'done';

/**
 * Decodes a `Transfer-Encoding: chunked` body (RFC 9112 §7.1) fed in pieces of any size. The data
 * comes out as views of the pieces fed in, never copied: a consumer that keeps one past the call
 * must copy it (or own the buffer it views).
 */
export class ChunkedDecoder {
  private state: State = 'size';
  private line = '';
  private remaining = 0;

  /** True once the last chunk and the trailer section were read. */
  get done(): boolean {
    return this.state === 'done';
  }

  /**
   * Feeds bytes; `onData` gets each piece of chunk data. Returns how many of `bytes` belonged to
   * the body (all of them until the end; fewer when the body ended inside them).
   */
  feed(bytes: Buffer, onData: (data: Buffer) => void): number {
    let at = 0;
    while (at < bytes.length && this.state !== 'done') {
      if (this.state === 'data') {
        const take = Math.min(this.remaining, bytes.length - at);
        onData(bytes.subarray(at, at + take));
        at += take;
        this.remaining -= take;
        if (this.remaining === 0) this.state = 'data-end';
        continue;
      }
      // Line-based states: collect up to the LF.
      const lf = bytes.indexOf(10, at);
      const end = lf < 0 ? bytes.length : lf;
      this.line += bytes.toString('latin1', at, end);
      if (this.line.length > MAX_LINE) throw new MalformedResponseError('a chunk line is too long');
      at = lf < 0 ? bytes.length : lf + 1;
      if (lf < 0) break;
      if (!this.line.endsWith('\r')) throw new MalformedResponseError('a chunk line does not end with CRLF');
      const line = this.line.slice(0, -1);
      this.line = '';
      this.endLine(line);
    }
    return at;
  }

  private endLine(line: string): void {
    if (this.state === 'data-end') {
      if (line !== '') throw new MalformedResponseError('chunk data longer than its size');
      this.state = 'size';
    } else if (this.state === 'size') {
      const size = /^([0-9a-fA-F]{1,12})[ \t]*(?:;.*)?$/.exec(line);
      if (!size) throw new MalformedResponseError(`chunk size ${JSON.stringify(line.slice(0, 40))}`);
      this.remaining = Number.parseInt(size[1]!, 16);
      this.state = this.remaining === 0 ? 'trailer' : 'data';
    } else if (this.state === 'trailer' && line === '') {
      this.state = 'done';
    }
  }
}
