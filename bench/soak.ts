// `npm run bench -- soak [--seconds=600]`: memory under a steady stream of
// writes to a fixed amount of live data. Three `flotilla server` processes,
// 200 ConfigMaps of 10 KB (2 MB live), 32 clients replacing their data (merge
// patch, 10 KB each) for the duration. The RSS of each server is sampled
// every few seconds: memory should follow the data, not the number of writes,
// so it must level off. BENCH_SOAK_SECONDS / --seconds=N sets the duration,
// BENCH_SOAK_ARGS extra server flags (e.g. "--watch-history-bytes=1000000").
import { readFileSync } from 'node:fs';
import { Pool, request } from 'undici';
import { FlotillaCluster } from '../harness/flotilla-cluster.ts';
import { type Section, fmt } from './report.ts';

const argSeconds = process.argv.find((a) => a.startsWith('--seconds='))?.slice('--seconds='.length);
const SECONDS = Number(argSeconds ?? process.env.BENCH_SOAK_SECONDS ?? 240);
const OBJECTS = 200;
const SIZE = 10 * 1024;
const CLIENTS = 32;
const SAMPLE_MS = 5000;
const EXTRA_ARGS = (process.env.BENCH_SOAK_ARGS ?? '').split(/\s+/).filter(Boolean);

function rssMiB(pid: number): number {
  try {
    const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) / 1024 : NaN;
  } catch {
    return NaN;
  }
}

/** A 10 KB value that differs per write (so no two versions share text). */
function payload(i: number): string {
  const head = `${i}-`;
  return head + 'x'.repeat(SIZE - head.length);
}

async function metric(url: string, name: string): Promise<number> {
  try {
    const r = await request(`${url}/metrics`, { headersTimeout: 5000, bodyTimeout: 5000 });
    const t = await r.body.text();
    const m = new RegExp(`^${name}(?:\\{[^}]*\\})? ([0-9.e+]+)$`, 'm').exec(t);
    return m ? Number(m[1]) : NaN;
  } catch {
    return NaN;
  }
}

