// The simulated cluster: members, network, client load and faults, all
// driven by one seeded PRNG, advancing in discrete steps. Each step delivers
// the messages due, ticks members (each at its own rate), runs their driver
// loops, and (in a random run) may crash, restart, partition, stall a disk,
// change membership, transfer leadership, propose or read. The safety
// properties are checked as the observations arrive (see history.ts); a run
// ends by healing everything and requiring every member to converge.
import {
  type ConfChange, ConfChangeType, EMPTY, type Entry, EntryType, type Message, MessageType, type NodeId, RaftError,
  type ReadState, Role,
} from '../../../raft/types.ts';
import { type CommittedEntry, History } from './history.ts';
import { Network } from './network.ts';
import { type NodeHost, SimNode } from './node.ts';
import type { Chaos, SimOptions } from './options.ts';
import { Rng } from '../../../harness/rng.ts';
import { decodePayload, encodePayload, fmtConf, sameConf } from './state-machine.ts';
import { SimFailure, Violation } from './violation.ts';

const enc = new TextEncoder();
const dec = new TextDecoder();
const TRACE_LINES = 200_000;

export interface SimStats {
  steps: number;
  proposals: number;
  proposalsRejected: number;
  acked: number;
  reads: number;
  readsServed: number;
  crashes: number;
  /** Crashes that also lost the tail of the log (Disk.loseTail). */
  tailsLost: number;
  partitions: number;
  stalls: number;
  confChanges: number;
  /** Refused by the core, mostly because one is still pending. */
  confChangesRefused: number;
  confChangesApplied: number;
  transfers: number;
  campaigns: number;
  snapshotsInstalled: number;
  snapshotChunks: number;
  leaders: number;
  committed: number;
}

export interface SimResult {
  seed: number;
  stats: SimStats;
  /** Changes whenever anything about the run changes: two runs of a seed must agree on it. */
  fingerprint: string;
}

interface ProposalRecord {
  node: NodeId;
  step: number;
  /** Index it was applied at on its proposer (0 until then). */
  acked: number;
}

interface ReadRecord {
  node: NodeId;
  step: number;
  /** Highest index any member knew committed when the read was issued. */
  minIndex: number;
  served: number | undefined;
}

export class Simulation implements NodeHost {
  readonly history = new History();
  readonly nodes = new Map<NodeId, SimNode>();
  readonly net: Network;
  readonly stats: SimStats = {
    steps: 0, proposals: 0, proposalsRejected: 0, acked: 0, reads: 0, readsServed: 0, crashes: 0, tailsLost: 0, partitions: 0,
    stalls: 0, confChanges: 0, confChangesRefused: 0, confChangesApplied: 0, transfers: 0, campaigns: 0,
    snapshotsInstalled: 0, snapshotChunks: 0, leaders: 0, committed: 0,
  };
  now = 0;
  /** Scripted scenarios may stop the clocks (no ticks) to control elections by hand. */
  ticking = true;
  private readonly rng: Rng;
  private readonly nodeRng: Rng;
  private readonly tickRate = new Map<NodeId, number>();
  private readonly proposals = new Map<number, ProposalRecord>();
  private readonly reads = new Map<string, ReadRecord>();
  private readonly stopAt = new Map<NodeId, number>();
  private healAt = 0;
  private nextSeq = 1;
  private nextMemberId: number;
  private slowDisk: number;
  private chaos: Chaos | undefined;
  private readonly traceLines: string[] = [];

  constructor(readonly opts: SimOptions) {
    const root = new Rng(opts.seed);
    this.rng = root.fork();
    this.nodeRng = root.fork();
    this.net = new Network(root.fork(), opts.net);
    this.slowDisk = opts.slowDisk;
    this.chaos = opts.chaos;
    const voters = Array.from({ length: opts.founders }, (_, i) => String(i + 1));
    this.nextMemberId = opts.founders + 1;
    for (const id of voters) this.addNode(id, { voters, learners: [] }).start();
  }

  // ------------------------------------------------------------ running

