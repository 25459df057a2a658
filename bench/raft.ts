// `npm run bench -- raft`: the Raft library (3 raft-kv members, durable
// writes) against a 3-member etcd on the same machine, same client, same
// workload: 256-byte puts at concurrency 1/16/64/256, and leader failover.
// `npm run bench -- raft --peer-tls`: instead, raft-kv with mutual TLS between
// the members side by side with plain TCP, in the same run (section raft-tls).
import { randomBytes } from 'node:crypto';
import { cpus, loadavg } from 'node:os';
import type { Pool } from 'undici';
import { KvCluster } from '../harness/kv-cluster.ts';
import { sleep, waitFor } from '../harness/procs.ts';
import { EtcdCluster, ensureEtcd } from './etcd.ts';
import { type LoadResult, type Target, percentile, runLoad } from './load.ts';
import { type Section, fmt } from './report.ts';

const VALUE = randomBytes(128).toString('hex'); // 256 bytes
const CONCURRENCY = [1, 16, 64, 256];
const DURATION_MS = Number(process.env.BENCH_SECONDS ?? 5) * 1000;
const FAILOVER_TRIALS = Number(process.env.BENCH_FAILOVERS ?? 10);

function kvTargets(c: KvCluster): Target[] {
  return c.members.map((m) => ({
    origin: `http://${m.http}`,
    async send(pool: Pool, w: number, i: number) {
      const r = await pool.request({ path: `/kv/k${w}-${i % 1000}`, method: 'PUT', body: VALUE, headersTimeout: 10_000 });
      await r.body.dump();
      if (r.statusCode !== 200) throw new Error(String(r.statusCode));
    },
  }));
}

function etcdTargets(c: EtcdCluster): Target[] {
  const value = Buffer.from(VALUE).toString('base64');
  return c.members.map((m) => ({
    origin: `http://${m.client}`,
    async send(pool: Pool, w: number, i: number) {
      const body = `{"key":"${Buffer.from(`k${w}-${i % 1000}`).toString('base64')}","value":"${value}"}`;
      const r = await pool.request({ path: '/v3/kv/put', method: 'POST', body, headersTimeout: 10_000 });
      const text = await r.body.text();
      if (r.statusCode !== 200 || text.includes('"error"')) throw new Error(`${r.statusCode} ${text}`);
    },
  }));
}

interface FailoverSystem {
  leader(exclude?: string[]): Promise<string>;
  members(): string[];
  kill(id: string): Promise<void>;
  restart(id: string): Promise<void>;
  put(id: string, key: string, timeoutMs: number): Promise<void>;
}

/** kill -9 the leader, then time until a write issued after the kill succeeds through a surviving member. */
async function failovers(sys: FailoverSystem, trials: number): Promise<number[]> {
  const times: number[] = [];
  for (let t = 0; t < trials; t++) {
    const leader = await sys.leader();
    const survivors = sys.members().filter((id) => id !== leader);
    const t0 = performance.now();
    await sys.kill(leader);
    let done = -1;
    let n = 0;
    await Promise.all(Array.from({ length: 4 }, async (_, w) => {
      while (done < 0 && performance.now() - t0 < 20_000) {
        const start = performance.now();
        try {
          await sys.put(survivors[(w + n++) % survivors.length], `failover-${t}-${w}-${n}`, 400);
          if (done < 0 && start >= t0) done = performance.now() - t0;
        } catch {
          await sleep(5);
        }
      }
    }));
    times.push(done);
    await sys.restart(leader);
    await sleep(1500);
  }
  return times;
}

function kvFailover(c: KvCluster): FailoverSystem {
  return {
    leader: (ex = []) => c.waitForLeader(ex),
    members: () => c.members.map((m) => m.id),
    kill: (id) => c.kill(id),
    async restart(id) {
      c.startMember(id);
      await waitFor('restarted member', async () => (await c.status(id))?.leader, 30_000);
    },
    async put(id, key, timeoutMs) {
      await c.put(id, key, VALUE, timeoutMs);
    },
  };
}

function etcdFailover(c: EtcdCluster): FailoverSystem {
  return {
    leader: (ex = []) => c.waitForLeader(ex),
    members: () => c.members.map((m) => m.name),
    kill: async (name) => c.members.find((m) => m.name === name)!.proc!.kill('SIGKILL'),
    async restart(name) {
      c.startMember(name);
      await waitFor('restarted etcd member', async () => {
        const m = c.members.find((x) => x.name === name)!;
        try {
          await c.put(m, 'probe', Buffer.from('x'), 1000);
          return true;
        } catch {
          return false;
        }
      }, 30_000);
    },
    async put(name, key, timeoutMs) {
      await c.put(c.members.find((m) => m.name === name)!, key, Buffer.from(VALUE), timeoutMs);
    },
  };
}

