// Container logs. A container writes its stdout/stderr straight into its log
// file (so it keeps writing while the agent restarts); the agent notes when
// it sees each new stretch of bytes (polled every 200 ms, kept beside the log
// as `<n>.log.times`), which gives lines their timestamps for `timestamps`
// and `sinceSeconds` — to within the poll interval while the agent runs, and
// the time it came back for what was written while it was down.
//
// The agent serves them like the kubelet's /containerLogs endpoint, which the
// API server proxies `pods/NAME/log` to.
import { appendFileSync, closeSync, copyFileSync, existsSync, openSync, readFileSync, readSync, readdirSync, rmSync, statSync, truncateSync } from 'node:fs';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { basename, dirname, join } from 'node:path';

interface Watched {
  size: number;
  /** [end offset, ms]: the bytes up to `end` (from the previous mark) were first seen at `ms`. */
  marks: [number, number][];
}

export interface LogRotation {
  /** Rotate a container's log once it is larger than this (the kubelet's containerLogMaxSize, 10Mi). */
  maxBytes: number;
  /** Keep at most this many files per container run, the current one included (containerLogMaxFiles, 5). */
  maxFiles: number;
}

export class LogObserver {
  private readonly files = new Map<string, Watched>();
  private timer?: NodeJS.Timeout;
  rotations = 0;

  constructor(private readonly rotation: LogRotation = { maxBytes: 10 * 2 ** 20, maxFiles: 5 }) {}

  watch(file: string): void {
    if (this.files.has(file)) return;
    this.files.set(file, { size: 0, marks: readMarks(file) });
    const w = this.files.get(file)!;
    w.size = w.marks.length ? w.marks[w.marks.length - 1][0] : 0;
    this.poll(file);
    if (!this.timer) {
      this.timer = setInterval(() => {
        for (const f of this.files.keys()) this.poll(f);
      }, 200);
      this.timer.unref();
    }
  }

  /** A last look, then no more polling (the container exited). */
  unwatch(file: string): void {
    this.poll(file);
    this.files.delete(file);
    if (!this.files.size) {
      clearInterval(this.timer);
      this.timer = undefined;
    }
  }

  stop(): void {
    clearInterval(this.timer);
    this.timer = undefined;
  }

  /**
   * Size-based rotation of a file the container keeps open (O_APPEND): its
   * content is copied to `<file>.<n>` and the file truncated (logrotate's
   * copytruncate; bytes written between the copy and the truncation are
   * lost), the oldest rotated files beyond maxFiles removed. Only the current
   * file is served, as the kubelet serves only the latest one.
   */
  private rotate(file: string, w: Watched): void {
    try {
      const dir = dirname(file);
      const base = basename(file);
      const rotated = readdirSync(dir).filter((n) => n.startsWith(`${base}.`) && /\.\d+$/.test(n)).map((n) => Number(n.slice(base.length + 1))).sort((a, b) => a - b);
      const next = (rotated[rotated.length - 1] ?? 0) + 1;
      copyFileSync(file, `${file}.${next}`);
      truncateSync(file, 0);
      rmSync(`${file}.times`, { force: true });
      const all = [...rotated, next];
      for (const n of all.slice(0, Math.max(0, all.length - (this.rotation.maxFiles - 1)))) rmSync(`${file}.${n}`, { force: true });
      w.size = 0;
      w.marks = [];
      this.rotations++;
    } catch {
      /* the pod directory is being removed */
    }
  }

  private poll(file: string): void {
    const w = this.files.get(file);
    if (!w) return;
    let size: number;
    try {
      size = statSync(file).size;
    } catch {
      return;
    }
    if (size > this.rotation.maxBytes) {
      this.rotate(file, w);
      return;
    }
    if (size <= w.size) return;
    const now = Date.now();
    w.marks.push([size, now]);
    w.size = size;
    try {
      appendFileSync(`${file}.times`, `${size} ${now}\n`);
    } catch {
      /* the pod directory is being removed */
    }
  }
}

function readMarks(file: string): [number, number][] {
  try {
    return readFileSync(`${file}.times`, 'utf8').split('\n').filter(Boolean).map((l) => l.split(' ').map(Number) as [number, number]);
  } catch {
    return [];
  }
}

/** The time a byte at `offset` was first seen (now, when not seen yet). */
function timeAt(marks: [number, number][], offset: number): number {
  let lo = 0;
  let hi = marks.length;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (marks[mid][0] > offset) hi = mid;
    else lo = mid + 1;
  }
  return lo < marks.length ? marks[lo][1] : Date.now();
}

export interface LogQuery {
  follow: boolean;
  previous: boolean;
  timestamps: boolean;
  tailLines?: number;
  sinceSeconds?: number;
  sinceTime?: number;
  limitBytes?: number;
}

export class LogRequestError extends Error {
  constructor(readonly code: number, message: string) {
    super(message);
  }
}