  /** The whole random run: chaos for opts.steps, then heal and converge. */
  run(): SimResult {
    while (this.now < this.opts.steps) this.step();
    this.finish();
    return this.result();
  }

  step(): void {
    try {
      this.stepOnce();
    } catch (e) {
      throw this.failure(e);
    }
  }

  runFor(steps: number): void {
    for (let i = 0; i < steps; i++) this.step();
  }

  /** Steps until `pred` holds, at most `maxSteps`; returns whether it holds. */
  stepUntil(pred: () => boolean, maxSteps: number): boolean {
    for (let i = 0; i < maxSteps; i++) {
      if (pred()) return true;
      this.step();
    }
    return pred();
  }

  /** Steps until `pred` holds; fails the run (liveness) after `maxSteps`. */
  runUntil(pred: () => boolean, maxSteps: number, what: string): void {
    if (this.stepUntil(pred, maxSteps)) return;
    throw this.failure(new Violation('liveness', `not within ${maxSteps} steps: ${what}\n${this.describe()}`));
  }

  /** Stops the chaos, heals and restarts everything, and requires every member to converge. */
  finish(): void {
    this.chaos = undefined;
    this.slowDisk = 0;
    this.net.heal();
    this.healAt = 0;
    this.net.faults = { ...this.net.faults, drop: 0, duplicate: 0, longDelay: 0 };
    this.net.filter = undefined;
    this.ticking = true;
    try {
      for (const id of [...this.stopAt.keys()]) this.stop(id);
      for (const n of this.nodes.values()) {
        n.stalledUntil = 0;
        if (!n.up && !n.removed) this.restart(n.id);
      }
    } catch (e) {
      throw this.failure(e);
    }
    // Converged for a few steps in a row, so that nothing is still in motion.
    let settled = 0;
    const stable = () => {
      settled = this.converged() ? settled + 1 : 0;
      return settled >= 3;
    };
    this.runUntil(stable, this.opts.finalSteps, 'convergence after healing');
    try {
      this.checkConvergence();
    } catch (e) {
      throw this.failure(e);
    }
  }

  result(): SimResult {
    const s = this.stats;
    s.steps = this.now;
    s.leaders = this.history.leaders.size;
    s.committed = this.history.maxApplied;
    const top = this.history.committed[this.history.maxApplied];
    const net = this.net.stats;
    const fingerprint = [
      top?.hash, s.committed, s.acked, s.proposals, s.leaders, s.crashes, net.sent, net.delivered, net.dropped,
    ].join('/');
    return { seed: this.opts.seed, stats: { ...s }, fingerprint };
  }

  // ------------------------------------------------------------ scenario API

  node(id: NodeId): SimNode {
    const n = this.nodes.get(id);
    if (!n) throw new Error(`raft-sim: no member ${id}`);
    return n;
  }

  /** The up member that leads the highest term, if any. */
  leader(): SimNode | undefined {
    let best: SimNode | undefined;
    for (const n of this.nodes.values()) {
      if (n.up && n.role === Role.Leader && (!best || n.term > best.term)) best = n;
    }
    return best;
  }

  crash(id: NodeId): void {
    const n = this.node(id);
    if (!n.up) return;
    n.crash(this.rng.chance(0.5));
    this.stats.crashes++;
    this.event(() => `${id} crashes`);
  }

  restart(id: NodeId): void {
    const n = this.node(id);
    if (n.up || n.removed) return;
    this.guarded(() => n.start());
    this.event(() => `${id} restarts (term ${n.term}, disk log ${n.disk.snapIndex}..${n.disk.lastIndex()}, commit ${n.disk.hardState.commit})`);
  }

  /** Crashes `id` and damages the tail of its log: `n` entries are lost (see Disk.loseTail). */
  loseTail(id: NodeId, n: number, marker = true): void {
    const node = this.node(id);
    this.crash(id);
    const before = node.disk.lastIndex();
    node.disk.loseTail(n, marker);
    this.stats.tailsLost++;
    this.event(() => `${id} loses its log tail ${node.disk.lastIndex() + 1}..${before}${marker ? '' : ' (no vote marker)'}`);
  }

