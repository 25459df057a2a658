// A closed-loop load generator: `concurrency` workers each send one request
// at a time for a fixed duration; latencies go into a sorted sample.
import { Pool } from 'undici';

export interface LoadResult {
  ops: number;
  errors: number;
  seconds: number;
  throughput: number;
  p50: number;
  p99: number;
}

export interface Target {
  origin: string;
  /** Sends one request through the pool; resolves when it succeeded, rejects otherwise. */
  send(pool: Pool, worker: number, i: number): Promise<void>;
}

export function percentile(sorted: number[], p: number): number {
  if (!sorted.length) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))];
}

export async function runLoad(targets: Target[], concurrency: number, durationMs: number, warmupMs = 1000): Promise<LoadResult> {
  const pools = targets.map((t) => new Pool(t.origin, { connections: Math.ceil(concurrency / targets.length) + 1, pipelining: 1 }));
  const lat: number[] = [];
  let errors = 0;
  let measuring = false;
  let stop = false;
  const workers = Array.from({ length: concurrency }, async (_, w) => {
    const ti = w % targets.length;
    let i = 0;
    while (!stop) {
      const t0 = performance.now();
      try {
        await targets[ti].send(pools[ti], w, i++);
        if (measuring) lat.push(performance.now() - t0);
      } catch {
        if (measuring) errors++;
      }
    }
  });
  await new Promise((r) => setTimeout(r, warmupMs));
  measuring = true;
  const start = performance.now();
  await new Promise((r) => setTimeout(r, durationMs));
  measuring = false;
  const seconds = (performance.now() - start) / 1000;
  stop = true;
  await Promise.all(workers);
  await Promise.all(pools.map((p) => p.close()));
  lat.sort((a, b) => a - b);
  return { ops: lat.length, errors, seconds, throughput: lat.length / seconds, p50: percentile(lat, 50), p99: percentile(lat, 99) };
}

/**
 * An open-loop load at a fixed rate: requests start on schedule whatever the
 * latency (so a slow server shows up as latency, not as a lower rate).
 */
export async function runRate(targets: Target[], ratePerSec: number, durationMs: number, maxInFlight = 2000): Promise<LoadResult & { offered: number; skipped: number }> {
  const pools = targets.map((t) => new Pool(t.origin, { connections: 64, pipelining: 1 }));
  const lat: number[] = [];
  let errors = 0;
  let skipped = 0;
  let inFlight = 0;
  const pending: Promise<void>[] = [];
  const start = performance.now();
  let i = 0;
  while (performance.now() - start < durationMs) {
    const due = start + (i * 1000) / ratePerSec;
    const wait = due - performance.now();
    if (wait > 1) await new Promise((r) => setTimeout(r, wait));
    const n = i++;
    if (inFlight >= maxInFlight) {
      skipped++;
      continue;
    }
    const ti = n % targets.length;
    inFlight++;
    const t0 = performance.now();
    pending.push(targets[ti].send(pools[ti], 0, n).then(
      () => { lat.push(performance.now() - t0); },
      () => { errors++; },
    ).finally(() => { inFlight--; }));
  }
  await Promise.all(pending);
  const seconds = (performance.now() - start) / 1000;
  await Promise.all(pools.map((p) => p.close()));
  lat.sort((a, b) => a - b);
  return { ops: lat.length, errors, seconds, throughput: lat.length / seconds, p50: percentile(lat, 50), p99: percentile(lat, 99), offered: i, skipped };
}
