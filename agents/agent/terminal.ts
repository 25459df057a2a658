// A pseudo-terminal for `kubectl exec -t`: the command runs as the session
// leader of a new pty, so shells, editors and `top` see a terminal, its size
// follows the client's resize messages (TIOCSWINSZ, then SIGWINCH), and its
// stdout and stderr arrive merged on one stream, as with Kubernetes' TTY.
// Node has no pty API of its own; node-pty (the maintained addon behind VS
// Code's terminal) provides posix_openpt/forkpty. It is loaded on first use:
// an agent whose node-pty did not build still runs everything else, and a
// tty request then gets a clear error.
import { constants } from 'node:os';

export interface Terminal {
  readonly pid: number;
  write(data: Buffer): void;
  resize(cols: number, rows: number): void;
  /** Signals the terminal's whole process group. */
  kill(signal: NodeJS.Signals): void;
  onData(f: (data: Buffer) => void): void;
  onExit(f: (code: number | null, signal: string | null) => void): void;
}

type NodePty = typeof import('node-pty');
let loaded: Promise<NodePty | Error> | undefined;

function load(): Promise<NodePty | Error> {
  loaded ??= import('node-pty').then(
    (m) => ((m as { default?: NodePty }).default ?? m) as NodePty,
    (e: Error) => new Error(`no terminal can be allocated on this node (node-pty: ${e.message})`),
  );
  return loaded;
}

const SIGNAL_NAMES = new Map(Object.entries(constants.signals).map(([name, n]) => [n as number, name]));

/** Starts argv on a new pty of cols×rows; throws when no pty can be made. */
export async function openTerminal(argv: string[], o: { cwd: string; env: Record<string, string>; cols?: number; rows?: number }): Promise<Terminal> {
  const pty = await load();
  if (pty instanceof Error) throw pty;
  const p = pty.spawn(argv[0], argv.slice(1), {
    name: o.env.TERM ?? 'xterm', cwd: o.cwd, env: { TERM: 'xterm', ...o.env }, cols: o.cols ?? 80, rows: o.rows ?? 24, encoding: null,
  });
  return {
    pid: p.pid,
    write: (data) => p.write(data as unknown as string),
    resize: (cols, rows) => {
      if (Number.isInteger(cols) && Number.isInteger(rows) && cols > 0 && rows > 0 && cols < 10_000 && rows < 10_000) p.resize(cols, rows);
    },
    kill: (signal) => {
      try {
        process.kill(-p.pid, signal);
      } catch {
        /* gone */
      }
    },
    onData: (f) => void p.onData((d: string | Buffer) => f(typeof d === 'string' ? Buffer.from(d) : d)),
    onExit: (f) => void p.onExit(({ exitCode, signal }) => f(signal ? null : exitCode, signal ? (SIGNAL_NAMES.get(signal) ?? `signal ${signal}`) : null)),
  };
}
