// The checkers that run after the faults stop: durability (no acknowledged
// write lost, identical applied logs), the event stream (exactly one message
// per committed write, in order, matching what the API acknowledged) and
// watches (ordered, unique, gap-free, resumable).
import { connect } from 'nats';
import { request } from 'undici';
import { STREAM, decodeEvent } from '../api/events.ts';
import { checkStreamAgainstLog, committedIndexes, everyResourcePath } from './audit.ts';
import type { ChaosCluster } from './cluster.ts';
import { type AckedWrite, NAMESPACE, type WorkloadResult } from './workload.ts';
import { natsServerOptions } from '../api/nats-url.ts';

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
  /** When the server committed it (ms since the epoch; 0 when the event has no timestamp). */
  time: number;
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
  const nc = await connect(natsServerOptions(natsUrls));
  try {
    const jsm = await nc.jetstreamManager();
    const info = await jsm.streams.info(STREAM);
    const out: StreamEvent[] = [];
    for (let seq = info.state.first_seq; seq <= info.state.last_seq && info.state.messages > 0; seq++) {
      const m = await jsm.streams.getMessage(STREAM, { seq });
      const e = decodeEvent(m.data);
      if (Number(m.header.get('Nats-Msg-Id')) !== e.index) throw new Error(`stream seq ${seq}: Nats-Msg-Id does not match the event's index ${e.index}`);
      const obj = JSON.parse(e.object);
      out.push({ index: e.index, type: e.type, resource: e.resource, namespace: e.namespace, name: e.name, value: obj.data?.v ?? null, object: e.object, time: Date.parse(e.timestamp) || 0 });
    }
    return out;
  } finally {
    await nc.close();
  }
}

export async function checkEvents(cluster: ChaosCluster, stream: StreamEvent[], acked: AckedWrite[]): Promise<CheckOutcome> {
  const details: string[] = [];
  let anomalies = 0;
  const byIndex = new Map(stream.map((e) => [e.index, e]));
  for (const a of acked) {
    const e = byIndex.get(a.rv);
    if (!e || e.name !== a.key || e.value !== a.value) {
      anomalies++;
      details.push(`acknowledged write ${a.key}=${a.value} @${a.rv} is ${e ? `on the stream as ${e.name}=${e.value}` : 'missing from the stream'}`);
    }
  }
  // Every stored kind: the servers write some (namespaces, PriorityClasses), the orchestrator scenarios all.
  const committed = await committedIndexes(cluster.servers.members.map((m) => m.url), everyResourcePath());
  const log = checkStreamAgainstLog(stream, committed);
  return { anomalies: anomalies + log.anomalies, details: [...log.details, ...details] };
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
