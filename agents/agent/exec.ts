// `kubectl exec` on the agent's side: a WebSocket speaking Kubernetes'
// channel protocol (v5.channel.k8s.io, or v4): each binary message starts
// with its channel — 0 stdin, 1 stdout, 2 stderr, 3 the final Status, 4
// terminal resize, 255 "close this channel" (v5) — and the command runs in
// the container's environment, working directory and cgroup. With tty the
// command gets a pseudo-terminal (terminal.ts): one output stream, resized by
// channel 4's {"Width","Height"} messages.
import { spawn } from 'node:child_process';
import type { IncomingMessage } from 'node:http';
import type { Duplex } from 'node:stream';
import { inCgroups } from './pod-worker.ts';
import { openTerminal } from './terminal.ts';
import { type WebSocketConnection, acceptWebSocket } from './websocket.ts';

export const EXEC_PROTOCOLS = ['v5.channel.k8s.io', 'v4.channel.k8s.io'];

const STDIN = 0;
const STDOUT = 1;
const STDERR = 2;
const ERROR = 3;
const RESIZE = 4;
const CLOSE = 255;

/** The Status the error channel carries when the command ends. */
export function exitStatus(code: number | null, signal: string | null, command: string[]): Record<string, unknown> {
  if (code === 0) return { metadata: {}, status: 'Success' };
  const exit = code ?? 128 + (signal === 'SIGKILL' ? 9 : 15);
  return {
    metadata: {}, status: 'Failure', reason: 'NonZeroExitCode',
    message: `command terminated with non-zero exit code: error executing command [${command.join(' ')}], exit code ${exit}`,
    details: { causes: [{ reason: 'ExitCode', message: String(exit) }] },
  };
}

/** Kubernetes' Status reasons of the codes the agent answers. */
export const STATUS_REASONS: Record<number, string> = { 400: 'BadRequest', 401: 'Unauthorized', 403: 'Forbidden', 404: 'NotFound' };

export function httpError(socket: Duplex, code: number, message: string): void {
  const reason = STATUS_REASONS[code] ?? 'InternalError';
  const body = JSON.stringify({ kind: 'Status', apiVersion: 'v1', metadata: {}, status: 'Failure', message, reason, code });
  socket.end(`HTTP/1.1 ${code} ${reason}\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`);
}

/**
 * The sending half of a channel session: `send` frames data on a channel;
 * `finish` sends the final Status once and closes the connection.
 */
function channelSession(ws: WebSocketConnection): { send: (channel: number, data: Buffer) => void; finish: (status: Record<string, unknown>) => void; finished: () => boolean } {
  const send = (channel: number, data: Buffer) => ws.send(Buffer.concat([Buffer.from([channel]), data]));
  let done = false;
  return {
    send,
    finish: (status) => {
      if (done) return;
      done = true;
      send(ERROR, Buffer.from(JSON.stringify(status)));
      ws.close(1000);
    },
    finished: () => done,
  };
}

export function serveExec(req: IncomingMessage, socket: Duplex, query: URLSearchParams, target: { env: Record<string, string>; cwd: string; procsFiles: string[]; prefix: string[] }): void {
  const command = query.getAll('command');
  if (!command.length) return httpError(socket, 400, 'you must specify at least one command for the container');
  const want = (n: string) => ['1', 'true', 'True'].includes(query.get(n) ?? '');
  const ws = acceptWebSocket(req, socket, EXEC_PROTOCOLS);
  if (!ws) return;
  const v5 = ws.protocol === 'v5.channel.k8s.io';
  const argv = [...target.prefix, ...(target.procsFiles.length ? inCgroups(target.procsFiles, command) : command)];
  if (want('tty')) return void execOnTerminal(ws, argv, command, target, want('stdin'));
  const child = spawn(argv[0], argv.slice(1), { cwd: target.cwd, env: target.env, stdio: [want('stdin') ? 'pipe' : 'ignore', 'pipe', 'pipe'], detached: true });
  const { send, finish, finished } = channelSession(ws);
  if (want('stdout') || want('tty')) child.stdout!.on('data', (b: Buffer) => send(STDOUT, b));
  else child.stdout!.resume();
  if (want('stderr')) child.stderr!.on('data', (b: Buffer) => send(STDERR, b));
  else child.stderr!.resume();
  // A command that stops reading its stdin must not take the agent down with EPIPE.
  child.stdin?.on('error', () => {});
  child.on('error', (e) => finish({ metadata: {}, status: 'Failure', reason: 'InternalError', message: `exec: ${JSON.stringify(command[0])}: ${e.message}` }));
  child.on('close', (code, signal) => finish(exitStatus(code, signal, command)));
  ws.onMessage = (msg) => {
    if (!msg.length) return;
    const channel = msg[0];
    if (channel === STDIN && child.stdin) child.stdin.write(msg.subarray(1));
    else if (v5 && channel === CLOSE && msg[1] === STDIN) child.stdin?.end();
  };
  ws.onClose = () => {
    // The client went away: so does the command (its whole process group).
    if (!finished() && child.pid) {
      try {
        process.kill(-child.pid, 'SIGKILL');
      } catch {
        /* gone */
      }
    }
  };
}

/** A terminal size message (channel 4): {"Width": cols, "Height": rows}. */
function parseResize(data: Buffer): { cols: number; rows: number } | undefined {
  try {
    const m = JSON.parse(data.toString('utf8')) as { Width?: unknown; Height?: unknown };
    return typeof m.Width === 'number' && typeof m.Height === 'number' ? { cols: m.Width, rows: m.Height } : undefined;
  } catch {
    return undefined;
  }
}

async function execOnTerminal(ws: WebSocketConnection, argv: string[], command: string[], target: { env: Record<string, string>; cwd: string }, stdin: boolean): Promise<void> {
  const v5 = ws.protocol === 'v5.channel.k8s.io';
  const { send, finish, finished } = channelSession(ws);
  // Messages that arrive while the terminal opens (kubectl sends its size at once) are applied once it exists.
  const early: Buffer[] = [];
  // Bounded: opening takes milliseconds, and a client that floods meanwhile loses the excess, not the agent its memory.
  ws.onMessage = (msg) => void (early.length < 64 && early.push(msg));
  let term: Awaited<ReturnType<typeof openTerminal>>;
  try {
    term = await openTerminal(argv, { cwd: target.cwd, env: target.env });
  } catch (e) {
    return finish({ metadata: {}, status: 'Failure', reason: 'InternalError', message: `exec: ${(e as Error).message}` });
  }
  let gone = false;
  const onMessage = (msg: Buffer) => {
    if (!msg.length || gone) return;
    const channel = msg[0];
    if (channel === STDIN && stdin) term.write(msg.subarray(1));
    else if (channel === RESIZE) {
      const size = parseResize(msg.subarray(1));
      if (size) term.resize(size.cols, size.rows);
    } else if (v5 && channel === CLOSE && msg[1] === STDIN && stdin) term.write(Buffer.from([4])); // end of input on a terminal: ^D
  };
  ws.onMessage = onMessage;
  for (const m of early) onMessage(m);
  term.onData((b) => send(STDOUT, b));
  term.onExit((code, signal) => {
    gone = true;
    finish(exitStatus(code, signal, command));
  });
  ws.onClose = () => {
    // The client went away: so does the command (the terminal's whole session).
    if (!finished() && !gone) term.kill('SIGKILL');
  };
}