  partition(...groups: NodeId[][]): void {
    this.net.partition(groups);
    this.stats.partitions++;
    this.event(() => `partition ${this.net.describe()}`);
  }

  heal(): void {
    this.net.heal();
    this.event(() => 'network healed');
  }

  /** Makes member `id` start an election now. */
  campaign(id: NodeId): void {
    const n = this.node(id);
    this.stats.campaigns++;
    this.event(() => `${id} campaigns`);
    this.guarded(() => n.campaign());
  }

  /** Asks leader `from` to hand leadership to `to`; returns the RaftError when refused. */
  transferLeader(from: NodeId, to: NodeId): RaftError | undefined {
    this.stats.transfers++;
    this.event(() => `${from} transfers leadership to ${to}`);
    try {
      this.guarded(() => this.node(from).transferLeader(to));
      return undefined;
    } catch (e) {
      if (!(e instanceof RaftError)) throw e;
      return e;
    }
  }

  /** Proposes a fresh payload on member `id`; returns its sequence number, or the RaftError. */
  propose(id: NodeId): { seq: number; result: { index: number; term: number } | null } | RaftError {
    const n = this.node(id);
    const seq = this.nextSeq++;
    const value = this.randomValue();
    const data = encodePayload({ seq, key: `k${this.rng.int(8)}`, value });
    try {
      const result = this.guarded(() => n.propose(data));
      this.proposals.set(seq, { node: id, step: this.now, acked: 0 });
      this.stats.proposals++;
      return { seq, result };
    } catch (e) {
      if (!(e instanceof RaftError)) throw e;
      this.stats.proposalsRejected++;
      return e;
    }
  }

  /** The index proposal `seq` was applied at on its proposer, 0 if not (yet). */
  acked(seq: number): number {
    return this.proposals.get(seq)?.acked ?? 0;
  }

  /** Issues a ReadIndex on `id`; returns its context, or the RaftError. */
  readIndex(id: NodeId): string | RaftError {
    const ctx = `r${this.nextSeq++}`;
    this.reads.set(ctx, { node: id, step: this.now, minIndex: this.history.maxCommit, served: undefined });
    try {
      this.guarded(() => this.node(id).readIndex(enc.encode(ctx)));
      this.stats.reads++;
      return ctx;
    } catch (e) {
      this.reads.delete(ctx);
      if (!(e instanceof RaftError)) throw e;
      return e;
    }
  }

  /** The index a read was served at, once its ReadState arrived. */
  readServed(ctx: string): number | undefined {
    return this.reads.get(ctx)?.served;
  }

  /** Creates (and starts) a member that is not in the cluster yet, to be added with a conf change. */
  createMember(): SimNode {
    const n = this.addNode(String(this.nextMemberId++), { voters: [], learners: [] });
    this.guarded(() => n.start());
    this.event(() => `${n.id} created`);
    return n;
  }

  /** Proposes a conf change on the leader; returns the RaftError when refused. */
  proposeConfChange(cc: ConfChange): { index: number; term: number } | RaftError {
    const l = this.leader();
    if (!l) return new RaftError('not-leader', 'raft-sim: no leader');
    try {
      const r = this.guarded(() => l.proposeConfChange(cc));
      this.stats.confChanges++;
      this.event(() => `${l.id} proposes ${ConfChangeType[cc.type]} ${cc.nodeId} at ${r.index}/${r.term}`);
      return r;
    } catch (e) {
      if (!(e instanceof RaftError)) throw e;
      this.stats.confChangesRefused++;
      return e;
    }
  }

  /** The last events (when opts.trace is set). */
  trace(): string[] {
    return [...this.traceLines];
  }

