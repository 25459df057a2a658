// client-go's EventCorrelator, the part of the event recorder that keeps
// Events from growing the store: repeats of one event become a count on the
// stored Event (dedup), more than ten different messages for one
// object/reason within ten minutes collapse into one "(combined from similar
// events)" Event (aggregation), and a token bucket per object (burst 25,
// then one per five minutes) drops the rest (spam filter). Pure: the clock is
// passed in; the recorder does the writing.

export interface EventInput {
  type: string;
  reason: string;
  message: string;
  involvedObject: { kind?: string; namespace?: string; name?: string; uid?: string; apiVersion?: string; fieldPath?: string };
  source: { component: string; host?: string };
}

export interface CorrelatorOptions {
  /** Distinct messages per object/reason within the window before they are combined (client-go: 10). */
  maxSimilar?: number;
  /** The aggregation window (client-go: 10 minutes). */
  aggregateWindowMs?: number;
  /** Spam filter bucket size per object (client-go: 25). */
  burst?: number;
  /** Spam filter refill: one token per this many ms (client-go: 1/300 QPS = 5 minutes). */
  refillMs?: number;
  /** Events remembered for dedup (client-go: 4096, LRU). */
  cacheSize?: number;
}

export type Decision =
  | { action: 'create'; key: string; message: string; count: 1 }
  | { action: 'update'; key: string; message: string; count: number; name: string; firstTimestamp: string }
  | { action: 'drop' };

interface Seen {
  name?: string;
  count: number;
  firstTimestamp: string;
}

interface Similar {
  messages: Set<string>;
  since: number;
}

interface Bucket {
  tokens: number;
  at: number;
}

const objectKey = (e: EventInput): string => {
  const o = e.involvedObject;
  return [e.source.component, e.source.host ?? '', o.kind, o.namespace, o.name, o.uid, o.apiVersion].join('\u0000');
};

export class EventCorrelator {
  private readonly seen = new Map<string, Seen>();
  private readonly similar = new Map<string, Similar>();
  private readonly buckets = new Map<string, Bucket>();
  private readonly maxSimilar: number;
  private readonly windowMs: number;
  private readonly burst: number;
  private readonly refillMs: number;
  private readonly cacheSize: number;
  dropped = 0;

  constructor(o: CorrelatorOptions = {}) {
    this.maxSimilar = o.maxSimilar ?? 10;
    this.windowMs = o.aggregateWindowMs ?? 10 * 60_000;
    this.burst = o.burst ?? 25;
    this.refillMs = o.refillMs ?? 300_000;
    this.cacheSize = o.cacheSize ?? 4096;
  }

  /** What to do with an event observed at `now`. */
  observe(e: EventInput, now: number): Decision {
    const okey = objectKey(e);
    if (!this.take(okey, now)) {
      this.dropped++;
      return { action: 'drop' };
    }
    // Aggregation: the same object, type and reason with many messages.
    const akey = [okey, e.type, e.reason].join('\u0000');
    let sim = this.similar.get(akey);
    if (!sim || now - sim.since > this.windowMs) {
      sim = { messages: new Set(), since: now };
      this.lru(this.similar, akey, sim);
    }
    sim.messages.add(e.message);
    let message = e.message;
    let dkey = [akey, e.message, e.involvedObject.fieldPath ?? ''].join('\u0000');
    if (sim.messages.size > this.maxSimilar) {
      message = `(combined from similar events): ${e.message}`;
      dkey = [akey, '\u0001combined'].join('\u0000');
    }
    const prev = this.seen.get(dkey);
    if (prev?.name) {
      prev.count++;
      this.lru(this.seen, dkey, prev);
      return { action: 'update', key: dkey, message, count: prev.count, name: prev.name, firstTimestamp: prev.firstTimestamp };
    }
    this.lru(this.seen, dkey, { count: 1, firstTimestamp: new Date(now).toISOString().replace(/\.\d+Z$/, 'Z') });
    return { action: 'create', key: dkey, message, count: 1 };
  }

  /** The recorder stored the Event under this name (creates), or lost it (undefined: the next repeat creates anew). */
  stored(key: string, name: string | undefined): void {
    const s = this.seen.get(key);
    if (!s) return;
    if (name) s.name = name;
    else this.seen.delete(key);
  }

  private take(key: string, now: number): boolean {
    let b = this.buckets.get(key);
    if (!b) {
      b = { tokens: this.burst, at: now };
      this.lru(this.buckets, key, b);
    }
    const refill = Math.floor((now - b.at) / this.refillMs);
    if (refill > 0) {
      b.tokens = Math.min(this.burst, b.tokens + refill);
      b.at += refill * this.refillMs;
    }
    if (b.tokens <= 0) return false;
    b.tokens--;
    return true;
  }

  /** Insert as most recent, evicting the least recently used beyond the cache size. */
  private lru<V>(m: Map<string, V>, key: string, v: V): void {
    m.delete(key);
    m.set(key, v);
    if (m.size > this.cacheSize) m.delete(m.keys().next().value as string);
  }
}
