// Errors the simulator raises. A Violation is a broken safety property or
// driver contract detected deep in a check; the simulation turns it into a
// SimFailure that names the seed, the step and how to reproduce the run.

export type ViolationKind =
  | 'election-safety'
  | 'log-matching'
  | 'leader-completeness'
  | 'state-machine-safety'
  | 'durability'
  | 'linearizability'
  | 'contract'
  | 'core-error'
  | 'liveness'
  | 'convergence'
  | 'progress'
  /** A bug in the simulator itself. */
  | 'harness';

export class Violation extends Error {
  constructor(
    readonly kind: ViolationKind,
    readonly detail: string,
  ) {
    super(`[${kind}] ${detail}`);
    this.name = 'Violation';
  }
}

export class SimFailure extends Error {
  constructor(
    readonly seed: number,
    readonly step: number,
    readonly kind: ViolationKind,
    readonly detail: string,
    readonly reproduce: string,
  ) {
    super(`raft-sim seed=${seed} step=${step} [${kind}] ${detail}\n  reproduce: ${reproduce}`);
    this.name = 'SimFailure';
  }
}
