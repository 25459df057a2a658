// `kubectl port-forward` on the agent's side, as the kubelet serves
// /portForward/{namespace}/{pod}: a SPDY session (agents/agent/spdy.ts),
// reached through a WebSocket whose subprotocol is
// SPDY/3.1+portforward.k8s.io (kubectl ≥ 1.31 tunnels SPDY in binary
// messages) or a plain `Upgrade: SPDY/3.1` (its fallback). For each local
// connection the client opens two streams with the same `requestid` and
// `port` headers: `streamtype: error`, then `streamtype: data`. Once both are
// there the agent connects to podIP:port and copies bytes both ways; a
// failure is written to the error stream in the kubelet's words, which
// kubectl prints as "an error occurred forwarding L -> R: …".
import type { IncomingMessage } from 'node:http';
import { type Socket, connect } from 'node:net';
import type { Duplex } from 'node:stream';
import { httpError } from './exec.ts';
import { SpdySession, type SpdyStream } from './spdy.ts';
import { acceptWebSocket } from './websocket.ts';

export const PORT_FORWARD_PROTOCOL = 'portforward.k8s.io';
const TUNNELED = `SPDY/3.1+${PORT_FORWARD_PROTOCOL}`;
/** How long a request may wait for its second stream (the kubelet's streamCreationTimeout). */
const STREAM_CREATION_TIMEOUT_MS = 30_000;
/** After one direction ends, how long the other may go on (the runtimes use socat's 0.5 s). */
const HALF_CLOSE_GRACE_MS = 500;

export interface PortForwardTarget {
  pod: string;
  uid: string;
  podIP: string;
  log?: { warn(o: object, msg: string): void };
}

interface Pair {
  data?: SpdyStream;
  error?: SpdyStream;
  timer: NodeJS.Timeout;
}

/** The checks the kubelet makes on each new stream's headers. */
function validate(h: Record<string, string>): string | undefined {
  const port = h.port;
  if (!port) return '"port" header is required';
  if (!/^\d+$/.test(port) || Number(port) > 65535) return `unable to parse "${port}" as a port`;
  if (Number(port) < 1) return `port "${port}" must be > 0`;
  const type = h.streamtype;
  if (!type) return '"streamType" header is required';
  if (type !== 'error' && type !== 'data') return `invalid stream type "${type}"`;
  return undefined;
}

export function servePortForward(req: IncomingMessage, socket: Duplex, target: PortForwardTarget): void {
  const upgrade = String(req.headers.upgrade ?? '').toLowerCase();
  let session: SpdySession;
  const handlers = {
    validate,
    accepted: (s: SpdyStream) => onStream(s),
    onError: (message: string) => target.log?.warn({ pod: target.pod, err: message }, 'port-forward'),
  };
  if (upgrade === 'websocket') {
    const ws = acceptWebSocket(req, socket, [TUNNELED]);
    if (!ws) return;
    session = new SpdySession({ ...handlers, write: (b) => ws.send(b), close: () => ws.close(1000) });
    ws.onMessage = (m) => session.receive(m);
    ws.onClose = () => session.close();
  } else if (upgrade === 'spdy/3.1') {
    const offered = String(req.headers['x-stream-protocol-version'] ?? '').split(',').map((p) => p.trim());
    if (!offered.includes(PORT_FORWARD_PROTOCOL)) return httpError(socket, 403, `unable to upgrade: unable to negotiate protocol: client supports [${offered.join(' ')}], server accepts [${PORT_FORWARD_PROTOCOL}]`);
    socket.write(`HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: SPDY/3.1\r\nX-Stream-Protocol-Version: ${PORT_FORWARD_PROTOCOL}\r\n\r\n`);
    session = new SpdySession({ ...handlers, write: (b) => { if (!socket.destroyed) socket.write(b); }, close: () => socket.destroy() });
    socket.on('data', (b: Buffer) => session.receive(b));
    socket.on('close', () => session.close());
    socket.on('error', () => session.close());
  } else {
    return httpError(socket, 400, `port forwarding needs a WebSocket (${TUNNELED}) or SPDY/3.1 upgrade`);
  }

  const pairs = new Map<string, Pair>();
  function onStream(s: SpdyStream): void {
    // Old clients send no request id: the kubelet pairs an error stream with the data stream two ids later.
    const id = s.headers.requestid ?? String(s.headers.streamtype === 'data' ? s.id - 2 : s.id);
    let p = pairs.get(id);
    if (!p) {
      const timer = setTimeout(() => {
        pairs.delete(id);
        fail(p!, `(conn=${target.pod}, request=${id}) timed out waiting for streams`);
      }, STREAM_CREATION_TIMEOUT_MS);
      timer.unref();
      p = { timer };
      pairs.set(id, p);
    }
    const slot = s.headers.streamtype === 'error' ? 'error' : 'data';
    if (p[slot]) {
      fail(p, `error processing stream for request ${id}: ${slot} stream already assigned`);
      s.abort();
      return;
    }
    p[slot] = s;
    if (p.data && p.error) {
      clearTimeout(p.timer);
      pairs.delete(id);
      forward(p.data, p.error, Number(s.headers.port));
    }
  }

  function fail(p: Pair, message: string): void {
    p.error?.write(Buffer.from(message));
    p.error?.end();
    p.data?.end();
  }

  function forward(data: SpdyStream, error: SpdyStream, port: number): void {
    // The client writes nothing on the error stream; it only reads what went wrong.
    error.onData = () => {};
    const conn: Socket = connect({ host: target.podIP, port });
    let connected = false;
    let graceTimer: NodeJS.Timeout | undefined;
    const finish = () => {
      clearTimeout(graceTimer);
      data.end();
      error.end();
    };
    data.onData = (b) => {
      if (!conn.destroyed) conn.write(b);
    };
    // The client's side closed: the pod's side gets EOF and a moment to answer.
    data.onEnd = () => {
      conn.end();
      graceTimer = setTimeout(() => conn.destroy(), HALF_CLOSE_GRACE_MS);
      graceTimer.unref();
    };
    data.onReset = () => conn.destroy();
    error.onReset = () => conn.destroy();
    conn.on('connect', () => {
      connected = true;
    });
    conn.on('data', (b: Buffer) => data.write(b));
    conn.on('error', (e: Error) => {
      if (connected) return; // the close that follows ends the streams
      const message = `error forwarding port ${port} to pod ${target.pod}, uid ${target.uid}: failed to connect to ${target.podIP}:${port}: ${e.message}`;
      target.log?.warn({ pod: target.pod, port, err: e.message }, 'port-forward: cannot connect');
      error.write(Buffer.from(message));
    });
    conn.on('close', finish);
  }
}