  describe(): string {
    const lines = [`  network: ${this.net.describe()}, ${this.net.pending} in flight; committed conf ${fmtConf(this.history.conf)}`];
    for (const n of this.nodes.values()) {
      if (!n.up) {
        lines.push(`  ${n.id}: ${n.removed ? 'removed' : 'down'} (disk log ${n.disk.snapIndex}..${n.disk.lastIndex()})`);
        continue;
      }
      const s = n.status();
      const prog = s.progress
        ? ` progress ${Object.entries(s.progress).map(([id, p]) => `${id}:${p.state}/${p.match}/${p.next}`).join(' ')}`
        : '';
      lines.push(
        `  ${n.id}: ${s.role} term ${s.term} leader '${s.leader}' commit ${s.commit} applied ${s.applied} log ${s.firstIndex}..${s.lastIndex}` +
          ` conf ${fmtConf(s.conf)}${n.stalledUntil > this.now ? ' stalled' : ''}${prog}`,
      );
    }
    return lines.join('\n');
  }

  // ------------------------------------------------------------ NodeHost

  send(m: Message, via: NodeId): void {
    if (m.type === MessageType.Snap) this.stats.snapshotChunks++;
    if (this.opts.trace) this.event(() => `${via}->${m.to} ${fmtMessage(m)}`);
    this.net.send(m, via, this.now);
  }

  applied(node: SimNode, e: Entry, cc: ConfChange | undefined, first: CommittedEntry | undefined): void {
    if (e.type === EntryType.Normal && e.data.length) {
      const p = decodePayload(e.data)!;
      const rec = this.proposals.get(p.seq);
      if (rec && rec.node === node.id && !rec.acked) {
        rec.acked = e.index;
        this.stats.acked++;
      }
    }
    if (!first || !cc) return;
    this.stats.confChangesApplied++;
    this.event(() => `${ConfChangeType[cc.type]} ${cc.nodeId} committed at ${e.index}/${e.term}: ${fmtConf(this.history.conf)}`);
    const target = this.nodes.get(cc.nodeId);
    if (cc.type === ConfChangeType.RemoveNode && target && !target.removed) {
      // Gone for good (ids are never reused); the operator shuts it down a little later.
      target.removed = true;
      this.stopAt.set(cc.nodeId, this.now + (this.chaos ? this.rng.range(0, 30) : 0));
    }
  }

  readState(node: SimNode, rs: ReadState): void {
    const ctx = dec.decode(rs.context);
    const r = this.reads.get(ctx);
    if (!r) throw new Violation('linearizability', `${node.id} gets a ReadState for '${ctx}', which it never issued`);
    if (r.node !== node.id) throw new Violation('linearizability', `${node.id} gets the ReadState of '${ctx}', issued on ${r.node}`);
    if (rs.index < r.minIndex) {
      throw new Violation(
        'linearizability',
        `read '${ctx}' issued on ${r.node} at step ${r.step}, when index ${r.minIndex} was known committed, is served at index ${rs.index}`,
      );
    }
    if (rs.index > this.history.maxCommit) {
      throw new Violation('linearizability', `read '${ctx}' on ${node.id} is served at ${rs.index}, beyond any commit index (${this.history.maxCommit})`);
    }
    if (r.served === undefined) this.stats.readsServed++;
    r.served = rs.index;
  }

  snapshotInstalled(): void {
    this.stats.snapshotsInstalled++;
  }

  event(text: () => string): void {
    if (!this.opts.trace) return;
    this.traceLines.push(`[${this.now}] ${text()}`);
    if (this.traceLines.length > TRACE_LINES) this.traceLines.shift();
  }

  // ------------------------------------------------------------ internals

  private addNode(id: NodeId, bootConf: { voters: NodeId[]; learners: NodeId[] }): SimNode {
    const [lo, hi] = this.opts.compactEvery;
    const n = new SimNode(
      id, bootConf,
      { raft: this.opts.raft, compactEvery: this.rng.range(lo, hi), earlySend: this.opts.earlySend },
      this, this.nodeRng.fork(),
    );
    this.nodes.set(id, n);
    const [tlo, thi] = this.opts.chaos?.tick ?? [1, 1];
    this.tickRate.set(id, tlo + this.rng.next() * (thi - tlo));
    return n;
  }

