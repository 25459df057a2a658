// Deterministic simulation of the Raft core (test/support/raft-sim.ts): many
// seeded random runs with every fault, a search showing the simulator finds
// the figure-8 bug when the core is told to commit like that, and scripted
// scenarios for PreVote, CheckQuorum, leadership transfer, snapshot
// catch-up, ReadIndex and membership changes.
//
//   SIM_SEEDS=n   number of random seeds (default below; odd seeds run 3 members, even 5)
//   SIM_ASYNC_SEEDS=n  random seeds run with asynchronous storage writes (profile async)
//   SIM_STEPS=n   chaos steps per run (default 3000)
//   SIM_SEED=n    run only seed n (SIM_PROFILE=figure8 | async | async-bug-follower | async-bug-leader)
//   SIM_TRACE=n   with SIM_SEED: print the last n trace lines of the run
//   SIM_WORKERS=n worker threads (default: up to 2)
import t from 'tap';
import { ConfChangeType, EMPTY, RaftError, Role } from '../raft/types.ts';
import {
  DEFAULT_STEPS, type Profile, runSeed, scriptedOptions, seedOptions, SimFailure, Simulation, traceOf, Violation,
} from './support/raft-sim.ts';
import { type FailureReport, runBatch } from './support/raft-sim/batch.ts';
import { Disk } from './support/raft-sim/disk.ts';
import { History } from './support/raft-sim/history.ts';
import { figure8, lostTail, write } from './support/raft-sim/scenarios.ts';

/**
 * Random seeds in `npm test`: about 60 s of CPU, ~35 s on an idle 2-core
 * machine (2 workers), to keep the suite within its budget. Longer searches:
 * `SIM_SEEDS=5000 npx tap test/raft-sim.test.ts` (and `npm run chaos`).
 */
const DEFAULT_SEEDS = 600;
/** Seeds the figure-8 search may try (it stops at the first violation). */
const FIGURE8_SEEDS = 400;
/** Random seeds with asynchronous storage writes in `npm test` (more: SIM_ASYNC_SEEDS=2000, as for SIM_SEEDS). */
const DEFAULT_ASYNC_SEEDS = 60;
/** Seeds each planted-bug search may try (it stops at the first violation; about one seed in six finds one). */
const ASYNC_BUG_SEEDS = 200;

const env = (name: string): number | undefined => (process.env[name] ? Number(process.env[name]) : undefined);
const SEEDS = env('SIM_SEEDS') ?? DEFAULT_SEEDS;
const ASYNC_SEEDS = env('SIM_ASYNC_SEEDS') ?? DEFAULT_ASYNC_SEEDS;
const STEPS = env('SIM_STEPS') ?? DEFAULT_STEPS;
const WORKERS = env('SIM_WORKERS');
const ONLY = env('SIM_SEED');
const PROFILE = (process.env.SIM_PROFILE ?? 'default') as Profile;
const SAFETY = ['election-safety', 'log-matching', 'leader-completeness', 'state-machine-safety', 'durability', 'linearizability', 'core-error'];

const seedRange = (from: number, to: number, keep: (s: number) => boolean = () => true) =>
  Array.from({ length: to - from + 1 }, (_, i) => from + i).filter(keep);

/** The failure, plus the tail of the run's trace (a rerun: runs are deterministic). */
function explain(f: FailureReport, profile: Profile, lines = 60): string {
  const trace = traceOf(f.seed, { profile, steps: STEPS });
  const events = trace.filter((l) => !/(<-|->)/.test(l)).slice(-lines / 2);
  return `${f.message}\n--- last events ---\n${events.join('\n')}\n--- last trace lines ---\n${trace.slice(-lines / 2).join('\n')}`;
}

