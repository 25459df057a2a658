// The checkers that run after the faults stop: durability (no acknowledged
// write lost, identical applied logs), the event stream (exactly one message
// per committed write, in order, matching what the API acknowledged) and
// watches (ordered, unique, gap-free, resumable).
import { connect } from 'nats';
import { request } from 'undici';
import { STREAM, decodeEvent } from '../api/events.ts';
import type { ChaosCluster } from './cluster.ts';
import { type AckedWrite, NAMESPACE, type WorkloadResult } from './workload.ts';

export interface CheckOutcome {
  anomalies: number;
  details: string[];
}

export interface StreamEvent {
  index: number;
  type: string;
  resource: string;
  namespace: string;
  name: string;
  value: string | null;
  object: string;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function getJson(url: string, timeoutMs = 5000): Promise<any> {
  const r = await request(url, { headersTimeout: timeoutMs, bodyTimeout: timeoutMs });
  const text = await r.body.text();
  if (r.statusCode !== 200) throw new Error(`${url}: ${r.statusCode} ${text.slice(0, 200)}`);
  return JSON.parse(text);
}

/** Heals every fault, brings every founding member back, and waits until all have applied everything committed. */
export async function settle(cluster: ChaosCluster): Promise<void> {
  cluster.heal();
  const s = cluster.servers;
  for (const m of s.members) {
    if (m.proc && m.proc.child.exitCode === null && m.proc.child.signalCode === null) m.proc.child.kill('SIGCONT');
  }
  for (const n of cluster.nats.members) {
    if (!n.proc || n.proc.child.exitCode !== null || n.proc.child.signalCode !== null) cluster.nats.startMember(n.name);
  }
  await cluster.nats.waitUp();
  for (const m of s.members) {
    if (!m.proc || m.proc.child.exitCode !== null || m.proc.child.signalCode !== null) s.startMember(m.id);
  }
  await s.waitReady(s.members.map((m) => m.id), 90_000);
  const deadline = Date.now() + 90_000;
  for (;;) {
    try {
      const st = await Promise.all(s.members.map((m) => getJson(`${m.url}/cluster/status`)));
      const leader = st.find((x) => x.role === 'leader');
      const events = leader?.events;
      if (leader && st.every((x) => x.appliedIndex >= leader.commitIndex) && (!events || events.lagEvents === 0)) return;
    } catch {
      /* not yet */
    }
    if (Date.now() > deadline) throw new Error('the cluster did not settle within 90 s after the faults stopped');
    await sleep(200);
  }
}

/** All members applied identical logs up to the lowest applied index, and each holds every acknowledged write. */
export async function checkDurability(cluster: ChaosCluster, acked: AckedWrite[], startRv: number): Promise<CheckOutcome> {
  const details: string[] = [];
  let anomalies = 0;
  const members = cluster.servers.members;
  const st = await Promise.all(members.map((m) => getJson(`${m.url}/cluster/status`)));
  const lowest = Math.min(...st.map((x) => x.appliedIndex));
  const hashes = await Promise.all(members.map(async (m) => {
    try {
      return (await getJson(`${m.url}/debug/raft/hash?index=${lowest}`)).hash as string;
    } catch {
      return undefined;
    }
  }));
  const known = hashes.filter((h): h is string => !!h);
  if (new Set(known).size > 1) {
    anomalies++;
    details.push(`applied logs differ at index ${lowest}: ${members.map((m, i) => `${m.id}=${hashes[i] ?? '?'}`).join(' ')}`);
  }
  if (known.length < 2) {
    anomalies++;
    details.push(`could not compare applied logs: only ${known.length} member(s) report a hash at index ${lowest}`);
  }
  // Every acknowledged write is on the stream (checkEvents), which the leader
  // publishes from its applied log; equal hash chains at an index past it mean
  // every member applied that same entry. Where a member's watch history
  // still reaches back, also look the write up there directly.
  const missingAll = new Set<string>();
  for (const m of members) {
    const seen = await historyValues(m.url, startRv);
    if (!seen) {
      details.push(`(info) ${m.id} restored a snapshot after the run began: its acknowledged writes were checked through the hash chain`);
      continue;
    }
    for (const a of acked) {
      if (seen.get(a.rv) !== `${a.key}=${a.value}`) missingAll.add(`${a.key}=${a.value}@${a.rv} missing on ${m.id}`);
    }
  }
  anomalies += missingAll.size;
  details.push(...[...missingAll].slice(0, 20));
  return { anomalies, details };
}

/** rv → "key=value" of every change to the registers a member applied after `fromRv` (undefined if its history is shorter). */
async function historyValues(url: string, fromRv: number): Promise<Map<number, string> | undefined> {
  const r = await request(`${url}/api/v1/namespaces/${NAMESPACE}/configmaps?watch=1&resourceVersion=${fromRv}&timeoutSeconds=1`, { bodyTimeout: 30_000 });
  const text = await r.body.text();
  const out = new Map<number, string>();
  for (const line of text.split('\n').filter(Boolean)) {
    const e = JSON.parse(line);
    if (e.type === 'ERROR') return undefined;
    if (e.type === 'BOOKMARK') continue;
    out.set(Number(e.object.metadata.resourceVersion), `${e.object.metadata.name}=${e.object.data?.v ?? ''}`);
  }
  return out;
}

/**
 * Every message of the EVENTS stream, in stream order. Retried: after a NATS
 * server rejoins, the JetStream API can time out while the NATS cluster
 * re-elects its meta leader.
 */
export async function readStream(natsUrls: string[]): Promise<StreamEvent[]> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await readStreamOnce(natsUrls);
    } catch (e) {
      if (attempt >= 10 || /Nats-Msg-Id does not match/.test((e as Error).message)) throw e;
      await sleep(1000);
    }
  }
}

