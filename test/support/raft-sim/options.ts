// Knobs of one simulated run, and how a seed picks them. Every run is a pure
// function of its options, and the options of a random run are a pure
// function of (seed, profile): SIM_SEED=n reproduces a run exactly.
import type { NetworkFaults } from './network.ts';
import type { EarlySend, NodeConfig } from './node.ts';
import { Rng } from '../../../harness/rng.ts';

/** Per-step probabilities of the random faults and client operations. */
export interface Chaos {
  propose: number;
  read: number;
  /** Per-member probability of a tick in a step, drawn per member in this range (clock skew). */
  tick: [number, number];
  crash: number;
  crashLeader: number;
  /** Crash a member whose Ready write is still in flight (so it loses that write). */
  crashInFlight: number;
  /** Crash a member that just campaigned or granted a vote (it restarts quickly, still in that term). */
  crashVoter: number;
  /** Downtime of those targeted crashes: a supervisor restarting the process. */
  quickRestart: [number, number];
  /** Chance that a crash ignores the rule of keeping a quorum of voters up. */
  majorityCrash: number;
  downtime: [number, number];
  partition: number;
  partitionTime: [number, number];
  stall: number;
  stallTime: [number, number];
  confChange: number;
  /** Chance that a voter removal targets the leader. */
  removeLeader: number;
  transfer: number;
  campaign: number;
  /** Crash a member and damage the tail of its log (Disk.loseTail); it restarts quickly. */
  loseTail: number;
}

export interface SimOptions {
  seed: number;
  /** Founding voters (3 or 5). */
  founders: number;
  /** Steps of chaos before the final heal. */
  steps: number;
  raft: NodeConfig['raft'];
  /** Each member snapshots every K applied entries, K drawn per member in this range. */
  compactEvery: [number, number];
  earlySend: EarlySend;
  /** Probability that a Ready's write is still in flight at a step (a slow disk). */
  slowDisk: number;
  net: NetworkFaults;
  /** Random faults and client load; undefined for scripted scenarios. */
  chaos: Chaos | undefined;
  /** Step budget to converge after healing everything. */
  finalSteps: number;
  /** Minimum proposals acknowledged (applied on their proposer) for the run to count. */
  minAcked: number;
  /** Keep the last events for failure reports. */
  trace: boolean;
  /** The command line that reproduces the run. */
  reproduce: string;
}

/**
 * `async`: the default faults with asynchronous storage writes on;
 * `async-bug-follower`, `async-bug-leader`: the same with a planted bug,
 * acknowledging before durability (RaftConfig.unsafeAckBeforeDurable).
 */
export type Profile = 'default' | 'figure8' | 'async' | 'async-bug-follower' | 'async-bug-leader';

export const TEST_FILE = 'test/raft-sim.test.ts';

/** Chaos steps of a random run unless told otherwise (SIM_STEPS). */
export const DEFAULT_STEPS = 3000;

export function reproduceCommand(seed: number, profile: Profile): string {
  const env = profile === 'default' ? `SIM_SEED=${seed}` : `SIM_SEED=${seed} SIM_PROFILE=${profile}`;
  return `${env} npx tap ${TEST_FILE}`;
}

/** Options of a scripted scenario: reliable network, no chaos, every member ticks every step. */
export function scriptedOptions(founders: number, raft: Partial<NodeConfig['raft']> = {}, more: Partial<SimOptions> = {}): SimOptions {
  const opts: SimOptions = {
    seed: 1,
    founders,
    steps: 0,
    raft: { electionTick: 10, heartbeatTick: 1, preVote: true, checkQuorum: true, snapshotChunkSize: 64, ...raft },
    compactEvery: [1 << 30, 1 << 30],
    earlySend: 'none',
    slowDisk: 0,
    net: { drop: 0, duplicate: 0, minDelay: 1, maxDelay: 1, longDelay: 0, longDelayMax: 1 },
    chaos: undefined,
    finalSteps: 2000,
    minAcked: 0,
    trace: false,
    reproduce: `npx tap ${TEST_FILE}`,
  };
  return { ...opts, ...more };
}

