// The life of a `flotilla up` cluster outside its own process: starting it
// in the background (--detach), stopping it (`flotilla down`), and clearing
// what a killed `up` left running before a new one reuses the ports.
import { spawn } from 'node:child_process';
import { existsSync, openSync, readFileSync, readdirSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

const BIN = resolve(fileURLToPath(new URL('../bin/flotilla.js', import.meta.url)));

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

function read(file: string): string {
  try {
    return readFileSync(file, 'utf8');
  } catch {
    return '';
  }
}

/**
 * Processes that belong to the cluster in `dir` and outlived their `up`: a
 * process whose command line names the directory (nats-server's config, a
 * server's data dir) or whose FLOTILLA_PARENT_PID is the recorded `up`.
 */
export function leftovers(dir: string): number[] {
  const abs = resolve(dir);
  const recorded = Number(read(join(abs, 'up.pid'))) || (JSON.parse(read(join(abs, 'cluster.json')) || '{}') as { up?: number }).up || 0;
  const out: number[] = [];
  for (const name of readdirSync('/proc')) {
    const pid = Number(name);
    if (!Number.isInteger(pid) || pid === process.pid || pid === process.ppid) continue;
    const cmdline = read(`/proc/${pid}/cmdline`).split('\0');
    const env = read(`/proc/${pid}/environ`).split('\0');
    const ours = cmdline.some((a) => a === abs || a.startsWith(`${abs}/`)) || (recorded > 0 && env.includes(`FLOTILLA_PARENT_PID=${recorded}`));
    if (ours) out.push(pid);
  }
  return out;
}

/** SIGTERM, then SIGKILL after `graceMs` for those still running. */
async function terminate(pids: number[], graceMs = 5000): Promise<void> {
  for (const pid of pids) {
    try {
      process.kill(pid, 'SIGTERM');
    } catch {
      /* gone */
    }
  }
  const deadline = Date.now() + graceMs;
  while (pids.some(isAlive) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
  for (const pid of pids.filter(isAlive)) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      /* gone */
    }
  }
}

/** Stops what a killed `up` on `dir` left behind (nats-server, mostly: flotilla children exit with their `up`). */
export async function stopLeftovers(dir: string): Promise<void> {
  const pids = leftovers(dir);
  if (!pids.length) return;
  process.stderr.write(`flotilla up: stopping ${pids.length} process(es) a previous run on ${resolve(dir)} left running (${pids.join(', ')})\n`);
  await terminate(pids);
}

/** `flotilla up --detach`: runs `up` in the background, waits until it says it is up, prints that and returns. */
export async function detach(dir: string, argv: string[]): Promise<void> {
  const log = join(dir, 'logs', 'up.log');
  const offset = read(log).length;
  const fd = openSync(log, 'a');
  const child = spawn(process.execPath, [BIN, 'up', ...argv], { detached: true, stdio: ['ignore', fd, fd] });
  child.unref();
  const deadline = Date.now() + 120_000;
  for (;;) {
    const text = read(log).slice(offset);
    const at = text.indexOf('Flotilla is up');
    if (at >= 0) {
      process.stdout.write(`${text.slice(at)}\n(running in the background as pid ${child.pid}; its log: ${log})\n`);
      return;
    }
    if (!isAlive(child.pid!) || Date.now() > deadline) {
      throw new Error(`the cluster did not come up; see ${log}:\n${text.split('\n').slice(-20).join('\n')}`);
    }
    await new Promise((r) => setTimeout(r, 200));
  }
}

/** `flotilla down [--dir DIR]`: stops the cluster `up` runs from DIR (and anything it left behind). */
export async function down(argv: string[]): Promise<void> {
  const { values } = parseArgs({ args: argv, options: { dir: { type: 'string', default: '.flotilla' } }, strict: true });
  const dir = resolve(values.dir);
  if (!existsSync(dir)) throw new Error(`no cluster directory ${dir}`);
  const pid = Number(read(join(dir, 'up.pid')));
  if (pid && isAlive(pid)) {
    process.kill(pid, 'SIGTERM');
    const deadline = Date.now() + 20_000;
    while (isAlive(pid) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
    if (isAlive(pid)) process.kill(pid, 'SIGKILL');
  }
  await stopLeftovers(dir);
  process.stdout.write(`stopped the cluster in ${dir}\n`);
}

export { down as main };