  private stepOnce(): void {
    this.now++;
    if (this.chaos) this.injectChaos(this.chaos);
    this.runSchedule();
    const actions: (() => void)[] = [];
    for (const m of this.net.arrivals(this.now)) actions.push(() => this.deliver(m));
    for (const n of this.nodes.values()) {
      if (!n.up) continue;
      if (this.ticking && this.rng.chance(this.tickRate.get(n.id)!)) actions.push(() => n.up && n.tick());
      actions.push(() => n.processReady(this.now, this.slowDisk));
    }
    for (const a of this.rng.shuffle(actions)) a();
    for (const n of this.rng.shuffle([...this.nodes.values()])) n.processReady(this.now, this.slowDisk);
  }

  private deliver(m: Message): void {
    const n = this.nodes.get(m.to);
    if (!n || !n.up) return;
    if (this.opts.trace) this.event(() => `${m.to}<-${m.from} ${fmtMessage(m)}`);
    n.deliver(m);
  }

  private runSchedule(): void {
    if (this.healAt && this.now >= this.healAt) {
      this.healAt = 0;
      this.heal();
    }
    for (const [id, at] of this.stopAt) if (this.now >= at) this.stop(id);
    for (const n of this.nodes.values()) {
      if (!n.up && !n.removed && n.restartAt && this.now >= n.restartAt) this.restart(n.id);
    }
  }

  /** Shuts a removed member down for good. */
  private stop(id: NodeId): void {
    this.stopAt.delete(id);
    const n = this.node(id);
    n.crash();
    n.removed = true;
    this.event(() => `${id} is shut down (removed)`);
  }

  private injectChaos(c: Chaos): void {
    const r = this.rng;
    if (r.chance(c.crash)) this.randomCrash(c, false);
    if (r.chance(c.crashLeader)) this.randomCrash(c, true);
    if (r.chance(c.crashInFlight)) this.targetedCrash(c, (n) => n.hasPendingWrite);
    if (r.chance(c.crashVoter)) this.targetedCrash(c, (n) => n.votedAt >= this.now - 2);
    if (r.chance(c.partition)) this.randomPartition(c);
    if (r.chance(c.stall)) this.randomStall(c);
    if (r.chance(c.confChange)) this.randomConfChange(c);
    if (r.chance(c.transfer)) this.randomTransfer();
    if (r.chance(c.campaign)) this.randomCampaign();
    if (r.chance(c.propose)) this.randomPropose();
    if (r.chance(c.read)) this.randomRead();
    if (c.loseTail && r.chance(c.loseTail)) this.randomLoseTail(c);
  }

  /**
   * A member crashes and loses the last entries of its log (they may include
   * entries it acknowledged). Until a leader restores them it may not lead
   * and votes only for a log at least as up to date as the lost one could
   * have been, so it is injected only where that leaves an electable leader:
   * one member at a time, every voter up, and every up member using the
   * committed configuration (a membership change in flight, with a removed
   * member already shut down, could otherwise leave no quorum in the
   * configuration the others still use). Losing more than that can lose
   * committed entries, by design, and is not simulated.
   */
  private randomLoseTail(c: Chaos): void {
    if ([...this.nodes.values()].some((n) => n.disk.hardState.noVoteUntil)) return;
    const voters = this.history.conf.voters;
    if (voters.length < 3 || voters.some((id) => !this.nodes.get(id)?.up)) return;
    const committed = fmtConf(this.history.conf);
    if (this.upNodes().some((n) => fmtConf(n.status().conf) !== committed)) return;
    // Keep some log: a member that lost even its founding conf changes would not know it is a voter.
    const targets = this.upNodes().filter((n) => n.disk.entries.length >= 4);
    if (!targets.length) return;
    const target = this.rng.pick(targets);
    this.loseTail(target.id, this.rng.range(1, 3));
    target.restartAt = this.now + this.rng.range(c.quickRestart[0], c.quickRestart[1]);
  }

  private upNodes(): SimNode[] {
    return [...this.nodes.values()].filter((n) => n.up);
  }