/** Parses the kubelet's log query (the same names as PodLogOptions). */
export function parseLogQuery(q: URLSearchParams): LogQuery {
  const bool = (n: string) => ['1', 't', 'true', 'True', 'TRUE'].includes(q.get(n) ?? '');
  const int = (n: string, min: number): number | undefined => {
    const v = q.get(n);
    if (v === null || v === '') return undefined;
    const x = Number(v);
    if (!Number.isInteger(x) || x < min) throw new LogRequestError(400, `invalid ${n} "${v}"`);
    return x;
  };
  const sinceTime = q.get('sinceTime');
  const out: LogQuery = {
    follow: bool('follow'), previous: bool('previous'), timestamps: bool('timestamps'),
    tailLines: int('tailLines', 0), sinceSeconds: int('sinceSeconds', 1), limitBytes: int('limitBytes', 1),
    sinceTime: sinceTime ? Date.parse(sinceTime) : undefined,
  };
  if (out.sinceTime !== undefined && Number.isNaN(out.sinceTime)) throw new LogRequestError(400, `invalid sinceTime "${sinceTime}"`);
  if (out.sinceSeconds !== undefined && out.sinceTime !== undefined) throw new LogRequestError(400, 'at most one of sinceTime or sinceSeconds may be specified');
  return out;
}

/** The log files of a container, oldest run first ("<restartCount>.log"). */
export function containerLogFiles(dir: string): string[] {
  let names: string[] = [];
  try {
    names = readdirSync(dir).filter((n) => /^\d+\.log$/.test(n));
  } catch {
    return [];
  }
  return names.sort((a, b) => parseInt(a, 10) - parseInt(b, 10)).map((n) => join(dir, n));
}

const stamp = (ms: number) => new Date(ms).toISOString().replace(/\.(\d{3})Z$/, '.$1000000Z');

/** Splits bytes into lines (each with its newline, the last maybe without) and their start offsets. */
function lines(buf: Buffer, base: number): { text: Buffer; offset: number }[] {
  const out: { text: Buffer; offset: number }[] = [];
  let start = 0;
  for (let i = 0; i < buf.length; i++) {
    if (buf[i] === 10) {
      out.push({ text: buf.subarray(start, i + 1), offset: base + start });
      start = i + 1;
    }
  }
  if (start < buf.length) out.push({ text: buf.subarray(start), offset: base + start });
  return out;
}

function readFrom(file: string, from: number): Buffer {
  const size = statSync(file).size;
  if (size <= from) return Buffer.alloc(0);
  const fd = openSync(file, 'r');
  try {
    const buf = Buffer.alloc(size - from);
    const n = readSync(fd, buf, 0, buf.length, from);
    return buf.subarray(0, n);
  } finally {
    closeSync(fd);
  }
}

/**
 * Writes a container's log to `res` as the kubelet does: the whole file, or
 * its last tailLines, from sinceSeconds/sinceTime on, with timestamps,
 * capped at limitBytes; with follow, then what is appended until the
 * container's run ends (`running()` false) or the client goes.
 */
export async function serveLogFile(req: IncomingMessage, res: ServerResponse, file: string, q: LogQuery, running: () => boolean): Promise<void> {
  if (!existsSync(file)) throw new LogRequestError(404, 'the log file is gone');
  const marks = () => readMarks(file);
  const since = q.sinceTime ?? (q.sinceSeconds !== undefined ? Date.now() - q.sinceSeconds * 1000 : undefined);
  let budget = q.limitBytes ?? Infinity;
  let closed = false;
  req.on('close', () => { closed = true; });
  res.writeHead(200, { 'content-type': 'text/plain', 'transfer-encoding': 'chunked' });
  const emit = (ls: { text: Buffer; offset: number }[], m: [number, number][]) => {
    for (const l of ls) {
      if (budget <= 0) return;
      const t = timeAt(m, l.offset);
      if (since !== undefined && t < since) continue;
      let chunk = q.timestamps ? Buffer.concat([Buffer.from(`${stamp(t)} `), l.text]) : l.text;
      if (chunk.length > budget) chunk = chunk.subarray(0, budget);
      budget -= chunk.length;
      res.write(chunk);
    }
  };
  let buf = readFrom(file, 0);
  // Without follow a partial last line is sent as it is; with follow it waits for its newline.
  let complete = q.follow ? buf.subarray(0, buf.lastIndexOf(10) + 1) : buf;
  let offset = complete.length;
  let all = lines(complete, 0);
  if (q.tailLines !== undefined) all = q.tailLines === 0 ? [] : all.slice(-q.tailLines);
  emit(all, marks());
  while (q.follow && !closed && budget > 0) {
    await new Promise((r) => setTimeout(r, 200));
    const alive = running();
    // Rotated (copied and truncated) meanwhile: go on from the start of the fresh file.
    if (statSync(file).size < offset) offset = 0;
    buf = readFrom(file, offset);
    complete = alive ? buf.subarray(0, buf.lastIndexOf(10) + 1) : buf;
    if (complete.length) {
      emit(lines(complete, offset), marks());
      offset += complete.length;
    }
    if (!alive) break;
  }
  res.end();
}
