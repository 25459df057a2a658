// The server side of SPDY/3.1 framing, as much of it as Kubernetes' port
// forwarding uses (its httpstream/spdy layer): streams opened by the client
// (SYN_STREAM with a zlib-compressed header block), answered with SYN_REPLY
// or RST_STREAM, DATA frames with FIN, PING echoed, GOAWAY. SETTINGS,
// WINDOW_UPDATE and HEADERS are read and ignored, as Kubernetes' SPDY
// library does (it does no flow control). kubectl ≥ 1.31 sends these bytes
// inside WebSocket binary messages (subprotocol SPDY/3.1+portforward.k8s.io),
// older clients and its fallback over a plain `Upgrade: SPDY/3.1`
// connection; the session only sees a byte stream either way.
//
// No npm package here does this (spdy-transport is not a dependency); the
// subset is small. Anything malformed ends the session (GOAWAY with
// PROTOCOL_ERROR), never the process.
import { constants, createDeflate, createInflate, type Deflate, type Inflate } from 'node:zlib';

/** SPDY/3's header compression dictionary (draft 3, section 2.6.10.1): length-prefixed words, then a tail. */
const DICTIONARY = (() => {
  const words = [
    'options', 'head', 'post', 'put', 'delete', 'trace', 'accept', 'accept-charset', 'accept-encoding', 'accept-language',
    'accept-ranges', 'age', 'allow', 'authorization', 'cache-control', 'connection', 'content-base', 'content-encoding',
    'content-language', 'content-length', 'content-location', 'content-md5', 'content-range', 'content-type', 'date', 'etag',
    'expect', 'expires', 'from', 'host', 'if-match', 'if-modified-since', 'if-none-match', 'if-range', 'if-unmodified-since',
    'last-modified', 'location', 'max-forwards', 'pragma', 'proxy-authenticate', 'proxy-authorization', 'range', 'referer',
    'retry-after', 'server', 'te', 'trailer', 'transfer-encoding', 'upgrade', 'user-agent', 'vary', 'via', 'warning',
    'www-authenticate', 'method', 'get', 'status', '200 OK', 'version', 'HTTP/1.1', 'url', 'public', 'set-cookie', 'keep-alive', 'origin',
  ];
  const tail = '100101201202205206300302303304305306307402405406407408409410411412413414415416417502504505'
    + '203 Non-Authoritative Information204 No Content301 Moved Permanently400 Bad Request401 Unauthorized'
    + '403 Forbidden404 Not Found500 Internal Server Error501 Not Implemented503 Service Unavailable'
    + 'Jan Feb Mar Apr May Jun Jul Aug Sept Oct Nov Dec 00:00:00 Mon, Tue, Wed, Thu, Fri, Sat, Sun, GMT'
    + 'chunked,text/html,image/png,image/jpg,image/gif,application/xml,application/xhtml+xml,text/plain,'
    + 'text/javascript,publicprivatemax-age=gzip,deflate,sdchcharset=utf-8charset=iso-8859-1,utf-,*,enq=0.';
  const parts: Buffer[] = [];
  for (const w of words) {
    const len = Buffer.alloc(4);
    len.writeUInt32BE(w.length);
    parts.push(len, Buffer.from(w, 'latin1'));
  }
  parts.push(Buffer.from(tail, 'latin1'));
  return Buffer.concat(parts);
})();

const SYN_STREAM = 1;
const SYN_REPLY = 2;
const RST_STREAM = 3;
const PING = 6;
const GOAWAY = 7;
const FLAG_FIN = 0x01;
const FLAG_UNIDIRECTIONAL = 0x02;

export const RST = { PROTOCOL_ERROR: 1, INVALID_STREAM: 2, REFUSED_STREAM: 3, CANCEL: 5, INTERNAL_ERROR: 6 } as const;

/** A header block may not claim more than this many pairs (they would not fit in a frame anyway). */
const MAX_HEADERS = 1024;

export class SpdyStream {
  /** Header names are lower case; several values of one name are joined by NUL. */
  readonly headers: Record<string, string>;
  onData: (data: Buffer) => void = () => {};
  /** The client sent FIN: it writes no more. */
  onEnd: () => void = () => {};
  /** Reset by the client, or the session ended. */
  onReset: () => void = () => {};
  remoteEnded = false;
  localEnded = false;
  reset = false;

  constructor(readonly id: number, headers: Record<string, string>, private readonly session: SpdySession) {
    this.headers = headers;
  }

  write(data: Buffer): void {
    if (this.localEnded || this.reset) return;
    for (let at = 0; at < data.length; at += 0xffffff) this.session.sendData(this.id, data.subarray(at, at + 0xffffff), false);
  }

  /** FIN: nothing more from this side. */
  end(): void {
    if (this.localEnded || this.reset) return;
    this.localEnded = true;
    this.session.sendData(this.id, Buffer.alloc(0), true);
    this.session.forgetIfDone(this);
  }

