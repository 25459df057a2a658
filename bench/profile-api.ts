// CPU profiles of the three API servers under one load (not part of
// `npm run bench`): node bench/profile-api.ts create|list [DIR]
//   create: 64 clients creating ConfigMaps through all servers for SECS (6) seconds
//   list:   10,000 pods created, then 30 LISTs of them from the first server
// Each server writes DIR/<pid>.cpuprofile when it exits (bench/cpu-profile-hook.mjs);
// the servers are stopped with SIGTERM so that they do.
import { mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { Pool, request } from 'undici';
import { FlotillaCluster } from '../harness/flotilla-cluster.ts';
import { ROOT } from '../harness/procs.ts';
import { runLoad } from './load.ts';

const mode = process.argv[2] ?? 'create';
if (mode !== 'create' && mode !== 'list') {
  console.error('usage: node --import=tsx bench/profile-api.ts create|list [DIR]');
  process.exit(2);
}
const dir = resolve(process.argv[3] ?? join(tmpdir(), `flotilla-profile-${mode}-${Date.now()}`));
mkdirSync(dir, { recursive: true });
process.env.FLOTILLA_PROFILE_DIR = dir;
process.env.NODE_OPTIONS = `${process.env.NODE_OPTIONS ?? ''} --import=${join(ROOT, 'bench', 'cpu-profile-hook.mjs')}`.trim();

const c = await FlotillaCluster.start(3, {});
const u = c.urls[0];
for (const ns of ['bench', 'pods']) {
  await (await request(`${u}/api/v1/namespaces`, { method: 'POST', body: JSON.stringify({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: ns } }), headers: { 'content-type': 'application/json' } })).body.dump();
}
const cm = (name: string) => JSON.stringify({ apiVersion: 'v1', kind: 'ConfigMap', metadata: { name }, data: { v: 'v' } });
const pod = (name: string) => JSON.stringify({ apiVersion: 'v1', kind: 'Pod', metadata: { name, labels: { app: 'bench' } }, spec: { containers: [{ name: 'c', image: 'busybox:1.36', command: ['sleep', '3600'] }] } });
if (mode === 'create') {
  const targets = c.urls.map((origin, s) => ({
    origin,
    async send(pool: Pool, w: number, i: number) {
      const r = await pool.request({ path: '/api/v1/namespaces/bench/configmaps', method: 'POST', body: cm(`c-${s}-${w}-${i}`), headers: { 'content-type': 'application/json' } });
      await r.body.dump();
      if (r.statusCode !== 201) throw new Error(String(r.statusCode));
    },
  }));
  const t = await runLoad(targets, 64, Number(process.env.SECS ?? 6) * 1000);
  console.log(`create c=64: ${t.throughput.toFixed(0)}/s p50 ${t.p50.toFixed(1)} ms p99 ${t.p99.toFixed(1)} ms`);
} else {
  const pools = c.urls.map((x) => new Pool(x, { connections: 32 }));
  let next = 0;
  await Promise.all(Array.from({ length: 96 }, async (_, w) => {
    for (;;) {
      const i = next++;
      if (i >= 10_000) return;
      const r = await pools[w % 3].request({ path: '/api/v1/namespaces/pods/pods', method: 'POST', body: pod(`p-${i}`), headers: { 'content-type': 'application/json' } });
      await r.body.dump();
    }
  }));
  await Promise.all(pools.map((p) => p.close()));
  const lat: number[] = [];
  for (let i = 0; i < 30; i++) {
    const t0 = performance.now();
    const r = await request(`${u}/api/v1/namespaces/pods/pods`);
    await r.body.arrayBuffer();
    lat.push(performance.now() - t0);
  }
  lat.sort((a, b) => a - b);
  console.log(`LIST 10,000 pods from s1: p50 ${lat[15].toFixed(1)} ms, min ${lat[0].toFixed(1)} ms`);
}
console.log(`leader ${await c.leader()}; profiles: ${c.members.map((m) => `${m.id} ${dir}/${m.proc!.pid}.cpuprofile`).join(', ')}`);
for (const m of c.members) process.kill(m.proc!.pid, 'SIGTERM');
for (const m of c.members) {
  for (let i = 0; i < 100; i++) {
    try {
      process.kill(m.proc!.pid, 0);
    } catch {
      break;
    }
    await new Promise((r) => setTimeout(r, 100));
  }
}
await c.stop();
process.exit(0);
