// The seeded PRNG of the Raft simulator, shared: one seed gives one run.
export { Rng } from '../test/support/raft-sim/rng.ts';