async function readStreamOnce(natsUrls: string[]): Promise<StreamEvent[]> {
  const nc = await connect({ servers: natsUrls });
  try {
    const jsm = await nc.jetstreamManager();
    const info = await jsm.streams.info(STREAM);
    const out: StreamEvent[] = [];
    for (let seq = info.state.first_seq; seq <= info.state.last_seq && info.state.messages > 0; seq++) {
      const m = await jsm.streams.getMessage(STREAM, { seq });
      const e = decodeEvent(m.data);
      if (Number(m.header.get('Nats-Msg-Id')) !== e.index) throw new Error(`stream seq ${seq}: Nats-Msg-Id does not match the event's index ${e.index}`);
      const obj = JSON.parse(e.object);
      out.push({ index: e.index, type: e.type, resource: e.resource, namespace: e.namespace, name: e.name, value: obj.data?.v ?? null, object: e.object });
    }
    return out;
  } finally {
    await nc.close();
  }
}

/**
 * Indexes of every committed write after `from`, from the member whose watch
 * history reaches back furthest (a member that restored a snapshot keeps the
 * changes after it; a 410 names where its history begins).
 */
async function committedIndexes(cluster: ChaosCluster): Promise<{ from: number; indexes: number[] } | undefined> {
  // Every kind the servers or the workload write (the servers create the system PriorityClasses).
  const paths = ['/api/v1/configmaps', '/api/v1/namespaces', '/apis/coordination.k8s.io/v1/leases', '/apis/scheduling.k8s.io/v1/priorityclasses'];
  const watchAll = async (url: string, p: string, rv: number): Promise<{ gone?: number; rvs: number[] }> => {
    const r = await request(`${url}${p}?watch=1&resourceVersion=${rv}&timeoutSeconds=1`, { bodyTimeout: 60_000 });
    const text = await r.body.text();
    const rvs: number[] = [];
    for (const line of text.split('\n').filter(Boolean)) {
      const e = JSON.parse(line);
      if (e.type === 'ERROR') return { gone: Number(/\((\d+)\)\s*$/.exec(e.object?.message ?? '')?.[1] ?? NaN), rvs };
      if (e.type !== 'BOOKMARK') rvs.push(Number(e.object.metadata.resourceVersion));
    }
    return { rvs };
  };
  let best: { from: number; indexes: number[] } | undefined;
  for (const m of cluster.servers.members) {
    let from = 0;
    let probe = await watchAll(m.url, paths[0], 1);
    if (probe.gone !== undefined) {
      if (!Number.isFinite(probe.gone)) continue;
      from = probe.gone;
    }
    if (best && from >= best.from) continue;
    const all: number[] = [];
    let ok = true;
    for (const p of paths) {
      probe = await watchAll(m.url, p, Math.max(from, 1));
      if (probe.gone !== undefined) ok = false;
      all.push(...probe.rvs);
    }
    if (ok) best = { from, indexes: all.sort((a, b) => a - b) };
  }
  return best;
}

