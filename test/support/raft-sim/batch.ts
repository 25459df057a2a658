// Runs many seeds, spread over worker threads (one run is single-threaded
// and independent of the others, so this changes nothing but wall time).
// A worker stops at its first `stopAfter` failures; since each one takes its
// seeds in increasing order, the smallest failing seed is always found.
import { availableParallelism } from 'node:os';
import { Worker } from 'node:worker_threads';
import type { Profile } from './options.ts';
import { runSeed } from '../raft-sim.ts';
import { SimFailure } from './violation.ts';
import type { SimStats } from './simulation.ts';

export interface BatchOptions {
  profile: Profile;
  steps: number;
  /** Worker threads; 1 runs in this thread. */
  workers?: number;
  /** Each worker stops after this many failures. */
  stopAfter?: number;
}

export interface FailureReport {
  seed: number;
  kind: string;
  message: string;
}

export interface BatchReport {
  /** Seeds that ran to the end or failed (a worker that stopped early skips the rest). */
  ran: number;
  failures: FailureReport[];
  totals: Partial<Record<keyof SimStats, number>>;
}

// A worker starts as plain JavaScript: it registers tsx, then loads the TypeScript body.
const WORKER_BOOT = new URL(
  `data:text/javascript,${encodeURIComponent(
    `import { register } from ${JSON.stringify(import.meta.resolve('tsx/esm/api'))};\n` +
      `register();\n` +
      `await import(${JSON.stringify(new URL('./batch-worker.ts', import.meta.url).href)});\n`,
  )}`,
);

export function defaultWorkers(): number {
  return Math.max(1, Math.min(2, availableParallelism()));
}

/** Runs `seeds` in this thread. */
export function runBatchHere(seeds: number[], o: BatchOptions): BatchReport {
  const report: BatchReport = { ran: 0, failures: [], totals: {} };
  for (const seed of seeds) {
    report.ran++;
    try {
      const r = runSeed(seed, { profile: o.profile, steps: o.steps });
      for (const [k, v] of Object.entries(r.stats) as [keyof SimStats, number][]) report.totals[k] = (report.totals[k] ?? 0) + v;
    } catch (e) {
      if (!(e instanceof SimFailure)) throw e;
      report.failures.push({ seed, kind: e.kind, message: e.message });
      if (o.stopAfter && report.failures.length >= o.stopAfter) break;
    }
  }
  return report;
}

export async function runBatch(seeds: number[], o: BatchOptions): Promise<BatchReport> {
  const workers = Math.min(o.workers ?? defaultWorkers(), seeds.length);
  if (workers <= 1) return runBatchHere(seeds, o);
  const shares = Array.from({ length: workers }, (_, k) => seeds.filter((_, i) => i % workers === k));
  const reports = await Promise.all(shares.map((share) => inWorker(share, o)));
  const out: BatchReport = { ran: 0, failures: [], totals: {} };
  for (const r of reports) {
    out.ran += r.ran;
    out.failures.push(...r.failures);
    for (const [k, v] of Object.entries(r.totals) as [keyof SimStats, number][]) out.totals[k] = (out.totals[k] ?? 0) + v;
  }
  out.failures.sort((a, b) => a.seed - b.seed);
  return out;
}

function inWorker(seeds: number[], o: BatchOptions): Promise<BatchReport> {
  return new Promise((resolve, reject) => {
    const w = new Worker(WORKER_BOOT, { workerData: { seeds, options: { ...o, workers: 1 } } });
    let report: BatchReport | undefined;
    w.once('message', (r: BatchReport) => (report = r));
    w.once('error', reject);
    w.once('exit', (code) => (report ? resolve(report) : reject(new Error(`raft-sim worker exited with code ${code}`))));
  });
}
