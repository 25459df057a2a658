// The register model for ConfigMap keys, and the preparation of recorded
// histories for it.
//
// Every key is an independent register (P-compositionality): its state is the
// current value, or null while the key is absent. Every write writes a value
// unique in the history, so a value identifies the write (and the
// resourceVersion) that produced it.
//
//   read              → { value }         ok iff value === state
//   write value       → { ok: true }      state := value
//   cas from → to     → { ok: true }      ok iff state === from; state := to
//                     → { ok: false }     definite failure (409): ok iff state !== from
//   write/cas         → { unknown: true } outcome unknown (timeout, 503): took effect
//                                         at some point after the call, or never; the
//                                         operation must have return: Infinity.
//
// A cas whose outcome is unknown and that takes effect requires state === from;
// as the search may also leave it out, the model accepts it in any state and
// applies it only when state === from.
//
// Usage: checkRegisterHistory(history, { initial, timeoutMs }) prepares the
// recorded history (prepareHistory) and checks it (checkOperations with
// registerModel).
//
// prepareHistory marks writes (and cas) whose value no operation ever reads
// or compares against (`unobserved: true`); the model then writes the
// placeholder UNOBSERVED instead of the value. No step can tell those values
// apart, so this changes no verdict, but configurations that differ only in
// which unobserved value is current become one, and unknown-outcome writes of
// unobserved values become interchangeable (Model.interchangeKey).
import {
  type CheckOptions,
  type CheckResult,
  checkOperations,
  type Model,
  type Operation,
} from './linearizability.ts';

export type RegisterValue = string | null;

export type RegisterInput =
  | { op: 'read'; key: string }
  | { op: 'write'; key: string; value: string; unobserved?: boolean }
  /** Compare-and-set: `from` is the value the client read (null: the key must be absent, a create). */
  | { op: 'cas'; key: string; from: RegisterValue; to: string; unobserved?: boolean };

export type RegisterOutput = { value: RegisterValue } | { ok: boolean } | { unknown: true };

export type RegisterOp = Operation<RegisterInput, RegisterOutput>;

/** Values of keys before the history starts; keys not listed start absent (null). */
export type RegisterInitial = Readonly<Record<string, RegisterValue>>;

function isUnknown(o: RegisterOutput): o is { unknown: true } {
  return (o as { unknown?: unknown }).unknown === true;
}

function badOutput(input: RegisterInput, output: RegisterOutput): TypeError {
  return new TypeError(`register: output ${JSON.stringify(output)} does not fit input ${JSON.stringify(input)}`);
}

/**
 * The state after a write marked `unobserved` (see prepareHistory): stands
 * for any value that no operation reads or compares against.
 */
export const UNOBSERVED = '\u0000unobserved';

function hashValue(v: RegisterValue): string {
  return v === null ? '\u0000' : `=${v}`;
}

/** `'a'`, `absent` for null. */
export function formatValue(v: RegisterValue): string {
  if (v === null) return 'absent';
  if (v === UNOBSERVED) return 'a value no operation observed';
  return /^[\w.:@/+-]*$/.test(v) ? `'${v}'` : JSON.stringify(v);
}