if (ONLY !== undefined) {
  t.test(`seed ${ONLY} (${PROFILE} profile, ${STEPS} steps)`, async (t) => {
    const lines = env('SIM_TRACE');
    if (lines) t.comment(traceOf(ONLY, { profile: PROFILE, steps: STEPS }).slice(-lines).join('\n'));
    t.comment(`options: ${JSON.stringify(seedOptions(ONLY, PROFILE, STEPS))}`);
    let failure: SimFailure | undefined;
    try {
      t.comment(`stats: ${JSON.stringify(runSeed(ONLY, { profile: PROFILE, steps: STEPS }).stats)}`);
    } catch (e) {
      if (!(e instanceof SimFailure)) throw e;
      failure = e;
    }
    const report = failure && explain({ seed: ONLY, kind: failure.kind, message: failure.message }, PROFILE);
    if (PROFILE === 'figure8' || PROFILE.startsWith('async-bug')) {
      // A planted bug is on: a violation is what this profile looks for.
      t.pass(failure ? `violation found:\n${report}` : 'no violation with this seed');
    } else if (report) {
      t.fail(report);
    } else {
      t.pass('the run keeps every safety property and converges');
    }
  });
} else {
  for (const [members, parity] of [[3, 1], [5, 0]] as const) {
    t.test(`random runs, ${members} founding members, all faults`, async (t) => {
      const seeds = seedRange(1, SEEDS, (s) => s % 2 === parity);
      const started = performance.now();
      const report = await runBatch(seeds, { profile: 'default', steps: STEPS, workers: WORKERS });
      for (const f of report.failures.slice(0, 3)) t.fail(explain(f, 'default'));
      t.equal(report.failures.length, 0, `${seeds.length} seeds x ${STEPS} steps keep every safety property and converge`);
      const s = report.totals;
      t.comment(
        `${seeds.length} seeds in ${((performance.now() - started) / 1000).toFixed(1)}s: ${s.steps} steps, ${s.committed} entries committed, ` +
          `${s.acked}/${s.proposals} proposals acknowledged, ${s.readsServed}/${s.reads} reads, ${s.leaders} leaders, ${s.crashes} crashes ` +
          `(${s.tailsLost} losing their log tail), ` +
          `${s.partitions} partitions, ${s.confChangesApplied} conf changes, ${s.snapshotsInstalled} snapshots installed ` +
          `(${s.snapshotChunks} chunks), ${s.transfers} transfers`,
      );
      if (report.failures.length) t.comment(`reproduce: ${report.failures.map((f) => `SIM_SEED=${f.seed}`).join(' | ')} npx tap test/raft-sim.test.ts`);
    });
  }

  t.test('random runs with asynchronous storage writes, 3 and 5 founding members, all faults', async (t) => {
    const seeds = seedRange(1, ASYNC_SEEDS);
    const started = performance.now();
    const report = await runBatch(seeds, { profile: 'async', steps: STEPS, workers: WORKERS });
    for (const f of report.failures.slice(0, 3)) t.fail(explain(f, 'async'));
    t.equal(report.failures.length, 0, `${seeds.length} seeds x ${STEPS} steps keep every safety property (and commit durability) and converge`);
    const s = report.totals;
    t.ok((s.acked ?? 0) > 0 && (s.crashes ?? 0) > 0, `the runs commit and crash (${s.acked} proposals acknowledged, ${s.crashes} crashes)`);
    t.comment(`${seeds.length} async seeds in ${((performance.now() - started) / 1000).toFixed(1)}s: ${s.committed} entries committed, ${s.crashes} crashes, ${s.snapshotsInstalled} snapshots installed`);
    if (report.failures.length) t.comment(`reproduce: ${report.failures.map((f) => `SIM_SEED=${f.seed} SIM_PROFILE=async`).join(' | ')} npx tap test/raft-sim.test.ts`);
  });

  for (const [variant, what, pattern] of [
    ['follower', 'a follower acknowledges entries its disk does not hold yet', /sends AppResp .* acknowledging entries up to \d+, but its disk ends at/],
    ['leader', "a leader counts its own log toward a commit before it is on disk", /commits \d+\/\d+, but only \[.*\] of voters \[.*\] have it on disk/],
  ] as const) {
    t.test(`planted bug, asynchronous storage writes: ${what} — the simulator catches it`, async (t) => {
      const profile = `async-bug-${variant}` as const;
      const report = await runBatch(seedRange(1, ASYNC_BUG_SEEDS), { profile, steps: STEPS, workers: WORKERS, stopAfter: 1 });
      const first = report.failures[0];
      t.ok(first, `a violation within ${ASYNC_BUG_SEEDS} seeds`);
      if (!first) return;
      t.comment(`found at seed ${first.seed} (SIM_SEED=${first.seed} SIM_PROFILE=${profile} npx tap test/raft-sim.test.ts):\n${first.message.split('\n')[0]}`);
      t.equal(first.kind, 'durability', 'it is a durability violation');
      t.match(first.message, pattern, 'found by the check for exactly this');
      t.doesNotThrow(() => runSeed(first.seed, { profile: 'async' }), 'the same seed without the bug passes');
    });
  }

  t.test('a seed replays identically', async (t) => {
    for (const seed of [3, 4]) {
      const a = runSeed(seed, { steps: 500 });
      const b = runSeed(seed, { steps: 500 });
      t.same(a.stats, b.stats, `seed ${seed}: same stats`);
      t.equal(a.fingerprint, b.fingerprint, `seed ${seed}: same fingerprint`);
    }
    t.not(runSeed(5, { steps: 500 }).fingerprint, runSeed(7, { steps: 500 }).fingerprint, 'different seeds, different runs');
  });

  t.test('figure 8: with unsafeCommitPreviousTerms the random search finds a violation', async (t) => {
    const report = await runBatch(seedRange(1, FIGURE8_SEEDS), { profile: 'figure8', steps: STEPS, workers: WORKERS, stopAfter: 1 });
    const first = report.failures[0];
    t.ok(first, `a violation within ${FIGURE8_SEEDS} seeds`);
    if (!first) return;
    t.comment(`figure 8 found at seed ${first.seed} (SIM_SEED=${first.seed} SIM_PROFILE=figure8 npx tap test/raft-sim.test.ts):\n${first.message}`);
    t.ok(SAFETY.includes(first.kind), `it is a safety violation (${first.kind})`);
    const safe = seedOptions(first.seed, 'figure8', STEPS);
    safe.raft.unsafeCommitPreviousTerms = false;
    t.doesNotThrow(() => new Simulation(safe).run(), 'the same seed with the safe commit rule passes');
  });

  t.test('figure 8, scripted: violation with the unsafe rule, safe without', async (t) => {
    let caught: unknown;
    try {
      figure8(true);
    } catch (e) {
      caught = e;
    }
    t.ok(
      caught instanceof SimFailure && SAFETY.includes(caught.kind),
      `the unsafe rule commits an earlier-term entry, then a leader without it is elected: ${String((caught as Error)?.message).split('\n')[0]}`,
    );
    const { sim, index, committedEarly, winnerTerm } = figure8(false);
    t.notOk(committedEarly, `the safe rule does not commit ${index} (an earlier term) by counting replicas`);
    sim.finish();
    t.equal(sim.history.committed[index]?.term, winnerTerm, `index ${index} ends as 5's entry (term ${winnerTerm}) everywhere`);
  });

  t.test('a member that lost an acknowledged tail does not lead or vote for a shorter log until it is restored: no committed entry disappears', async (t) => {
    let caught: unknown;
    try {
      lostTail(false);
    } catch (e) {
      caught = e;
    }
    t.ok(
      caught instanceof SimFailure && SAFETY.includes(caught.kind),
      `without the marker, 2 and 3 elect a leader that overwrites the committed entry: ${String((caught as Error)?.message).split('\n')[0]}`,
    );
    const { sim, index, leaderWithout1 } = lostTail(true);
    t.notOk(leaderWithout1, 'with it, 2 and 3 elect nobody while 1 is down');
    sim.finish();
    t.ok(sim.history.committed[index], `entry ${index} stays committed`);
    t.equal(sim.node('2').status().noVoteUntil, 0, '2 votes again once its log is back');
  });

  t.test('PreVote: a partitioned member rejoining does not disrupt the leader', async (t) => {
    const run = (preVote: boolean) => {
      const sim = new Simulation(scriptedOptions(3, { preVote, checkQuorum: false }));
      sim.runUntil(() => sim.leader() !== undefined, 100, 'a leader');
      const leader = sim.leader()!;
      const term = leader.term;
      const f = sim.node(leader.id === '1' ? '2' : '1');
      sim.partition([f.id]);
      sim.runFor(200);
      const isolatedTerm = f.term;
      sim.heal();
      sim.runFor(100);
      return { leader, term, f, isolatedTerm, sim };
    };
    const { leader, term, f, isolatedTerm, sim } = run(true);
    t.equal(isolatedTerm, term, 'the isolated member does not raise its term');
    t.equal(sim.leader(), leader, 'the leader keeps leading after the member rejoins');
    t.equal(leader.term, term, 'the term is unchanged');
    t.equal(f.role, Role.Follower, 'the member follows again');
    t.equal(f.status().leader, leader.id, 'it knows the leader');
    const without = run(false);
    t.ok(without.isolatedTerm > without.term, 'control: without PreVote the isolated member raises its term');
    t.ok(without.leader.term > without.term, 'control: and deposes the leader when it rejoins');
  });

  t.test('CheckQuorum: an isolated leader steps down', async (t) => {
    const run = (checkQuorum: boolean) => {
      const sim = new Simulation(scriptedOptions(3, { preVote: true, checkQuorum }));
      sim.runUntil(() => sim.leader() !== undefined, 100, 'a leader');
      const old = sim.leader()!;
      sim.partition([old.id]);
      sim.runFor(40);
      return { sim, old };
    };
    const { sim, old } = run(true);
    t.not(old.role, Role.Leader, 'the isolated leader stepped down within a few election timeouts');
    const next = sim.leader();
    t.ok(next && next !== old && next.term > old.term, 'the majority elected a new leader in a later term');
    sim.finish();
    const control = run(false);
    t.equal(control.old.role, Role.Leader, 'control: without CheckQuorum the isolated leader keeps believing it leads');
  });

  t.test('leadership transfer completes to the target, even one that lags', async (t) => {
    const sim = new Simulation(scriptedOptions(5));
    sim.runUntil(() => sim.leader() !== undefined, 100, 'a leader');
    const from = sim.leader()!;
    const term = from.term;
    const to = sim.node(from.id === '5' ? '4' : '5');
    sim.partition([to.id]);
    for (let i = 0; i < 10; i++) write(sim, from.id);
    sim.heal();
    t.equal(sim.transferLeader(from.id, to.id), undefined, 'the leader accepts the transfer');
    sim.runUntil(() => to.role === Role.Leader, 100, `${to.id} to take over`);
    t.equal(to.term, term + 1, 'the target leads the next term');
    t.equal(sim.history.leaders.get(term + 1), to.id, 'nobody else led in between');
    t.not(from.role, Role.Leader, 'the old leader stepped down');
    t.ok(write(sim, to.id) > 0, 'the new leader commits');
    sim.finish();
  });

  t.test('a follower far behind catches up through a chunked snapshot', async (t) => {
    const sim = new Simulation(scriptedOptions(3, { snapshotChunkSize: 16 }, { compactEvery: [10, 10] }));
    sim.runUntil(() => sim.leader() !== undefined, 100, 'a leader');
    const leader = sim.leader()!;
    const lagger = sim.node(leader.id === '3' ? '2' : '3');
    sim.crash(lagger.id);
    const behind = lagger.disk.lastIndex();
    for (let i = 0; i < 60; i++) write(sim, leader.id);
    t.ok(leader.disk.snapIndex > behind, `the leader compacted past the lagger (${leader.disk.snapIndex} > ${behind})`);
    const before = { ...sim.stats };
    sim.net.faults.drop = 0.1; // lose some chunks and acks on the way
    sim.restart(lagger.id);
    sim.runUntil(() => lagger.sm!.applied === leader.status().commit, 1000, 'the lagger to catch up');
    const chunks = sim.stats.snapshotChunks - before.snapshotChunks;
    t.ok(sim.stats.snapshotsInstalled > before.snapshotsInstalled, 'it installed a snapshot');
    t.ok(lagger.disk.snapIndex > behind, 'its disk now starts from the snapshot');
    t.ok(chunks > (lagger.disk.snapshot?.data.length ?? 0) / 16, `in chunks of 16 bytes (${chunks} sent)`);
    sim.finish();
  });

  t.test('ReadIndex on a follower, and no stale reads from a deposed leader', async (t) => {
    const sim = new Simulation(scriptedOptions(3, { checkQuorum: false }));
    sim.runUntil(() => sim.leader() !== undefined, 100, 'a leader');
    const leader = sim.leader()!;
    for (let i = 0; i < 5; i++) write(sim, leader.id);
    const follower = sim.node(leader.id === '1' ? '2' : '1');
    const commitAtIssue = leader.status().commit;
    const ctx = sim.readIndex(follower.id);
    if (ctx instanceof RaftError) throw ctx;
    sim.runUntil(() => sim.readServed(ctx) !== undefined, 50, 'the follower read to be served');
    t.ok(sim.readServed(ctx)! >= commitAtIssue, `served at ${sim.readServed(ctx)} >= the commit index at issue (${commitAtIssue})`);
    sim.runUntil(() => follower.sm!.applied >= sim.readServed(ctx)!, 50, 'the follower to apply up to the read index');

    // The old leader, cut off, cannot confirm its leadership: it must not answer.
    sim.partition([leader.id]);
    const stale = sim.readIndex(leader.id);
    if (stale instanceof RaftError) throw stale;
    sim.runUntil(() => sim.leader() !== leader && sim.leader() !== undefined, 200, 'a new leader');
    const next = sim.leader()!;
    for (let i = 0; i < 3; i++) write(sim, next.id);
    t.equal(leader.role, Role.Leader, 'the old leader still believes it leads (no CheckQuorum)');
    t.equal(sim.readServed(stale), undefined, 'but it does not serve the read');
    sim.heal();
    sim.runFor(50);
    t.equal(sim.readServed(stale), undefined, 'not even after it learns of the new term');
    sim.finish();
  });

  t.test('membership: add a learner, promote it, remove the leader', async (t) => {
    const sim = new Simulation(scriptedOptions(3));
    sim.runUntil(() => sim.leader() !== undefined, 100, 'a leader');
    for (let i = 0; i < 5; i++) write(sim, sim.leader()!.id);
    const joiner = sim.createMember();
    const change = (type: ConfChangeType, nodeId: string) => {
      const r = sim.proposeConfChange({ type, nodeId, context: EMPTY });
      if (r instanceof RaftError) throw r;
      sim.runUntil(() => sim.history.maxApplied >= r.index && sim.leader()?.status().applied === sim.history.maxApplied, 200, `${ConfChangeType[type]} ${nodeId}`);
    };
    change(ConfChangeType.AddLearner, joiner.id);
    t.same(sim.history.conf.learners, [joiner.id], 'the joiner is a learner');
    sim.runUntil(() => joiner.sm!.applied === sim.history.maxApplied, 200, 'the learner to catch up');
    t.equal(joiner.role, Role.Learner, 'and knows it');
    change(ConfChangeType.AddNode, joiner.id);
    t.ok(sim.history.conf.voters.includes(joiner.id), 'the learner is promoted');
    const old = sim.leader()!;
    const r = sim.proposeConfChange({ type: ConfChangeType.RemoveNode, nodeId: old.id, context: EMPTY });
    if (r instanceof RaftError) throw r;
    sim.runUntil(() => sim.leader() !== undefined && sim.leader() !== old, 200, 'a new leader after removing the old one');
    t.notOk(sim.history.conf.voters.includes(old.id), 'the old leader is no longer a voter');
    t.ok(write(sim, sim.leader()!.id) > 0, 'the new configuration commits');
    sim.finish();
    t.ok(old.removed && !old.up, 'the removed leader was shut down');
  });

  t.test('the checks themselves catch violations', async (t) => {
    const h = new History();
    h.leader(3, 'a');
    t.throws(() => h.leader(3, 'b'), Violation, 'two leaders in one term');
    const disk = new Disk('x');
    disk.save({ entries: [], committedEntries: [], messages: [], readStates: [], mustSync: true, hardState: { term: 2, vote: 'a', commit: 0 } });
    t.throws(
      () => disk.save({ entries: [], committedEntries: [], messages: [], readStates: [], mustSync: true, hardState: { term: 2, vote: 'b', commit: 0 } }),
      Violation,
      'a changed vote within a term',
    );
    const e = (index: number, term: number, data: string) => ({ index, term, type: 0, data: new TextEncoder().encode(data) });
    const d1 = new Disk('1');
    const d2 = new Disk('2');
    d1.save({ entries: [e(1, 1, '1:k=a'), e(2, 2, '2:k=b')], committedEntries: [], messages: [], readStates: [], mustSync: true });
    h.persisted('1', [e(1, 1, '1:k=a'), e(2, 2, '2:k=b')], d1);
    d2.save({ entries: [e(1, 1, '1:k=z'), e(2, 2, '2:k=b')], committedEntries: [], messages: [], readStates: [], mustSync: true });
    t.throws(() => h.persisted('2', [e(1, 1, '1:k=z'), e(2, 2, '2:k=b')], d2), Violation, 'two different entries at one index and term');
  });
}