  abort(status: number = RST.CANCEL): void {
    if (this.reset) return;
    this.reset = true;
    this.session.sendReset(this.id, status);
    this.session.forget(this);
  }
}

export interface SpdySessionOptions {
  /** Bytes to the client. */
  write: (data: Buffer) => void;
  /** Ends the underlying connection. */
  close: () => void;
  /** A new stream: undefined accepts it (SYN_REPLY is sent before onStream's `accepted` runs), a message refuses it (RST_STREAM). */
  validate: (headers: Record<string, string>) => string | undefined;
  accepted: (stream: SpdyStream) => void;
  /** A protocol error or a refused stream, for the log. */
  onError?: (message: string) => void;
}

export class SpdySession {
  private buf: Buffer = Buffer.alloc(0);
  private readonly streams = new Map<number, SpdyStream>();
  private lastClientStream = 0;
  private closed = false;
  private queue: Promise<void> = Promise.resolve();
  private readonly inflate: Inflate;
  private readonly deflate: Deflate;

  constructor(private readonly o: SpdySessionOptions) {
    // One compression context per direction for the whole session, as SPDY/3 requires.
    this.inflate = createInflate({ dictionary: DICTIONARY });
    this.deflate = createDeflate({ dictionary: DICTIONARY });
    this.inflate.on('error', (e) => this.fail(`header block does not decompress: ${e.message}`));
    this.deflate.on('error', (e) => this.fail(`header compression failed: ${e.message}`));
  }

  /** Bytes from the client, in order. */
  receive(data: Buffer): void {
    if (this.closed) return;
    this.buf = this.buf.length ? Buffer.concat([this.buf, data]) : data;
    while (this.buf.length >= 8 && !this.closed) {
      const len = this.buf.readUIntBE(5, 3);
      if (this.buf.length < 8 + len) return;
      const frame = Buffer.from(this.buf.subarray(0, 8 + len));
      this.buf = this.buf.subarray(8 + len);
      // Frames are handled one after the other: header blocks decompress asynchronously.
      this.queue = this.queue.then(() => this.handle(frame)).catch((e) => this.fail((e as Error).message));
    }
  }

