// The simulated network: every message is copied (so no object is shared
// between sender and receiver, as on a real wire) and delivered after a
// random number of steps, or lost, or delivered twice. Different delays
// reorder messages. Partitions split the members into groups that cannot
// talk; one-way cuts drop a single direction of a link. A link is the one
// from the member that emits a message (which for a forwarded proposal is
// not its \`from\`) to its \`to\`.
import type { Message, NodeId } from '../../../raft/types.ts';
import type { Rng } from '../../../harness/rng.ts';

export interface NetworkFaults {
  /** Probability that a message is lost. */
  drop: number;
  /** Probability that a message is delivered a second time (with its own delay). */
  duplicate: number;
  /** Delivery delay in steps, uniform in [minDelay, maxDelay]. */
  minDelay: number;
  maxDelay: number;
  /** Probability of an outlier delay in (maxDelay, longDelayMax]: reordering over many steps. */
  longDelay: number;
  longDelayMax: number;
}

export const RELIABLE: NetworkFaults = { drop: 0, duplicate: 0, minDelay: 1, maxDelay: 1, longDelay: 0, longDelayMax: 1 };

interface Packet {
  m: Message;
  via: NodeId;
}

export interface NetworkStats {
  sent: number;
  delivered: number;
  dropped: number;
  duplicated: number;
  partitioned: number;
}

export class Network {
  faults: NetworkFaults;
  /** Scripted scenarios: return false to drop a message (checked when it is sent and when it arrives). */
  filter: ((m: Message) => boolean) | undefined;
  readonly stats: NetworkStats = { sent: 0, delivered: 0, dropped: 0, duplicated: 0, partitioned: 0 };
  private readonly buckets = new Map<number, Packet[]>();
  private readonly group = new Map<NodeId, number>();
  private readonly cuts = new Set<string>();
  private inFlight = 0;

  constructor(private readonly rng: Rng, faults: NetworkFaults) {
    this.faults = { ...faults };
  }

  /** `via` is the member that emits `m` (its \`from\` unless it forwards someone else's). */
  send(m: Message, via: NodeId, now: number): void {
    this.stats.sent++;
    if (!this.passes(m, via)) return;
    if (this.rng.chance(this.faults.drop)) {
      this.stats.dropped++;
      return;
    }
    this.enqueue(m, via, now);
    if (this.rng.chance(this.faults.duplicate)) {
      this.stats.duplicated++;
      this.enqueue(m, via, now);
    }
  }

  /** Removes and returns, in random order, the messages that arrive at step `now`. */
  arrivals(now: number): Message[] {
    const due = this.buckets.get(now);
    if (!due) return [];
    this.buckets.delete(now);
    this.inFlight -= due.length;
    const out: Message[] = [];
    for (const p of due) if (this.passes(p.m, p.via)) out.push(p.m);
    this.stats.delivered += out.length;
    return this.rng.shuffle(out);
  }

  /** Messages still on the wire. */
  get pending(): number {
    return this.inFlight;
  }

  /** Splits the members into groups; members not listed form one more group together. */
  partition(groups: NodeId[][]): void {
    this.group.clear();
    groups.forEach((g, i) => g.forEach((id) => this.group.set(id, i + 1)));
  }

  /** Drops everything from `from` to `to` (one direction only). */
  cut(from: NodeId, to: NodeId): void {
    this.cuts.add(`${from}>${to}`);
  }

  heal(): void {
    this.group.clear();
    this.cuts.clear();
  }

  get partitioned(): boolean {
    return this.group.size > 0 || this.cuts.size > 0;
  }

  connected(from: NodeId, to: NodeId): boolean {
    return (this.group.get(from) ?? 0) === (this.group.get(to) ?? 0) && !this.cuts.has(`${from}>${to}`);
  }

  describe(): string {
    if (!this.partitioned) return 'healed';
    const groups = new Map<number, NodeId[]>();
    for (const [id, g] of this.group) groups.set(g, [...(groups.get(g) ?? []), id]);
    const parts = [...groups.values()].map((g) => `{${g.join(',')}}`);
    return [...parts, ...[...this.cuts].map((c) => `cut ${c}`)].join(' ');
  }

  private passes(m: Message, via: NodeId): boolean {
    if (!this.connected(via, m.to)) {
      this.stats.partitioned++;
      return false;
    }
    if (this.filter && !this.filter(m)) {
      this.stats.dropped++;
      return false;
    }
    return true;
  }

  private enqueue(m: Message, via: NodeId, now: number): void {
    const f = this.faults;
    let delay = this.rng.range(f.minDelay, Math.max(f.minDelay, f.maxDelay));
    if (f.longDelayMax > f.maxDelay && this.rng.chance(f.longDelay)) delay = this.rng.range(f.maxDelay + 1, f.longDelayMax);
    const at = now + Math.max(1, delay);
    const bucket = this.buckets.get(at);
    const p: Packet = { m: cloneMessage(m), via };
    if (bucket) bucket.push(p);
    else this.buckets.set(at, [p]);
    this.inFlight++;
  }
}

/** A copy that shares no mutable object with the original (payload bytes are treated as immutable). */
export function cloneMessage(m: Message): Message {
  const c: Message = { ...m, entries: m.entries.map((e) => ({ ...e })) };
  if (m.snapshot) {
    const { conf } = m.snapshot;
    c.snapshot = { ...m.snapshot, conf: { voters: [...conf.voters], learners: [...conf.learners] } };
  }
  return c;
}
