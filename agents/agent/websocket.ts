// A minimal WebSocket server side (RFC 6455) for the agent's streaming
// endpoints (exec): the handshake with subprotocol selection, binary and
// text frames from the client (masked, possibly fragmented), ping/pong and
// close; frames to the client unmasked. Enough for Kubernetes' channel
// protocols, no extensions.
import { createHash } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import type { Duplex } from 'node:stream';

const GUID = '258EAFA5-E914-47DA-95CA-C5AB0DC85B11';
/** A client's message (all its fragments) may not be larger: a forged length must not make the agent buffer without end. */
const MAX_MESSAGE = 32 * 2 ** 20;

export class WebSocketConnection {
  private buf: Buffer = Buffer.alloc(0);
  private fragments: Buffer[] = [];
  private closed = false;
  onMessage: (data: Buffer) => void = () => {};
  onClose: () => void = () => {};

  constructor(private readonly socket: Duplex, readonly protocol: string) {
    socket.on('data', (d: Buffer) => this.receive(d));
    socket.on('close', () => this.finish());
    socket.on('error', () => this.finish());
  }

  send(data: Buffer): void {
    this.frame(0x2, data);
  }

  close(code = 1000): void {
    if (this.closed) return;
    this.buf = Buffer.alloc(0);
    const b = Buffer.alloc(2);
    b.writeUInt16BE(code);
    this.frame(0x8, b);
    this.socket.end();
    this.finish();
  }

  private finish(): void {
    if (this.closed) return;
    this.closed = true;
    this.onClose();
  }

  private frame(opcode: number, payload: Buffer): void {
    if (this.closed || this.socket.destroyed) return;
    const len = payload.length;
    const head = len < 126 ? Buffer.alloc(2) : len < 65536 ? Buffer.alloc(4) : Buffer.alloc(10);
    head[0] = 0x80 | opcode;
    if (len < 126) head[1] = len;
    else if (len < 65536) {
      head[1] = 126;
      head.writeUInt16BE(len, 2);
    } else {
      head[1] = 127;
      head.writeBigUInt64BE(BigInt(len), 2);
    }
    this.socket.write(Buffer.concat([head, payload]));
  }

  private receive(d: Buffer): void {
    this.buf = this.buf.length ? Buffer.concat([this.buf, d]) : d;
    for (;;) {
      if (this.buf.length < 2) return;
      const fin = (this.buf[0] & 0x80) !== 0;
      const opcode = this.buf[0] & 0x0f;
      const masked = (this.buf[1] & 0x80) !== 0;
      let len = this.buf[1] & 0x7f;
      let at = 2;
      if (len === 126) {
        if (this.buf.length < 4) return;
        len = this.buf.readUInt16BE(2);
        at = 4;
      } else if (len === 127) {
        if (this.buf.length < 10) return;
        len = Number(this.buf.readBigUInt64BE(2));
        at = 10;
      }
      // RFC 6455: a client masks every frame; control frames are short and whole; only known opcodes.
      if (!masked || (opcode >= 0x8 && (len > 125 || !fin)) || ![0x0, 0x1, 0x2, 0x8, 0x9, 0xa].includes(opcode)) return this.close(1002);
      if (len + this.fragments.reduce((a, f) => a + f.length, 0) > MAX_MESSAGE) return this.close(1009);
      const maskAt = at;
      at += 4;
      if (this.buf.length < at + len) return;
      const payload = Buffer.from(this.buf.subarray(at, at + len));
      for (let i = 0; i < payload.length; i++) payload[i] ^= this.buf[maskAt + (i % 4)];
      this.buf = this.buf.subarray(at + len);
      if (opcode === 0x8) {
        this.close();
        return;
      }
      if (opcode === 0x9) {
        this.frame(0xa, payload);
        continue;
      }
      if (opcode === 0xa) continue;
      this.fragments.push(payload);
      if (fin) {
        const msg = this.fragments.length === 1 ? this.fragments[0] : Buffer.concat(this.fragments);
        this.fragments = [];
        this.onMessage(msg);
      }
    }
  }
}

/**
 * Completes the handshake choosing the first of the client's subprotocols
 * that `supported` lists; undefined (after answering 400) when it is not a
 * WebSocket request or no protocol fits.
 */
export function acceptWebSocket(req: IncomingMessage, socket: Duplex, supported: readonly string[]): WebSocketConnection | undefined {
  const key = req.headers['sec-websocket-key'];
  const offered = String(req.headers['sec-websocket-protocol'] ?? '').split(',').map((p) => p.trim()).filter(Boolean);
  const protocol = offered.find((p) => supported.includes(p));
  if (String(req.headers.upgrade ?? '').toLowerCase() !== 'websocket' || typeof key !== 'string' || !protocol) {
    const body = JSON.stringify({ kind: 'Status', apiVersion: 'v1', status: 'Failure', code: 400, reason: 'BadRequest', message: `a WebSocket upgrade with one of the subprotocols ${supported.join(', ')} is required` });
    socket.end(`HTTP/1.1 400 Bad Request\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`);
    return undefined;
  }
  const accept = createHash('sha1').update(key + GUID).digest('base64');
  socket.write(`HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: ${accept}\r\nSec-WebSocket-Protocol: ${protocol}\r\n\r\n`);
  return new WebSocketConnection(socket, protocol);
}