export async function benchSoak(): Promise<Section> {
  console.log(`soak: starting 3 servers${EXTRA_ARGS.length ? ` (${EXTRA_ARGS.join(' ')})` : ''}; ${SECONDS} s of updates`);
  const c = await FlotillaCluster.start(3, { args: EXTRA_ARGS });
  const lines: string[] = [];
  try {
    const u = c.urls[0];
    const ns = 'soak';
    await (await request(`${u}/api/v1/namespaces`, { method: 'POST', body: JSON.stringify({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: ns } }), headers: { 'content-type': 'application/json' } })).body.dump();
    const names = Array.from({ length: OBJECTS }, (_, i) => `cm-${i}`);
    for (const name of names) {
      const r = await request(`${u}/api/v1/namespaces/${ns}/configmaps`, {
        method: 'POST', headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ apiVersion: 'v1', kind: 'ConfigMap', metadata: { name }, data: { v: payload(0) } }),
      });
      await r.body.dump();
      if (r.statusCode !== 201 && r.statusCode !== 409) throw new Error(`create ${name}: ${r.statusCode}`);
    }
    const pids = c.members.map((m) => m.proc!.pid);
    const samples: { t: number; rss: number[]; heap: number[] }[] = [];
    const t0 = performance.now();
    const sample = async () => {
      const heap = await Promise.all(c.urls.map((x) => metric(x, 'nodejs_heap_size_used_bytes')));
      samples.push({ t: (performance.now() - t0) / 1000, rss: pids.map(rssMiB), heap: heap.map((h) => h / 2 ** 20) });
      const s = samples[samples.length - 1];
      console.log(`t=${s.t.toFixed(0)}s writes=${writes} errors=${errors} RSS ${s.rss.map((x) => x.toFixed(0)).join(' / ')} MiB heap ${s.heap.map((x) => x.toFixed(0)).join(' / ')} MiB`);
    };
    let writes = 0;
    let errors = 0;
    let stop = false;
    await sample();
    const sampler = setInterval(() => void sample(), SAMPLE_MS);
    const pools = c.urls.map((x) => new Pool(x, { connections: Math.ceil(CLIENTS / c.urls.length) + 1 }));
    const workers = Array.from({ length: CLIENTS }, async (_, w) => {
      let i = 0;
      while (!stop) {
        const name = names[(w * 7919 + i * 31) % names.length];
        const pool = pools[w % pools.length];
        try {
          const r = await pool.request({
            path: `/api/v1/namespaces/${ns}/configmaps/${name}`, method: 'PATCH',
            body: JSON.stringify({ data: { v: payload(w * 1_000_000 + i) } }),
            headers: { 'content-type': 'application/merge-patch+json' }, headersTimeout: 30_000,
          });
          await r.body.dump();
          if (r.statusCode === 200) writes++;
          else errors++;
        } catch {
          errors++;
          await new Promise((r) => setTimeout(r, 100));
        }
        i++;
      }
    });
    await new Promise((r) => setTimeout(r, SECONDS * 1000));
    stop = true;
    await Promise.all(workers);
    clearInterval(sampler);
    await sample();
    await Promise.all(pools.map((p) => p.close()));
    const elapsed = (performance.now() - t0) / 1000;

    const start = samples[0].rss;
    const end = samples[samples.length - 1].rss;
    const peak = pids.map((_, k) => Math.max(...samples.map((s) => s.rss[k]).filter(Number.isFinite)));
    // Trend: RSS over the last third of the run against the middle third.
    const third = samples.filter((s) => s.t >= elapsed / 3 && s.t < (2 * elapsed) / 3);
    const last = samples.filter((s) => s.t >= (2 * elapsed) / 3);
    const avg = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / Math.max(1, xs.length);
    const trend = pids.map((_, k) => avg(last.map((s) => s.rss[k])) - avg(third.map((s) => s.rss[k])));
    const f = (xs: number[]) => xs.map((x) => x.toFixed(0)).join(' / ');
    console.log(`soak: ${writes} updates in ${elapsed.toFixed(0)} s; RSS start ${f(start)}, peak ${f(peak)}, end ${f(end)} MiB; last third minus middle third ${f(trend)} MiB`);
    const every = Math.max(1, Math.round(samples.length / 12));
    lines.push(
      `Three \`flotilla server\` processes, ${OBJECTS} ConfigMaps of 10 KB (${(OBJECTS * SIZE / 1e6).toFixed(0)} MB live), ${CLIENTS} clients replacing their data (merge patch) for ${SECONDS} s${EXTRA_ARGS.length ? `; server flags \`${EXTRA_ARGS.join(' ')}\`` : ''}. RSS sampled every ${SAMPLE_MS / 1000} s (MiB, servers s1 / s2 / s3). The machine is shared: figures are noisy.`,
      '',
      '| measurement | result | goal |',
      '|---|---|---|',
      `| updates | ${fmt(writes)} in ${elapsed.toFixed(0)} s (${fmt(writes / elapsed)}/s), ${errors} errors | |`,
      `| RSS at start | ${f(start)} | |`,
      `| RSS peak | ${f(peak)} | ≤ 400 MB, level |`,
      `| RSS at end | ${f(end)} | |`,
      `| RSS trend: mean of the last third minus the middle third | ${trend.map((x) => `${x >= 0 ? '+' : ''}${x.toFixed(0)}`).join(' / ')} | ~0 |`,
      '',
      '| t (s) | RSS (MiB) | JS heap used (MiB) |',
      '|---|---|---|',
      ...samples.filter((_, i) => i % every === 0 || i === samples.length - 1).map((s) => `| ${s.t.toFixed(0)} | ${f(s.rss)} | ${f(s.heap)} |`),
    );
  } finally {
    await c.stop();
  }
  return { name: 'soak', title: 'Soak: memory under steady updates of fixed live data', body: lines.join('\n') };
}
