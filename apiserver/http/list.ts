// LIST: selectors, and limit/continue pagination at one consistent revision
// (later pages are served as the store was at the first page's revision).
import { resourceKey } from '../command.ts';
import { errors } from '../errors.ts';
import { type FieldRequirement, type LabelRequirement, matchesFields, matchesLabels, parseFieldSelector, parseLabelSelector } from '../../api/selectors.ts';
import type { KindDef, KubeObject } from '../../api/schema/types.ts';
import type { ObjectStore, StoredObject } from '../store.ts';

export interface ListOptions {
  labels?: LabelRequirement[];
  fields?: FieldRequirement[];
  /** 0 = no limit. */
  limit: number;
  continue?: { rv: number; start: string };
}

export function listOptionsOf(q: URLSearchParams): ListOptions {
  const opts: ListOptions = { limit: 0 };
  const ls = q.get('labelSelector');
  const fs = q.get('fieldSelector');
  try {
    if (ls) opts.labels = parseLabelSelector(ls);
    if (fs) opts.fields = parseFieldSelector(fs);
  } catch (e) {
    throw errors.badRequest((e as Error).message);
  }
  const limit = q.get('limit');
  if (limit) {
    const n = Number(limit);
    if (!Number.isInteger(n) || n < 0) throw errors.badRequest(`invalid limit "${limit}"`);
    opts.limit = n;
  }
  const c = q.get('continue');
  if (c) opts.continue = decodeContinue(c);
  return opts;
}

export function encodeContinue(rv: number, start: string): string {
  return Buffer.from(JSON.stringify({ v: 'meta.k8s.io/v1', rv, start })).toString('base64url');
}

function decodeContinue(token: string): { rv: number; start: string } {
  try {
    const t = JSON.parse(Buffer.from(token, 'base64url').toString('utf8')) as { v?: string; rv?: number; start?: string };
    if (t.v !== 'meta.k8s.io/v1' || !Number.isInteger(t.rv) || typeof t.start !== 'string') throw new Error('bad token');
    return { rv: t.rv!, start: t.start };
  } catch {
    throw errors.badRequest('continue key is not valid: incorrect encoded start resourceVersion (version meta.k8s.io/v1)');
  }
}

/** Whether a stored object passes the label and field selectors (fields need the parsed object). */
export function objectMatches(obj: StoredObject, labels?: LabelRequirement[], fields?: FieldRequirement[]): boolean {
  if (labels && !matchesLabels(labels, obj.labels ?? {})) return false;
  if (fields && !matchesFields(fields, JSON.parse(obj.json) as KubeObject)) return false;
  return true;
}

export function selectObjects(store: ObjectStore, kind: KindDef, ns: string, opts: ListOptions, revision: number): { items: StoredObject[]; continueToken?: string; remaining?: number } {
  const res = resourceKey(kind.group, kind.plural);
  const all = opts.continue ? store.listAt(res, ns || undefined, opts.continue.rv) : store.list(res, ns || undefined);
  const start = opts.continue?.start;
  const items: StoredObject[] = [];
  let lastKey = '';
  let i = 0;
  if (start !== undefined) {
    // Sorted: skip to the first key after `start`.
    let lo = 0;
    let hi = all.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (all[mid].key <= start) lo = mid + 1;
      else hi = mid;
    }
    i = lo;
  }
  for (; i < all.length; i++) {
    const { key, obj } = all[i];
    if (!objectMatches(obj, opts.labels, opts.fields)) continue;
    if (opts.limit && items.length === opts.limit) {
      // More remain: hand out a token that resumes after the last key returned.
      const remaining = opts.labels || opts.fields ? undefined : all.length - i;
      return { items, continueToken: encodeContinue(revision, lastKey), remaining };
    }
    items.push(obj);
    lastKey = key;
  }
  return { items };
}