/**
 * The options seed `seed` runs with. Odd seeds run 3 founders, even seeds 5.
 * `figure8` (always 3 founders) turns on the unsafe commit rule and tunes the
 * faults toward the figure-8 history: leaders crash and get cut off often,
 * messages are lost often, replication goes one entry per message.
 */
export function seedOptions(seed: number, profile: Profile = 'default', steps = DEFAULT_STEPS): SimOptions {
  const r = new Rng(seed ^ 0x51a0c0de);
  const founders = seed % 2 === 1 ? 3 : 5;
  const opts: SimOptions = {
    seed,
    founders,
    steps,
    raft: {
      electionTick: 10,
      heartbeatTick: r.pick([1, 1, 2, 3]),
      preVote: r.chance(0.7),
      checkQuorum: r.chance(0.7),
      maxSizePerMsg: r.pick([1, 64, 256, 4096, 1 << 20]),
      maxInflightMsgs: r.pick([1, 2, 4, 16, 256]),
      maxUncommittedSize: r.pick([512, 4096, 64 << 20]),
      snapshotChunkSize: r.pick([16, 64, 64, 128, 1024]),
    },
    compactEvery: [15, 50],
    earlySend: r.pick<EarlySend>(['none', 'sendable', 'sendable', 'leader']),
    slowDisk: r.pick([0, 0.1, 0.3]),
    net: {
      drop: r.pick([0, 0.01, 0.05, 0.1]),
      duplicate: r.pick([0, 0.01, 0.05]),
      minDelay: 1,
      maxDelay: r.pick([1, 2, 3, 5, 8]),
      longDelay: r.pick([0, 0.01, 0.03]),
      longDelayMax: 30,
    },
    chaos: {
      propose: r.pick([0.1, 0.3, 0.6]),
      read: r.pick([0.02, 0.1]),
      tick: [r.pick([0.5, 0.8, 1]), 1],
      crash: r.pick([0.002, 0.005, 0.01]),
      crashLeader: r.pick([0.001, 0.003]),
      crashInFlight: r.pick([0, 0.01, 0.03]),
      crashVoter: r.pick([0, 0.03, 0.1]),
      quickRestart: [1, 5],
      majorityCrash: 0.1,
      downtime: [5, r.pick([50, 200])],
      partition: r.pick([0.002, 0.005, 0.01]),
      partitionTime: [10, r.pick([60, 200])],
      stall: r.pick([0, 0.003, 0.01]),
      stallTime: [5, 40],
      confChange: r.pick([0.005, 0.02]),
      removeLeader: 0.3,
      transfer: r.pick([0.002, 0.01]),
      campaign: r.pick([0, 0.002]),
      // Not drawn from r, so that every other option of a seed stays as it was.
      loseTail: 0.002,
    },
    finalSteps: 3000,
    minAcked: Math.floor(steps / 100),
    trace: false,
    reproduce: reproduceCommand(seed, profile),
  };
  if (profile.startsWith('async')) {
    opts.raft.asyncStorageWrites = true;
    // Slow disks, where several writes are in flight at once and a write
    // may still be in flight when the acknowledgements of others arrive.
    opts.slowDisk = [0.1, 0.3, 0.5][seed % 3];
    if (profile === 'async-bug-follower') opts.raft.unsafeAckBeforeDurable = 'follower';
    if (profile === 'async-bug-leader') opts.raft.unsafeAckBeforeDurable = 'leader';
  }
  if (profile === 'figure8') {
    // Tuned by measurement: about one seed in twenty hits a violation.
    opts.founders = 3;
    opts.raft.unsafeCommitPreviousTerms = true;
    opts.raft.maxSizePerMsg = 1;
    opts.raft.maxInflightMsgs = r.pick([1, 2]);
    opts.net.drop = 0.2;
    opts.compactEvery = [40, 80];
    const c = opts.chaos!;
    c.propose = 0.6;
    c.crash = 0.005;
    c.crashLeader = 0.04;
    c.crashInFlight = 0;
    c.crashVoter = 0;
    c.majorityCrash = 0.3;
    c.downtime = [5, 40];
    c.partition = 0.02;
    c.partitionTime = [5, 40];
    c.campaign = 0.02;
    c.confChange = 0;
    c.loseTail = 0;
    opts.minAcked = 0;
  }
  return opts;
}
