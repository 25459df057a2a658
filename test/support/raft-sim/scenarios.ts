// Scripted histories driven through the Simulation API, for the targeted
// tests: no chaos, a reliable network (1 step per message) and elections by
// hand where the script needs a particular member to win.
import { type Message, MessageType, type NodeId, RaftError, Role } from '../../../raft/types.ts';
import { scriptedOptions } from './options.ts';
import { Simulation } from './simulation.ts';

/** Makes `id` campaign (again every 10 steps, as a timeout would) until it leads; returns its term. */
export function elect(sim: Simulation, id: NodeId, maxSteps = 200): number {
  const n = sim.node(id);
  const leads = () => n.up && n.role === Role.Leader;
  for (let waited = 0; waited < maxSteps && !leads(); waited += 10) {
    sim.campaign(id);
    sim.stepUntil(leads, 10);
  }
  sim.runUntil(leads, 0, `${id} to win an election`);
  return n.term;
}

/** Proposes on `id` (which must lead) and steps until the entry is applied on it. */
export function write(sim: Simulation, id: NodeId, maxSteps = 100): number {
  const r = sim.propose(id);
  if (r instanceof RaftError) throw r;
  sim.runUntil(() => sim.acked(r.seq) > 0, maxSteps, `proposal ${r.seq} on ${id} to be applied`);
  return sim.acked(r.seq);
}

export interface Figure8Result {
  sim: Simulation;
  /** The contested index ("7" below). */
  index: number;
  /** Whether leader 1 applied its earlier-term entry there in step 3. */
  committedEarly: boolean;
  /** Term of 5's entry at the contested index, which must win in the end. */
  winnerTerm: number;
}

/**
 * Figure 8 of the Raft paper, with the new-leader no-op taken into account.
 * Five members; say the log ends at 6 once 1 leads and its no-op is applied.
 *  1. 1 replicates entry 7 (its term, a) to 2 only, and crashes.
 *  2. 5 leads term b > a with votes from 3 and 4 and appends its no-op at 7
 *     (term b) on its own disk only; 5 crashes.
 *  3. 1 comes back and leads term c > b. Its App messages carrying its own
 *     no-op (8, term c) are lost, so 3 and 4 get entry 7 (term a) alone: 7 is
 *     then on 1, 2, 3 and 4, a majority, but it is from an earlier term. Raft
 *     must not commit it by counting replicas; with unsafeCommitPreviousTerms
 *     the core does, and applies it.
 *  4. 1 crashes; 5 comes back with the most up-to-date last term (b), leads
 *     a later term and overwrites index 7 everywhere.
 * With the unsafe rule a SimFailure is thrown along the way; otherwise the
 * caller can finish() the run, which must converge.
 */
export function figure8(unsafe: boolean): Figure8Result {
  const sim = new Simulation(
    scriptedOptions(5, {
      electionTick: 1000, heartbeatTick: 1, preVote: false, checkQuorum: false, maxSizePerMsg: 1,
      unsafeCommitPreviousTerms: unsafe,
    }),
  );
  const n = (id: NodeId) => sim.node(id);
  const all = ['1', '2', '3', '4', '5'];
  // Step 1.
  elect(sim, '1');
  const base = n('1').status().lastIndex;
  sim.runUntil(() => all.every((id) => n(id).sm!.applied >= base), 50, "1's no-op applied everywhere");
  sim.partition(['1', '2'], ['3', '4', '5']);
  const p = sim.propose('1');
  if (p instanceof RaftError || !p.result) throw new Error(`figure8: 1 refuses the proposal: ${String(p)}`);
  const index = p.result.index;
  sim.runUntil(() => n('2').disk.lastIndex() === index, 20, `entry ${index} on 2`);
  sim.crash('1');
  // Step 2.
  sim.net.filter = (m) => !(m.from === '5' && m.type === MessageType.App);
  const winnerTerm = elect(sim, '5');
  sim.runUntil(() => n('5').disk.term(index) === winnerTerm, 20, `5's no-op at ${index} on its disk`);
  sim.crash('5');
  sim.net.filter = undefined;
  sim.heal();
  // Step 3.
  sim.restart('1');
  sim.runFor(5);
  const lost = (m: Message) =>
    m.type === MessageType.App && m.entries.some((e) => e.index > index) && (sim.nodes.get(m.to)?.disk.lastIndex() ?? 0) >= index;
  sim.net.filter = (m) => !lost(m);
  elect(sim, '1');
  const early = p.result.term;
  sim.runUntil(() => ['3', '4'].every((id) => n(id).disk.term(index) === early), 50, `entry ${index} (term ${early}) on 3 and 4`);
  sim.runFor(20);
  const committedEarly = n('1').sm!.applied >= index;
  // Step 4.
  sim.crash('1');
  sim.net.filter = undefined;
  sim.restart('5');
  sim.runFor(5);
  elect(sim, '5');
  const end = n('5').status().lastIndex;
  sim.runUntil(() => ['2', '3', '4'].every((id) => n(id).sm!.applied >= end), 100, `5's new no-op applied on 2, 3 and 4`);
  sim.restart('1');
  return { sim, index, committedEarly, winnerTerm };
}

export interface LostTailResult {
  sim: Simulation;
  /** The committed index member 2 lost. */
  index: number;
  /** Whether members 2 and 3 elected a leader while 1 was down. */
  leaderWithout1: boolean;
}

/**
 * A member loses a tail it acknowledged (a damaged last record truncated at
 * start). Three members:
 *  1. 1 leads; 3 is cut off; entry I is committed by 1 and 2 and applied on 1.
 *  2. 2 crashes and loses I from its disk; 1 crashes; the network heals; 2 restarts.
 *  3. 2 and 3 are up, neither has I. Without the marker (`marker` false) they
 *     elect a leader that writes its no-op at I over the committed entry: the
 *     simulator reports a safety violation. With it 2 does not campaign and
 *     does not vote for 3 (whose log ends before I), so no leader can be
 *     elected without 1.
 *  4. 1 restarts and leads; 2 gets I back and may vote again.
 */
export function lostTail(marker: boolean, trace = false): LostTailResult {
  const sim = new Simulation(scriptedOptions(3, {}, { trace }));
  const n = (id: NodeId) => sim.node(id);
  elect(sim, '1');
  const base = n('1').status().lastIndex;
  sim.runUntil(() => ['1', '2', '3'].every((id) => n(id).sm!.applied >= base), 50, "1's no-op applied everywhere");
  sim.partition(['1', '2'], ['3']);
  const index = write(sim, '1');
  sim.runUntil(() => n('2').disk.lastIndex() >= index, 20, `entry ${index} on 2's disk`);
  // Step 2. 1's messages still in flight would give 2 the entry back: they are lost.
  sim.crash('1');
  sim.net.filter = (m) => m.from !== '1';
  sim.loseTail('2', n('2').disk.lastIndex() - index + 1, marker);
  sim.heal();
  sim.restart('2');
  // Step 3: plenty of election timeouts.
  sim.runFor(300);
  const leaderWithout1 = sim.leader() !== undefined;
  // Step 4.
  sim.net.filter = undefined;
  sim.restart('1');
  sim.runUntil(() => sim.leader() !== undefined, 300, 'a leader once 1 is back');
  sim.runUntil(() => n('2').up && n('2').disk.lastIndex() >= index && !n('2').disk.hardState.noVoteUntil, 300,
    `2's log restored to ${index} and its marker cleared`);
  return { sim, index, leaderWithout1 };
}