/** The highest term any live member reports: a change across a run means an election happened during it. */
async function highestTerm(c: KvCluster): Promise<number> {
  const terms = await Promise.all(c.members.map(async (m) => (await c.status(m.id))?.term ?? 0));
  return Math.max(...terms);
}

/**
 * raft-kv with peer TLS vs plain TCP, same run, same machine: both clusters
 * run at once and the levels alternate (plain, TLS, plain, TLS, ...) so that
 * whatever else the machine does falls on both. Small client counts
 * (BENCH_TLS_CONCURRENCY, default 1,16) and a few failovers, so the whole
 * run stays short on a shared machine. Each row shows the best and the
 * median round, and how many rounds saw an election (a starved process on a
 * loaded machine misses heartbeats; that costs its round whatever the wire).
 */
async function benchRaftTls(): Promise<Section> {
  const levels = (process.env.BENCH_TLS_CONCURRENCY ?? '1,16').split(',').map(Number).filter((n) => n > 0);
  const rounds = Number(process.env.BENCH_TLS_ROUNDS ?? 3);
  const trials = Number(process.env.BENCH_FAILOVERS ?? 3);
  const load0 = loadavg()[0]!;
  console.log('raft-kv: starting 3 plain members and 3 peer-TLS members');
  const plain = await KvCluster.start(3);
  const secure = await KvCluster.start(3, { peerTls: true });
  const rows: string[][] = [];
  try {
    for (const c of levels) {
      const runs = { plain: [] as LoadResult[], tls: [] as LoadResult[] };
      const elections = { plain: 0, tls: 0 };
      for (let i = 0; i < rounds; i++) {
        for (const [name, cl] of [['plain', plain], ['tls', secure]] as const) {
          const term = await highestTerm(cl);
          const r = await runLoad(kvTargets(cl), c, DURATION_MS);
          const elected = (await highestTerm(cl)) !== term;
          if (elected) elections[name]++;
          console.log(`raft-kv ${name.padEnd(5)} c=${c} round ${i + 1}: ${fmt(r.throughput)} puts/s p50 ${r.p50.toFixed(2)} ms p99 ${r.p99.toFixed(2)} ms errors ${r.errors}${elected ? ' (an election happened)' : ''}`);
          runs[name].push(r);
        }
      }
      const byThroughput = (xs: LoadResult[]) => [...xs].sort((a, b) => b.throughput - a.throughput);
      const best = (xs: LoadResult[]) => byThroughput(xs)[0]!;
      const median = (xs: LoadResult[]) => byThroughput(xs)[Math.floor(xs.length / 2)]!;
      const side = (xs: LoadResult[], name: 'plain' | 'tls') => {
        const b = best(xs);
        return [fmt(b.throughput), fmt(median(xs).throughput), b.p50.toFixed(2), b.p99.toFixed(2), String(elections[name])];
      };
      rows.push([String(c), ...side(runs.plain, 'plain'), ...side(runs.tls, 'tls'),
        `${((best(runs.tls).throughput / best(runs.plain).throughput - 1) * 100).toFixed(1)} %`]);
    }
    console.log('raft-kv: failover trials, plain then TLS');
    const fPlain = await failovers(kvFailover(plain), trials);
    const fTls = await failovers(kvFailover(secure), trials);
    const load1 = loadavg()[0]!;
    const ms = (xs: number[]) => xs.map((x) => (x < 0 ? 'none in 20 s' : x.toFixed(0))).join(', ');
    console.log(`failover ms: plain ${ms(fPlain)}; tls ${ms(fTls)}`);
    return {
      name: 'raft-tls',
      title: 'Raft peer TLS: raft-kv (3 members) with mutual TLS between members vs plain TCP, 256-byte durable puts',
      body: [
        `\`npm run bench -- raft --peer-tls\`. Both clusters run at once; each level runs ${DURATION_MS / 1000} s after a 1 s warm-up, ` +
          `${rounds} rounds alternating plain and TLS. Best and median round by throughput; p50/p99 (ms) of the best round; ` +
          '"elections": rounds during which the cluster held an election. Clients spread over all three members. ' +
          `The machine is shared with other work (${cpus().length} cores; 1-minute load average ${load0.toFixed(1)} at the start, ${load1.toFixed(1)} at the end): ` +
          'compare the columns with each other, not with other sections.',
        '',
        '| concurrency | plain best puts/s | median | p50 | p99 | elections | TLS best puts/s | median | p50 | p99 | elections | TLS vs plain (best) |',
        '|---|---|---|---|---|---|---|---|---|---|---|---|',
        ...rows.map((r) => `| ${r.join(' | ')} |`),
        '',
        `Leader failover (kill -9 the leader → first successful write issued after the kill; the restarted member reconnects with a new handshake), ${trials} trials each:`,
        `plain ${ms(fPlain)} ms; TLS ${ms(fTls)} ms.`,
      ].join('\n'),
    };
  } finally {
    await Promise.all([plain.stop(), secure.stop()]);
  }
}