  /** The connection ended: every stream is gone. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    for (const s of this.streams.values()) {
      s.reset = true;
      s.onReset();
    }
    this.streams.clear();
    this.inflate.close();
    this.deflate.close();
    this.o.close();
  }

  sendData(id: number, data: Buffer, fin: boolean): void {
    if (this.closed) return;
    const head = Buffer.alloc(8);
    head.writeUInt32BE(id & 0x7fffffff, 0);
    head[4] = fin ? FLAG_FIN : 0;
    head.writeUIntBE(data.length, 5, 3);
    this.o.write(data.length ? Buffer.concat([head, data]) : head);
  }

  sendReset(id: number, status: number): void {
    const body = Buffer.alloc(8);
    body.writeUInt32BE(id & 0x7fffffff, 0);
    body.writeUInt32BE(status, 4);
    this.control(RST_STREAM, 0, body);
  }

  forget(s: SpdyStream): void {
    this.streams.delete(s.id);
  }

  forgetIfDone(s: SpdyStream): void {
    if (s.localEnded && s.remoteEnded) this.streams.delete(s.id);
  }

  private control(type: number, flags: number, body: Buffer): void {
    if (this.closed) return;
    const head = Buffer.alloc(8);
    head.writeUInt16BE(0x8000 | 3, 0);
    head.writeUInt16BE(type, 2);
    head[4] = flags;
    head.writeUIntBE(body.length, 5, 3);
    this.o.write(Buffer.concat([head, body]));
  }

  private fail(message: string): void {
    if (this.closed) return;
    this.o.onError?.(`SPDY protocol error: ${message}`);
    const body = Buffer.alloc(8);
    body.writeUInt32BE(this.lastClientStream, 0);
    body.writeUInt32BE(1, 4); // PROTOCOL_ERROR
    this.control(GOAWAY, 0, body);
    this.close();
  }

  private async handle(f: Buffer): Promise<void> {
    if (this.closed) return;
    const flags = f[4];
    const body = f.subarray(8);
    if ((f[0] & 0x80) === 0) {
      const id = f.readUInt32BE(0) & 0x7fffffff;
      const s = this.streams.get(id);
      if (!s || s.remoteEnded) return; // gone or reset meanwhile: dropped, as Kubernetes' library does
      if (body.length) s.onData(body);
      if (flags & FLAG_FIN) this.remoteEnd(s);
      return;
    }
    const version = f.readUInt16BE(0) & 0x7fff;
    if (version !== 3) return this.fail(`SPDY version ${version} is not supported (3 is)`);
    const type = f.readUInt16BE(2);
    switch (type) {
      case SYN_STREAM: {
        if (body.length < 10) return this.fail('short SYN_STREAM frame');
        const id = body.readUInt32BE(0) & 0x7fffffff;
        // The header block goes through the shared decompressor whatever becomes of the stream.
        const headers = parseHeaderBlock(await this.inflateBlock(body.subarray(10)));
        if (typeof headers === 'string') return this.fail(headers);
        if (id === 0 || id % 2 === 0 || id <= this.lastClientStream) {
          this.sendReset(id, RST.PROTOCOL_ERROR);
          return;
        }
        this.lastClientStream = id;
        const refused = this.o.validate(headers);
        if (refused) {
          this.o.onError?.(`stream ${id} refused: ${refused}`);
          this.sendReset(id, RST.CANCEL);
          return;
        }
        const s = new SpdyStream(id, headers, this);
        this.streams.set(id, s);
        // SYN_REPLY with an empty header block, as Kubernetes' server replies.
        const block = await this.deflateBlock(Buffer.alloc(4));
        if (this.closed) return;
        const reply = Buffer.alloc(4);
        reply.writeUInt32BE(id, 0);
        this.control(SYN_REPLY, 0, Buffer.concat([reply, block]));
        if (flags & FLAG_UNIDIRECTIONAL) s.localEnded = true;
        this.o.accepted(s);
        if (flags & FLAG_FIN) this.remoteEnd(s);
        return;
      }
      case RST_STREAM: {
        if (body.length < 8) return this.fail('short RST_STREAM frame');
        const s = this.streams.get(body.readUInt32BE(0) & 0x7fffffff);
        if (!s) return;
        s.reset = true;
        this.streams.delete(s.id);
        s.onReset();
        return;
      }
      case PING:
        if (body.length !== 4) return this.fail('PING frame of the wrong size');
        // The client's pings have odd ids: each is answered with the same frame.
        if (body.readUInt32BE(0) % 2 === 1) this.control(PING, 0, body);
        return;
      case GOAWAY:
        this.close();
        return;
      case SYN_REPLY:
        // Only the client opens streams here: a reply answers nothing.
        return this.fail('unexpected SYN_REPLY');
      default:
        // SETTINGS, HEADERS, WINDOW_UPDATE, CREDENTIAL and unknown types are ignored.
        return;
    }
  }

  private remoteEnd(s: SpdyStream): void {
    if (s.remoteEnded) return;
    s.remoteEnded = true;
    s.onEnd();
    this.forgetIfDone(s);
  }

  private inflateBlock(block: Buffer): Promise<Buffer> {
    return zlibRound(this.inflate, block);
  }

  private deflateBlock(block: Buffer): Promise<Buffer> {
    return zlibRound(this.deflate, block);
  }
}

/** Writes a block to a long-lived zlib stream and collects what a sync flush yields. */
function zlibRound(z: Inflate | Deflate, block: Buffer): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const out: Buffer[] = [];
    const onData = (b: Buffer) => out.push(b);
    const onError = (e: Error) => {
      z.off('data', onData);
      reject(e);
    };
    z.on('data', onData);
    z.once('error', onError);
    z.write(block);
    z.flush(constants.Z_SYNC_FLUSH, () => {
      z.off('data', onData);
      z.off('error', onError);
      resolve(Buffer.concat(out));
    });
  });
}

/** A decompressed header block: {count, (name length, name, value length, value)…}; a message when malformed. */
export function parseHeaderBlock(b: Buffer): Record<string, string> | string {
  if (b.length < 4) return 'short header block';
  const n = b.readUInt32BE(0);
  if (n > MAX_HEADERS) return `header block claims ${n} headers`;
  const out: Record<string, string> = {};
  let at = 4;
  const str = (): string | undefined => {
    if (at + 4 > b.length) return undefined;
    const len = b.readUInt32BE(at);
    at += 4;
    if (at + len > b.length) return undefined;
    const s = b.subarray(at, at + len).toString('latin1');
    at += len;
    return s;
  };
  for (let i = 0; i < n; i++) {
    const name = str();
    const value = str();
    if (name === undefined || value === undefined) return 'truncated header block';
    if (!name || name !== name.toLowerCase()) return `invalid header name ${JSON.stringify(name)}`;
    if (name in out) return `header ${name} appears twice`;
    out[name] = value;
  }
  return out;
}

/** An uncompressed header block (for tests that speak SPDY themselves). */
export function headerBlock(headers: Record<string, string>): Buffer {
  const parts: Buffer[] = [];
  const u32 = (n: number) => {
    const b = Buffer.alloc(4);
    b.writeUInt32BE(n);
    return b;
  };
  parts.push(u32(Object.keys(headers).length));
  for (const [k, v] of Object.entries(headers)) {
    parts.push(u32(Buffer.byteLength(k, 'latin1')), Buffer.from(k, 'latin1'), u32(Buffer.byteLength(v, 'latin1')), Buffer.from(v, 'latin1'));
  }
  return Buffer.concat(parts);
}

export { DICTIONARY as SPDY_DICTIONARY };