  private randomCrash(c: Chaos, leaderOnly: boolean): void {
    const target = leaderOnly ? this.leader() : this.upNodes().length ? this.rng.pick(this.upNodes()) : undefined;
    if (!target) return;
    const voters = this.history.conf.voters;
    if (voters.includes(target.id)) {
      const down = voters.filter((id) => !this.nodes.get(id)?.up).length;
      if (down + 1 > Math.floor((voters.length - 1) / 2) && !this.rng.chance(c.majorityCrash)) return;
    }
    this.crash(target.id);
    target.restartAt = this.now + this.rng.range(c.downtime[0], c.downtime[1]);
  }

  /** Crashes a member caught at an interesting moment; it comes back quickly. */
  private targetedCrash(c: Chaos, caught: (n: SimNode) => boolean): void {
    const targets = this.upNodes().filter(caught);
    if (!targets.length) return;
    const n = this.rng.pick(targets);
    this.crash(n.id);
    n.restartAt = this.now + this.rng.range(c.quickRestart[0], c.quickRestart[1]);
  }

  private randomPartition(c: Chaos): void {
    const r = this.rng;
    if (this.net.partitioned && r.chance(0.3)) {
      this.healAt = 0;
      this.heal();
      return;
    }
    const ids = [...this.nodes.values()].filter((n) => !n.removed).map((n) => n.id);
    const leader = this.leader();
    switch (r.int(4)) {
      case 0: {
        // A random split into two sides.
        const shuffled = r.shuffle([...ids]);
        const k = r.range(1, shuffled.length - 1);
        this.partition(shuffled.slice(0, k), shuffled.slice(k));
        break;
      }
      case 1: {
        // The leader (or some member) alone.
        this.partition([leader?.id ?? r.pick(ids)]);
        break;
      }
      case 2: {
        // The leader in a minority with a few followers.
        const others = r.shuffle(ids.filter((id) => id !== leader?.id));
        const side = others.slice(0, r.int(Math.max(1, Math.floor(ids.length / 2))));
        this.partition([...(leader ? [leader.id] : []), ...side]);
        break;
      }
      default: {
        // One-way link failures.
        for (let i = r.range(1, 3); i > 0; i--) {
          const from = r.pick(ids);
          const to = r.pick(ids);
          if (from !== to) this.net.cut(from, to);
        }
        this.stats.partitions++;
        this.event(() => `partition ${this.net.describe()}`);
      }
    }
    this.healAt = this.now + r.range(c.partitionTime[0], c.partitionTime[1]);
  }

  private randomStall(c: Chaos): void {
    const up = this.upNodes();
    if (!up.length) return;
    const n = this.rng.pick(up);
    n.stalledUntil = this.now + this.rng.range(c.stallTime[0], c.stallTime[1]);
    this.stats.stalls++;
    this.event(() => `${n.id}'s disk stalls until step ${n.stalledUntil}`);
  }

  private randomConfChange(c: Chaos): void {
    const leader = this.leader();
    if (!leader) return;
    const conf = leader.status().conf;
    const members = conf.voters.length + conf.learners.length;
    const choices: (() => ConfChange)[] = [];
    if (members < this.opts.founders + 2) {
      choices.push(() => {
        const spare = [...this.nodes.values()].find((n) => !n.removed && !conf.voters.includes(n.id) && !conf.learners.includes(n.id));
        return { type: ConfChangeType.AddLearner, nodeId: (spare ?? this.createMember()).id, context: EMPTY };
      });
    }
    if (conf.learners.length && conf.voters.length < this.opts.founders + 1) {
      choices.push(() => ({ type: ConfChangeType.AddNode, nodeId: this.rng.pick(conf.learners), context: EMPTY }));
    }
    if (conf.voters.length > 3) {
      choices.push(() => {
        const target = this.rng.chance(c.removeLeader) ? leader.id : this.rng.pick(conf.voters);
        return { type: ConfChangeType.RemoveNode, nodeId: target, context: EMPTY };
      });
    }
    if (conf.learners.length && this.rng.chance(0.2)) {
      choices.push(() => ({ type: ConfChangeType.RemoveNode, nodeId: this.rng.pick(conf.learners), context: EMPTY }));
    }
    if (!choices.length) return;
    this.proposeConfChange(this.rng.pick(choices)());
  }