export async function benchRaft(): Promise<Section> {
  if (process.argv.includes('--peer-tls')) return benchRaftTls();
  const rows: string[][] = [];
  const etcdBin = ensureEtcd();
  const results: { c: number; kv: LoadResult; etcd?: LoadResult }[] = [];

  console.log('raft-kv: starting 3 members');
  const kv = await KvCluster.start(3);
  for (const c of CONCURRENCY) {
    const r = await runLoad(kvTargets(kv), c, DURATION_MS);
    console.log(`raft-kv  c=${c}: ${fmt(r.throughput)} puts/s p50 ${r.p50.toFixed(2)} ms p99 ${r.p99.toFixed(2)} ms errors ${r.errors}`);
    results.push({ c, kv: r });
  }
  console.log('raft-kv: failover trials');
  const kvFail = await failovers(kvFailover(kv), FAILOVER_TRIALS);
  console.log(`raft-kv failover ms: ${kvFail.map((x) => x.toFixed(0)).join(' ')}`);
  await kv.stop();

  let etcdFail: number[] | undefined;
  if (etcdBin) {
    console.log('etcd: starting 3 members');
    const etcd = await EtcdCluster.start(etcdBin);
    for (const res of results) {
      const r = await runLoad(etcdTargets(etcd), res.c, DURATION_MS);
      console.log(`etcd     c=${res.c}: ${fmt(r.throughput)} puts/s p50 ${r.p50.toFixed(2)} ms p99 ${r.p99.toFixed(2)} ms errors ${r.errors}`);
      res.etcd = r;
    }
    console.log('etcd: failover trials');
    etcdFail = await failovers(etcdFailover(etcd), FAILOVER_TRIALS);
    console.log(`etcd failover ms: ${etcdFail.map((x) => x.toFixed(0)).join(' ')}`);
    await etcd.stop();
  } else {
    console.log('etcd-server is not installed and could not be installed: etcd columns left empty');
  }

  for (const { c, kv: k, etcd: e } of results) {
    rows.push([
      String(c), fmt(k.throughput), k.p50.toFixed(2), k.p99.toFixed(2),
      e ? fmt(e.throughput) : '-', e ? e.p50.toFixed(2) : '-', e ? e.p99.toFixed(2) : '-',
      e ? `${(k.throughput / e.throughput).toFixed(2)}×` : '-', e ? `${(k.p99 / e.p99).toFixed(2)}×` : '-',
    ]);
  }
  const sorted = (xs: number[]) => [...xs].sort((a, b) => a - b);
  const fo = (xs: number[] | undefined) => {
    if (!xs) return ['-', '-', '-'];
    const s = sorted(xs.filter((x) => x >= 0));
    const failed = xs.filter((x) => x < 0).length;
    return [percentile(s, 50).toFixed(0), s[s.length - 1]?.toFixed(0) ?? '-', failed ? `${failed} trials found no leader in 20 s` : ''];
  };
  const kvFo = fo(kvFail);
  const etFo = fo(etcdFail);
  return {
    name: 'raft',
    title: 'Raft library: raft-kv (3 members) vs etcd 3.4 (3 members), 256-byte durable puts',
    body: [
      `Each level runs ${DURATION_MS / 1000} s after a 1 s warm-up; clients spread over all three members (followers forward). ` +
        'Latency in ms. Ratios are raft-kv / etcd (throughput: higher is better; p99: lower is better).',
      '',
      '| concurrency | raft-kv puts/s | p50 | p99 | etcd puts/s | p50 | p99 | throughput ratio | p99 ratio |',
      '|---|---|---|---|---|---|---|---|---|',
      ...rows.map((r) => `| ${r.join(' | ')} |`),
      '',
      `Leader failover (kill -9 the leader → first successful write issued after the kill), ${FAILOVER_TRIALS} trials:`,
      '',
      '| system | median ms | max ms | note |',
      '|---|---|---|---|',
      `| raft-kv | ${kvFo.join(' | ')} |`,
      `| etcd | ${etFo.join(' | ')} |`,
      '',
      `raft-kv trials (ms): ${kvFail.map((x) => x.toFixed(0)).join(', ')}`,
      etcdFail ? `etcd trials (ms): ${etcdFail.map((x) => x.toFixed(0)).join(', ')}` : '',
    ].join('\n'),
  };
}
