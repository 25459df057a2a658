// `kubectl attach` on the agent's side, as the kubelet serves
// /attach/{namespace}/{pod}/{container}: the same WebSocket channel protocol
// as exec (v5.channel.k8s.io), joined to the container's main process
// instead of a new one. Output is what the container writes from now on (its
// stdout and stderr share one log file here, so both arrive on the stdout
// channel); stdin, when the spec says `stdin: true`, is the FIFO the
// container reads (runtime/process.ts). No terminal can be allocated by this
// runtime: `tty: true` containers run on pipes and resize messages are
// ignored. The session ends with a Success status when the container exits.
import { closeSync, openSync, readSync, statSync } from 'node:fs';
import type { IncomingMessage } from 'node:http';
import type { Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import { EXEC_PROTOCOLS, httpError } from './exec.ts';
import type { ContainerProcess } from './runtime/process.ts';
import { acceptWebSocket } from './websocket.ts';

const STDIN = 0;
const STDOUT = 1;
const STDERR = 2;
const ERROR = 3;
const CLOSE = 255;
/** How often the log file is looked at for new output. */
const POLL_MS = 50;
/** At most this much is read and sent per look (a container writing faster is sent in pieces). */
const CHUNK = 256 * 1024;

export interface AttachTarget {
  proc: ContainerProcess;
  /** The container's spec says `stdin: true` / `stdinOnce: true`. */
  stdin: boolean;
  stdinOnce: boolean;
}

/** New bytes of a file from `offset` on (a truncated file — rotation — starts again at 0). */
function readNew(file: string, at: { offset: number }): Buffer | undefined {
  let size: number;
  try {
    size = statSync(file).size;
  } catch {
    return undefined;
  }
  if (size < at.offset) at.offset = 0;
  if (size === at.offset) return undefined;
  const fd = openSync(file, 'r');
  try {
    const buf = Buffer.alloc(Math.min(size - at.offset, CHUNK));
    const n = readSync(fd, buf, 0, buf.length, at.offset);
    at.offset += n;
    return n ? buf.subarray(0, n) : undefined;
  } finally {
    closeSync(fd);
  }
}

export function serveAttach(req: IncomingMessage, socket: Duplex, query: URLSearchParams, target: AttachTarget): void {
  const want = (n: string) => ['1', 'true', 'True'].includes(query.get(n) ?? '');
  const [stdin, stdout, stderr, tty] = [want('stdin'), want('stdout'), want('stderr'), want('tty')];
  if (!stdin && !stdout && !stderr) return httpError(socket, 400, 'you must specify at least 1 of stdin, stdout, stderr');
  const ws = acceptWebSocket(req, socket, EXEC_PROTOCOLS);
  if (!ws) return;
  const v5 = ws.protocol === 'v5.channel.k8s.io';
  const { proc } = target;
  const file = proc.record.logFile;
  const send = (channel: number, data: Buffer) => ws.send(Buffer.concat([Buffer.from([channel]), data]));
  // Output from the moment of attaching on, as the runtimes give it.
  const at = { offset: 0 };
  try {
    at.offset = statSync(file).size;
  } catch {
    /* not written yet */
  }
  const outChannel = stdout || tty ? STDOUT : stderr ? STDERR : undefined;
  const poll = setInterval(() => {
    let data: Buffer | undefined;
    while ((data = readNew(file, at))) if (outChannel !== undefined) send(outChannel, data);
  }, POLL_MS);
  // stdin only where the container has one; otherwise what the client sends is dropped (as the runtimes do).
  let writer: Socket | undefined = stdin && target.stdin ? proc.openStdin() : undefined;
  let finished = false;
  const finish = () => {
    if (finished) return;
    finished = true;
    clearInterval(poll);
    writer?.end();
    writer = undefined;
    // stdinOnce: the first session that had stdin is over; the container reads EOF.
    if (stdin && target.stdinOnce) proc.closeStdin();
  };
  void proc.exited.then(() => {
    if (finished) return;
    // What it wrote last, then the end of the session.
    let data: Buffer | undefined;
    while ((data = readNew(file, at))) if (outChannel !== undefined) send(outChannel, data);
    send(ERROR, Buffer.from(JSON.stringify({ metadata: {}, status: 'Success' })));
    finish();
    ws.close(1000);
  });
  ws.onMessage = (msg) => {
    if (!msg.length) return;
    const channel = msg[0];
    if (channel === STDIN) {
      if (writer && !writer.destroyed) writer.write(msg.subarray(1));
    } else if (v5 && channel === CLOSE && msg[1] === STDIN) {
      writer?.end();
      writer = undefined;
      if (target.stdinOnce) proc.closeStdin();
    }
  };
  ws.onClose = finish;
}
