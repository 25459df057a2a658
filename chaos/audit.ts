// The audit stream against the replicated log, for runs where every kind is
// written (the whole system: controllers, scheduler, agents): the stream
// holds each committed write exactly once, in index order, and nothing else.
// The committed writes come from the servers' watch histories of every kind
// the server serves (the servers must keep their whole history: chaos and
// the end-to-end test lift the --watch-history-* bounds).
import { request } from 'undici';
import { resourcePath } from '../agents/client/api.ts';
import { allKinds } from '../agents/client/kinds.ts';
import type { CheckOutcome, StreamEvent } from './checks.ts';

/** One cluster-wide watch path per stored resource (a resource served in several versions once). */
export function everyResourcePath(): string[] {
  const seen = new Set<string>();
  const out: string[] = [];
  for (const k of allKinds()) {
    const key = `${k.group}/${k.plural}`;
    if (seen.has(key)) continue;
    seen.add(key);
    out.push(resourcePath(k));
  }
  return out;
}

interface WatchOutcome {
  /** The member's history begins after the asked version (410): where it begins. */
  gone?: number;
  /** The resource cannot be watched (not stored): skipped. */
  unwatchable?: boolean;
  rvs: number[];
}

async function watchFrom(url: string, path: string, rv: number): Promise<WatchOutcome> {
  const r = await request(`${url}${path}?watch=1&resourceVersion=${rv}&timeoutSeconds=1&allowWatchBookmarks=false`, { bodyTimeout: 120_000, headersTimeout: 30_000 });
  const text = await r.body.text();
  if (r.statusCode === 404 || r.statusCode === 405) return { unwatchable: true, rvs: [] };
  if (r.statusCode !== 200) throw new Error(`${url}${path}: ${r.statusCode} ${text.slice(0, 200)}`);
  const rvs: number[] = [];
  for (const line of text.split('\n').filter(Boolean)) {
    const e = JSON.parse(line);
    if (e.type === 'ERROR') return { gone: Number(/\((\d+)\)\s*$/.exec(e.object?.message ?? '')?.[1] ?? NaN), rvs };
    if (e.type !== 'BOOKMARK') rvs.push(Number(e.object.metadata.resourceVersion));
  }
  return { rvs };
}

/**
 * Indexes of every committed write after `from`, read from the member whose
 * watch history reaches back furthest (a member that restored a snapshot
 * keeps the changes after it; a 410 names where its history begins).
 * Undefined when no member could list them all.
 */
export async function committedIndexes(urls: readonly string[], paths: readonly string[]): Promise<{ from: number; indexes: number[]; member: string } | undefined> {
  let best: { from: number; indexes: number[]; member: string } | undefined;
  for (const url of urls) {
    let from = 0;
    let probe: WatchOutcome;
    try {
      probe = await watchFrom(url, paths[0], 1);
    } catch {
      continue;
    }
    if (probe.gone !== undefined) {
      if (!Number.isFinite(probe.gone)) continue;
      from = probe.gone;
    }
    if (best && from >= best.from) continue;
    const all = new Set<number>();
    // Concurrently: each watch stays open for its one-second timeout after replaying the history.
    const outcomes = await Promise.all(paths.map((p) => watchFrom(url, p, Math.max(from, 1)).catch(() => undefined)));
    const ok = outcomes.every((x) => x !== undefined && x.gone === undefined);
    for (const x of outcomes) for (const rv of x?.rvs ?? []) all.add(rv);
    if (ok) best = { from, indexes: [...all].sort((a, b) => a - b), member: url };
  }
  return best;
}

/** The stream is in index order without duplicates, and holds exactly the committed writes (after the member's history start). */
export function checkStreamAgainstLog(stream: readonly StreamEvent[], committed: { from: number; indexes: readonly number[] } | undefined): CheckOutcome {
  const details: string[] = [];
  let anomalies = 0;
  for (let i = 1; i < stream.length; i++) {
    if (stream[i].index <= stream[i - 1].index) {
      anomalies++;
      if (details.length < 20) details.push(`stream out of order or duplicated: index ${stream[i].index} after ${stream[i - 1].index}`);
    }
  }
  if (!committed) return { anomalies: anomalies + 1, details: [...details, 'no member could list its committed writes: the gap check was not done'] };
  if (committed.from > 0) details.push(`(info) the gap check covers indexes after ${committed.from} (every member restored a snapshot since)`);
  // The cluster keeps writing (Leases) while the stream and the histories are
  // read one after the other: compare up to the end of the earlier read.
  const upTo = Math.min(stream.length ? stream[stream.length - 1].index : 0, committed.indexes.length ? committed.indexes[committed.indexes.length - 1] : 0);
  const inStream = new Set(stream.map((e) => e.index));
  const inLog = new Set(committed.indexes);
  const missing = committed.indexes.filter((i) => i <= upTo && !inStream.has(i));
  const extra = stream.filter((e) => e.index > committed.from && e.index <= upTo && !inLog.has(e.index)).map((e) => e.index);
  anomalies += missing.length + extra.length;
  if (missing.length) details.push(`committed writes missing from the stream (gaps): ${missing.slice(0, 20).join(', ')}`);
  if (extra.length) details.push(`stream messages with no committed write: ${extra.slice(0, 20).join(', ')}`);
  return { anomalies, details };
}
