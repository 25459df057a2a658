// The replicated application: a small key-value map fed by proposals of the
// form "<seq>:<key>=<value>", plus the membership (rebuilt from the
// ConfChange entries exactly as the core documents it) and a running hash of
// every applied entry, so two members with the same hash at the same index
// applied the same sequence. It snapshots to and restores from bytes.
import { decodeConfChange } from '../../../raft/codec.ts';
import { type ConfChange, ConfChangeType, type ConfState, type Entry, EntryType, type Snapshot } from '../../../raft/types.ts';
import { Violation } from './violation.ts';

const enc = new TextEncoder();
const dec = new TextDecoder();

export interface Payload {
  seq: number;
  key: string;
  value: string;
}

export function encodePayload(p: Payload): Uint8Array {
  return enc.encode(`${p.seq}:${p.key}=${p.value}`);
}

export function decodePayload(data: Uint8Array): Payload | undefined {
  const s = dec.decode(data);
  const colon = s.indexOf(':');
  const eq = s.indexOf('=', colon);
  if (colon <= 0 || eq < 0) return undefined;
  return { seq: Number(s.slice(0, colon)), key: s.slice(colon + 1, eq), value: s.slice(eq + 1) };
}

/** A string that identifies an entry's content (type and payload bytes). */
export function entryKey(e: Entry): string {
  return `${e.type}:${Buffer.from(e.data.buffer, e.data.byteOffset, e.data.byteLength).toString('latin1')}`;
}

interface Encoded {
  applied: number;
  term: number;
  hash: [number, number];
  writes: number;
  kv: [string, string][];
  conf: ConfState;
}

export class StateMachine {
  applied = 0;
  /** Term of the last applied entry. */
  term = 0;
  /** Normal entries with a payload applied so far. */
  writes = 0;
  readonly kv = new Map<string, string>();
  conf: ConfState;
  private h1 = 0x811c9dc5;
  private h2 = 0x01000193;

  constructor(conf: ConfState = { voters: [], learners: [] }) {
    this.conf = { voters: [...conf.voters].sort(), learners: [...conf.learners].sort() };
  }

  static restore(s: Snapshot): StateMachine {
    let d: Encoded;
    try {
      d = JSON.parse(dec.decode(s.data)) as Encoded;
    } catch (e) {
      throw new Violation('state-machine-safety', `snapshot at ${s.meta.index} does not decode: ${(e as Error).message}`);
    }
    if (d.applied !== s.meta.index || d.term !== s.meta.term) {
      throw new Violation('state-machine-safety', `snapshot meta ${s.meta.index}/${s.meta.term} but its data is at ${d.applied}/${d.term}`);
    }
    if (!sameConf(d.conf, s.meta.conf)) {
      throw new Violation('state-machine-safety', `snapshot at ${s.meta.index}: meta conf ${fmtConf(s.meta.conf)} but data conf ${fmtConf(d.conf)}`);
    }
    const sm = new StateMachine();
    sm.applied = d.applied;
    sm.term = d.term;
    sm.writes = d.writes;
    [sm.h1, sm.h2] = d.hash;
    for (const [k, v] of d.kv) sm.kv.set(k, v);
    sm.conf = { voters: [...d.conf.voters].sort(), learners: [...d.conf.learners].sort() };
    return sm;
  }

  get hash(): string {
    return `${this.h1.toString(16).padStart(8, '0')}${this.h2.toString(16).padStart(8, '0')}`;
  }

  /** Applies the next committed entry; returns the conf change it carried, if any. */
  apply(e: Entry): ConfChange | undefined {
    if (e.index !== this.applied + 1) {
      throw new Violation('contract', `committed entry ${e.index} handed to the application after ${this.applied}`);
    }
    this.mix(e.index);
    this.mix(e.term);
    this.mix(e.type);
    for (let i = 0; i < e.data.length; i++) this.mix(e.data[i]);
    this.applied = e.index;
    this.term = e.term;
    if (e.type === EntryType.ConfChange) {
      const cc = decodeConfChange(e.data);
      applyConfChange(this.conf, cc);
      return cc;
    }
    if (e.data.length) {
      const p = decodePayload(e.data);
      if (!p) throw new Violation('state-machine-safety', `entry ${e.index}/${e.term} carries a payload the application never proposed`);
      this.kv.set(p.key, p.value);
      this.writes++;
    }
    return undefined;
  }

  encode(): Uint8Array {
    const d: Encoded = {
      applied: this.applied, term: this.term, hash: [this.h1, this.h2], writes: this.writes,
      kv: [...this.kv].sort((a, b) => (a[0] < b[0] ? -1 : 1)), conf: this.conf,
    };
    return enc.encode(JSON.stringify(d));
  }

  private mix(x: number): void {
    this.h1 = Math.imul(this.h1 ^ (x & 0xffff), 0x01000193) >>> 0;
    this.h1 = Math.imul(this.h1 ^ (x >>> 16), 0x01000193) >>> 0;
    this.h2 = (Math.imul(this.h2 + x + 0x9e3779b9, 0x85ebca6b) ^ (this.h2 >>> 13)) >>> 0;
  }
}

/** Membership semantics of raft/types.ts: AddNode adds or promotes, AddLearner never demotes a voter. */
export function applyConfChange(c: ConfState, cc: ConfChange): void {
  const without = (xs: string[]) => xs.filter((x) => x !== cc.nodeId);
  switch (cc.type) {
    case ConfChangeType.AddNode:
      c.learners = without(c.learners);
      if (!c.voters.includes(cc.nodeId)) c.voters = [...c.voters, cc.nodeId].sort();
      break;
    case ConfChangeType.AddLearner:
      if (!c.voters.includes(cc.nodeId) && !c.learners.includes(cc.nodeId)) c.learners = [...c.learners, cc.nodeId].sort();
      break;
    case ConfChangeType.RemoveNode:
      c.voters = without(c.voters);
      c.learners = without(c.learners);
      break;
  }
}

export function sameConf(a: ConfState, b: ConfState): boolean {
  const eq = (x: string[], y: string[]) => {
    if (x.length !== y.length) return false;
    const ys = [...y].sort();
    return [...x].sort().every((v, i) => v === ys[i]);
  };
  return eq(a.voters, b.voters) && eq(a.learners, b.learners);
}

export function fmtConf(c: ConfState): string {
  return `{voters: [${c.voters.join(',')}], learners: [${c.learners.join(',')}]}`;
}