/** The register model; `initial` gives keys' values before the history (default: absent). */
export function registerModel(initial: RegisterInitial = {}): Model<RegisterValue, RegisterInput, RegisterOutput> {
  return {
    partitionNoun: 'key',
    partition(ops) {
      const byKey = new Map<string, RegisterOp[]>();
      for (const op of ops) {
        const list = byKey.get(op.input.key);
        if (list) list.push(op);
        else byKey.set(op.input.key, [op]);
      }
      return [...byKey.values()];
    },
    partitionName(ops) {
      return ops.length > 0 ? ops[0].input.key : '';
    },
    init(ops) {
      const key = ops?.[0]?.input.key;
      return key !== undefined && Object.hasOwn(initial, key) ? initial[key] : null;
    },
    step(state, input, output) {
      switch (input.op) {
        case 'read':
          if ('value' in output) return { ok: output.value === state, state };
          if (isUnknown(output)) return { ok: true, state }; // normally dropped by prepareHistory
          throw badOutput(input, output);
        case 'write': {
          const value = input.unobserved ? UNOBSERVED : input.value;
          if (isUnknown(output)) return { ok: true, state: value };
          if ('ok' in output) return { ok: true, state: output.ok ? value : state };
          throw badOutput(input, output);
        }
        case 'cas': {
          const to = input.unobserved ? UNOBSERVED : input.to;
          if (isUnknown(output)) return { ok: true, state: state === input.from ? to : state };
          if ('ok' in output) {
            return output.ok ? { ok: state === input.from, state: to } : { ok: state !== input.from, state };
          }
          throw badOutput(input, output);
        }
        default:
          throw new TypeError(`register: unknown operation ${JSON.stringify(input)}`);
      }
    },
    equal: (a, b) => a === b,
    hash: hashValue,
    requires(input, output) {
      if (input.op === 'read') return 'value' in output ? hashValue(output.value) : undefined;
      if (input.op === 'cas' && 'ok' in output && output.ok) return hashValue(input.from);
      return undefined;
    },
    produces(input, output) {
      if (input.op === 'read' || ('ok' in output && !output.ok)) return undefined;
      if (input.unobserved) return hashValue(UNOBSERVED);
      return hashValue(input.op === 'write' ? input.value : input.to);
    },
    describe(input, output) {
      const unknown = isUnknown(output) ? ' (outcome unknown)' : '';
      switch (input.op) {
        case 'read':
          return `read → ${'value' in output ? formatValue(output.value) : '?'}${unknown}`;
        case 'write':
          return `write ${formatValue(input.value)}${unknown}${'ok' in output && !output.ok ? ' (failed)' : ''}`;
        case 'cas':
          return `cas ${formatValue(input.from)}→${formatValue(input.to)}${
            unknown || ('ok' in output ? (output.ok ? ' ok' : ' failed') : '')
          }`;
        default:
          return JSON.stringify(input);
      }
    },
    describeState: formatValue,
    explainStep(state, input, output) {
      const now = `the state is ${formatValue(state)}`;
      if (input.op === 'read' && 'value' in output) return `requires ${formatValue(output.value)} but ${now}`;
      if (input.op === 'cas' && 'ok' in output) {
        return output.ok
          ? `requires ${formatValue(input.from)} but ${now}`
          : `requires a state other than ${formatValue(input.from)} (it failed) but ${now}`;
      }
      return `is not possible when ${now}`;
    },
    readOnly(input, output) {
      if (input.op === 'read') return true;
      return input.op === 'cas' && 'ok' in output && !output.ok;
    },
    interchangeKey(input, output) {
      if (!isUnknown(output)) return undefined;
      if (input.op === 'write' && input.unobserved) return 'write';
      if (input.op === 'cas' && input.unobserved) return `cas ${JSON.stringify(input.from)}`;
      return undefined;
    },
  };
}

export interface PrepareOptions {
  /** Keys' values before the history (as given to registerModel). */
  initial?: RegisterInitial;
  /**
   * Apply the sound simplifications of operations with an unknown outcome
   * described at prepareHistory (default true).
   */
  simplify?: boolean;
}

/**
 * Turns a recorded history into one for checkOperations with registerModel:
 *
 *  - reads whose outcome is unknown are dropped (they constrain nothing);
 *  - writes that definitely failed ({ ok: false }) are dropped (no effect);
 *  - writes and cas whose outcome is unknown get return = Infinity.
 *
 * With `simplify` (default), it then rewrites the history in ways that do not
 * change whether it is linearizable but make it much cheaper to check:
 *
 *  - a write or cas whose value no operation reads or has as a cas `from` is
 *    marked `unobserved` (the model writes a placeholder, see UNOBSERVED);
 *  - one of those whose outcome is unknown is dropped when no cas of that key
 *    failed ({ ok: false }) at or after its call: taking effect, it would
 *    only have hidden the previous value, until the next write, from
 *    operations that do not look at it;
 *  - an operation with an unknown outcome whose value no other operation
 *    wrote, observed by a read or a successful cas, must have taken effect
 *    before the first of those returned: that becomes its return time, so the
 *    search handles it like a completed operation.
 *
 * Returns new operation objects where it changes them; the input is not modified.
 */
export function prepareHistory(history: readonly RegisterOp[], opts: PrepareOptions = {}): RegisterOp[] {
  return prepare(history, opts, new Map());
}