export async function checkEvents(cluster: ChaosCluster, stream: StreamEvent[], acked: AckedWrite[]): Promise<CheckOutcome> {
  const details: string[] = [];
  let anomalies = 0;
  for (let i = 1; i < stream.length; i++) {
    if (stream[i].index <= stream[i - 1].index) {
      anomalies++;
      details.push(`stream out of order or duplicated: index ${stream[i].index} after ${stream[i - 1].index}`);
    }
  }
  const byIndex = new Map(stream.map((e) => [e.index, e]));
  for (const a of acked) {
    const e = byIndex.get(a.rv);
    if (!e || e.name !== a.key || e.value !== a.value) {
      anomalies++;
      details.push(`acknowledged write ${a.key}=${a.value} @${a.rv} is ${e ? `on the stream as ${e.name}=${e.value}` : 'missing from the stream'}`);
    }
  }
  const committed = await committedIndexes(cluster);
  if (!committed) {
    anomalies++;
    details.push('no member could list its committed writes: the gap check was not done');
  } else {
    if (committed.from > 0) details.push(`(info) the gap check covers indexes after ${committed.from} (earlier ones: acknowledged writes only; every member restored a snapshot since)`);
    const inStream = new Set(stream.map((e) => e.index));
    const inLog = new Set(committed.indexes);
    const missing = committed.indexes.filter((i) => !inStream.has(i));
    const extra = stream.filter((e) => e.index > committed.from && !inLog.has(e.index)).map((e) => e.index);
    anomalies += missing.length + extra.length;
    if (missing.length) details.push(`committed writes missing from the stream (gaps): ${missing.slice(0, 20).join(', ')}`);
    if (extra.length) details.push(`stream messages with no committed write: ${extra.slice(0, 20).join(', ')}`);
  }
  return { anomalies, details };
}

/** Each watcher saw, in order and exactly once, every change to the registers between its start and its last event. */
export function checkWatches(watches: WorkloadResult['watches'], stream: StreamEvent[]): CheckOutcome {
  const details: string[] = [];
  let anomalies = 0;
  const registerEvents = stream.filter((e) => e.resource === 'configmaps' && e.namespace === NAMESPACE);
  for (const w of watches) {
    const rvs = w.events.map((e) => e.rv);
    for (let i = 1; i < rvs.length; i++) {
      if (rvs[i] <= rvs[i - 1]) {
        anomalies++;
        details.push(`watcher ${w.watcher}: resourceVersion ${rvs[i]} after ${rvs[i - 1]} (duplicate or out of order)`);
      }
    }
    if (w.gone) {
      anomalies += w.gone;
      details.push(`watcher ${w.watcher}: ${w.gone} resume(s) refused with 410 Gone although the history should reach back`);
    }
    const last = rvs.length ? rvs[rvs.length - 1] : w.startRv;
    const seen = new Map(w.events.map((e) => [e.rv, e]));
    const expected = registerEvents.filter((e) => e.index > w.startRv && e.index <= last);
    const missed = expected.filter((e) => !seen.has(e.index));
    const wrong = expected.filter((e) => seen.has(e.index) && (seen.get(e.index)!.key !== e.name || seen.get(e.index)!.value !== e.value));
    anomalies += missed.length + wrong.length;
    if (missed.length) details.push(`watcher ${w.watcher}: missed ${missed.length} change(s), e.g. ${missed.slice(0, 5).map((e) => `${e.name}@${e.index}`).join(', ')}`);
    if (wrong.length) details.push(`watcher ${w.watcher}: ${wrong.length} change(s) with the wrong content`);
  }
  return { anomalies, details };
}
