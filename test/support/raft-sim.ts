// Deterministic simulator for the Raft core (raft/core.ts): a seeded PRNG
// drives a cluster of RaftCores over a faulty network, with crashes that
// lose unpersisted writes, partitions, slow disks, membership changes,
// leadership transfers, client proposals and ReadIndex reads, and checks
// Raft's safety properties after every step. See test/raft-sim.test.ts.
//
//   const result = runSeed(42);            // throws SimFailure on a violation
//   SIM_SEED=42 npx tap test/raft-sim.test.ts
//
// Modules (test/support/raft-sim/):
//   rng.ts            the seeded PRNG (mulberry32) and its forks
//   network.ts        delays, loss, duplication, reordering, partitions, one-way cuts
//   disk.ts           a member's durable state, written only through Ready (contract checks)
//   state-machine.ts  the replicated KV map with membership and a running hash; snapshots
//   node.ts           one member: core + disk + state machine + the Ready driver loop
//   history.ts        everything observed, and the safety properties checked against it
//   simulation.ts     the cluster, the step loop, chaos, the final convergence check
//   options.ts        per-seed options and the figure-8 profile
//   scenarios.ts      scripted helpers (elect, write) and the figure-8 script
//   batch.ts          many seeds over worker threads
import { type Profile, seedOptions } from './raft-sim/options.ts';
import { type SimResult, Simulation } from './raft-sim/simulation.ts';

export { History } from './raft-sim/history.ts';
export { Network, type NetworkFaults } from './raft-sim/network.ts';
export { SimNode } from './raft-sim/node.ts';
export { type Chaos, DEFAULT_STEPS, type Profile, reproduceCommand, scriptedOptions, seedOptions, type SimOptions } from './raft-sim/options.ts';
export { Rng } from '../../harness/rng.ts';
export { type SimResult, Simulation, type SimStats } from './raft-sim/simulation.ts';
export { SimFailure, Violation, type ViolationKind } from './raft-sim/violation.ts';

export interface RunOptions {
  profile?: Profile;
  steps?: number;
  trace?: boolean;
}

/** Runs one random seed to the end; throws SimFailure on any violation. */
export function runSeed(seed: number, o: RunOptions = {}): SimResult {
  const opts = seedOptions(seed, o.profile ?? 'default', o.steps);
  opts.trace = o.trace ?? false;
  return new Simulation(opts).run();
}

/** Runs seed again with tracing to get the events leading up to its failure. */
export function traceOf(seed: number, o: RunOptions = {}): string[] {
  const opts = seedOptions(seed, o.profile ?? 'default', o.steps);
  opts.trace = true;
  const sim = new Simulation(opts);
  try {
    sim.run();
  } catch {
    // expected: the failure being traced
  }
  return sim.trace();
}