/** prepareHistory, recording in `origin` the recorded operation each new one stands for. */
function prepare(history: readonly RegisterOp[], opts: PrepareOptions, origin: Map<RegisterOp, RegisterOp>): RegisterOp[] {
  const derive = (from: RegisterOp, changes: Partial<RegisterOp>): RegisterOp => {
    const op = { ...from, ...changes };
    origin.set(op, origin.get(from) ?? from);
    return op;
  };
  const out: RegisterOp[] = [];
  for (const op of history) {
    const unknown = isUnknown(op.output);
    if (op.input.op === 'read' && unknown) continue;
    if (op.input.op === 'write' && 'ok' in op.output && !op.output.ok) continue;
    out.push(unknown && op.return !== Infinity ? derive(op, { return: Infinity }) : op);
  }
  if (opts.simplify === false) return out;

  interface KeyFacts {
    /** Values read, or compared against (cas `from`). */
    tested: Set<RegisterValue>;
    /** Value → earliest return of a read returning it or a successful cas from it. */
    observedBy: Map<RegisterValue, number>;
    /** Value → number of operations that may have written it. */
    writers: Map<string, number>;
    /** Latest return of a failed cas. */
    lastFailedCas: number;
  }
  const facts = new Map<string, KeyFacts>();
  const factsOf = (key: string): KeyFacts => {
    let f = facts.get(key);
    if (!f) {
      f = { tested: new Set(), observedBy: new Map(), writers: new Map(), lastFailedCas: -Infinity };
      facts.set(key, f);
    }
    return f;
  };
  const observe = (f: KeyFacts, v: RegisterValue, at: number): void => {
    const seen = f.observedBy.get(v);
    if (seen === undefined || at < seen) f.observedBy.set(v, at);
  };
  for (const op of out) {
    const f = factsOf(op.input.key);
    const { input, output } = op;
    if (input.op === 'read') {
      if ('value' in output) {
        f.tested.add(output.value);
        observe(f, output.value, op.return);
      }
      continue;
    }
    const failed = 'ok' in output && !output.ok;
    if (input.op === 'cas') {
      f.tested.add(input.from);
      if (!failed && !isUnknown(output)) observe(f, input.from, op.return);
      if (failed && op.return > f.lastFailedCas) f.lastFailedCas = op.return;
    }
    if (!failed) {
      const written = input.op === 'write' ? input.value : input.to;
      f.writers.set(written, (f.writers.get(written) ?? 0) + 1);
    }
  }

  const initial = opts.initial ?? {};
  const result: RegisterOp[] = [];
  for (const op of out) {
    const input = op.input;
    if (input.op === 'read' || ('ok' in op.output && !op.output.ok)) {
      result.push(op);
      continue;
    }
    const f = factsOf(input.key);
    const value = input.op === 'write' ? input.value : input.to;
    if (!f.tested.has(value) && !f.tested.has(UNOBSERVED)) {
      // Nobody looks at this value.
      if (op.return === Infinity && f.lastFailedCas < op.call) continue;
      result.push(derive(op, { input: { ...input, unobserved: true } }));
      continue;
    }
    if (op.return === Infinity) {
      const bound = f.observedBy.get(value);
      const initialValue = Object.hasOwn(initial, input.key) ? initial[input.key] : null;
      if (bound !== undefined && bound >= op.call && f.writers.get(value) === 1 && initialValue !== value) {
        result.push(derive(op, { return: bound }));
        continue;
      }
    }
    result.push(op);
  }
  return result;
}

export interface RegisterCheckOptions extends CheckOptions, PrepareOptions {}

/**
 * prepareHistory, then checkOperations with registerModel(initial). The
 * operations of a violation (longestPrefix, stuckAt) are the recorded ones
 * from `history`, not their prepared copies.
 */
export function checkRegisterHistory(history: readonly RegisterOp[], opts: RegisterCheckOptions = {}): CheckResult {
  const origin = new Map<RegisterOp, RegisterOp>();
  const result = checkOperations(registerModel(opts.initial), prepare(history, opts, origin), opts);
  if (result.ok !== false) return result;
  const recorded = (op: RegisterOp): RegisterOp => origin.get(op) ?? op;
  return { ...result, longestPrefix: result.longestPrefix.map(recorded), stuckAt: result.stuckAt.map(recorded) };
}