  private randomTransfer(): void {
    const leader = this.leader();
    if (!leader) return;
    const voters = leader.status().conf.voters.filter((id) => id !== leader.id);
    if (voters.length) this.transferLeader(leader.id, this.rng.pick(voters));
  }

  private randomCampaign(): void {
    const up = this.upNodes();
    if (up.length) this.campaign(this.rng.pick(up).id);
  }

  private randomPropose(): void {
    const up = this.upNodes();
    if (up.length) this.propose(this.rng.pick(up).id);
  }

  private randomRead(): void {
    const up = this.upNodes();
    if (up.length) this.readIndex(this.rng.pick(up).id);
  }

  private randomValue(): string {
    const n = this.rng.int(24);
    let s = '';
    for (let i = 0; i < n; i++) s += String.fromCharCode(97 + this.rng.int(26));
    return s;
  }

  /** All members up, one leader, everything committed and applied everywhere. */
  private converged(): boolean {
    const conf = this.history.conf;
    const leader = this.leader();
    if (!leader || !conf.voters.includes(leader.id)) return false;
    const ls = leader.status();
    if (ls.commit !== ls.lastIndex || !sameConf(ls.conf, conf)) return false;
    for (const id of [...conf.voters, ...conf.learners]) {
      const n = this.nodes.get(id);
      if (!n || !n.up || n.hasPendingWrite) return false;
      const s = n.status();
      if (s.applied !== ls.commit || s.lastIndex !== ls.lastIndex || n.sm!.applied !== ls.commit) return false;
    }
    return true;
  }

  private checkConvergence(): void {
    const h = this.history;
    const conf = h.conf;
    const top = h.committed[h.maxApplied];
    for (const id of [...conf.voters, ...conf.learners]) {
      const sm = this.node(id).sm!;
      if (sm.applied !== h.maxApplied || sm.hash !== top.hash) {
        throw new Violation('convergence', `${id} ends at ${sm.applied} with state ${sm.hash}; expected ${h.maxApplied} with ${top.hash}`);
      }
    }
    for (const [seq, p] of this.proposals) {
      if (!p.acked) continue;
      const c = h.committed[p.acked];
      if (!c || !c.key.startsWith(`${EntryType.Normal}:${seq}:`)) {
        throw new Violation('durability', `proposal ${seq}, acknowledged at index ${p.acked}, is not there at the end`);
      }
    }
    if (this.stats.acked < this.opts.minAcked) {
      throw new Violation('progress', `only ${this.stats.acked} of ${this.stats.proposals} proposals acknowledged (minimum ${this.opts.minAcked})`);
    }
  }

  private guarded<T>(fn: () => T): T {
    try {
      return fn();
    } catch (e) {
      if (e instanceof RaftError) throw e;
      throw this.failure(e);
    }
  }

  private failure(e: unknown): SimFailure {
    if (e instanceof SimFailure) return e;
    const o = this.opts;
    if (e instanceof Violation) return new SimFailure(o.seed, this.now, e.kind, e.detail, o.reproduce);
    const err = e as Error;
    return new SimFailure(o.seed, this.now, 'harness', err?.stack ?? String(e), o.reproduce);
  }
}

function fmtMessage(m: Message): string {
  const parts = [`${MessageType[m.type]} t${m.term}`];
  if (m.type === MessageType.App) {
    parts.push(`prev ${m.index}/${m.logTerm} commit ${m.commit}`);
    if (m.entries.length) parts.push(`ents ${m.entries.map((e) => `${e.index}/${e.term}`).join(',')}`);
  } else if (m.type === MessageType.Snap) {
    parts.push(`snap ${m.snapshot?.index}/${m.snapshot?.term} [${m.snapOffset}+${m.snapData.length}/${m.snapTotal}]`);
  } else {
    if (m.index || m.logTerm) parts.push(`index ${m.index} logTerm ${m.logTerm}`);
    if (m.commit) parts.push(`commit ${m.commit}`);
  }
  if (m.reject) parts.push(`reject hint ${m.rejectHint}`);
  if (m.context.length) parts.push(`ctx ${dec.decode(m.context)}`);
  return parts.join(' ');
}
