// Linearizability checking of recorded histories, in the style of Porcupine
// (github.com/anishathalye/porcupine):
//
//  - Wing & Gong's search: operations become call and return events sorted by
//    time in a doubly linked list; the search repeatedly picks an operation
//    whose call precedes the first remaining return, applies it to the
//    sequential model, lifts its two events out of the list (and puts them
//    back when it backtracks: removal keeps the removed node's links, so
//    undoing in reverse order is O(1)), and backtracks when the first
//    remaining event is a return (that operation had to take effect before it
//    returned, and nothing allowed it to);
//  - Lowe's memoization: a configuration (set of linearized operations, model
//    state) already explored is not explored again; the set is a bitset
//    (Uint32Array, stored trimmed of its all-ones prefix) with an incremental
//    Zobrist hash, so a step costs O(1) plus a hash-map lookup;
//  - P-compositionality: the model may partition the history (for a
//    key-value store: per key) and every partition is checked on its own;
//  - operations whose outcome is unknown (a timeout, a 503 after the request
//    was sent) have `return: Infinity`: they may take effect at any point
//    after their call, or never. The search treats them as optional: it tries
//    them only after the completed operations that could come next, and it is
//    done once every completed operation is linearized.
//
// Beyond Porcupine, the search prunes without losing linearizations (each
// rule keeps, for any configuration from which the history can be completed,
// at least one way to complete it):
//
//  - a configuration that has applied a superset of the optional operations
//    of an explored configuration with the same completed operations and an
//    equal state is dominated by it and not explored;
//  - an optional operation that, right after another optional one, leads to
//    the state it would lead to without it is not tried there (the sibling
//    that skips the first one covers it); of optional operations the model
//    declares interchangeable, only the earliest-called unused one is tried;
//  - an operation the model declares read-only (a read) is linearized as soon
//    as the model accepts it, without trying alternatives;
//  - with Model.requires/produces, a configuration is abandoned as soon as a
//    pending completed operation requires a state that nothing left can
//    produce (a read of a value already overwritten, when values are unique).
//
// Ties: an operation that returns at the same instant another is invoked is
// treated as concurrent with it (clocks with millisecond resolution cannot
// order them), which can only make the check more permissive, never report a
// violation that is not one.

/** One operation of a history, as a client saw it. */
export interface Operation<I, O> {
  /** The client (process) that issued it; used in explanations only. */
  clientId: number;
  input: I;
  /** Invocation time, monotonic milliseconds. */
  call: number;
  output: O;
  /**
   * Response time, monotonic milliseconds, >= call. Infinity when the outcome
   * is unknown: the operation may then take effect at any point after its
   * call, or never. Its output must describe that (e.g. { unknown: true }),
   * and the model accept it wherever the operation could have taken effect.
   */
  return: number;
}

/** A sequential specification of the object the history operated on. */
export interface Model<S, I, O> {
  /**
   * Splits a history into independent sub-histories (P-compositionality),
   * e.g. one per key. Without it the whole history is one partition.
   */
  partition?(ops: Operation<I, O>[]): Operation<I, O>[][];
  /** Name of a partition in results and explanations (e.g. its key); default: its index. */
  partitionName?(ops: readonly Operation<I, O>[]): string;
  /** What a partition is, for explanations ("key k3: …"); default 'partition'. */
  partitionNoun?: string;
  /**
   * Initial state. The checker passes the partition's operations so that
   * per-partition initial states (e.g. per key) are possible; models may
   * ignore the argument.
   */
  init(partition?: readonly Operation<I, O>[]): S;
  /** Whether `output` is a possible response to `input` in `state`, and the state after it. */
  step(state: S, input: I, output: O): { ok: boolean; state: S };
  equal(a: S, b: S): boolean;
  /** A string equal for equal states; speeds up memoization (without it, states of one set of operations are compared with `equal`). */
  hash?(s: S): string;
  /** One operation, e.g. "read → 'a'". */
  describe(input: I, output: O): string;
  /** A state, e.g. "'a'". */
  describeState(s: S): string;
  /** Why `step(state, input, output)` is not ok, e.g. "requires 'b' but the state is 'a'". */
  explainStep?(state: S, input: I, output: O): string;
  /**
   * For an operation whose outcome is unknown: a key shared by operations
   * that have the same effect in every state (e.g. writes of values that no
   * operation ever reads), or undefined. The search then only ever applies
   * the earliest-called unused operation of a key, which loses no
   * linearization (any of them could stand in for a later one) and avoids
   * trying every permutation of them.
   */
  interchangeKey?(input: I, output: O): string | undefined;
  /**
   * Whether the operation leaves the state unchanged (step returns an equal
   * state) in every state that accepts it: a read, a failed conditional
   * write. The search then linearizes such an operation as soon as the model
   * accepts it, without trying alternatives, as moving it earlier cannot
   * invalidate a linearization.
   */
  readOnly?(input: I, output: O): boolean;
  /**
   * With `produces` and `hash`: when the model accepts the operation only in
   * states of one hash (a read of 'a': the state 'a'), that hash.
   */
  requires?(input: I, output: O): string | undefined;
  /**
   * With `requires` and `hash`: the hash of the state the operation leaves
   * when it changes the state (a write of 'a': 'a'), or undefined when it
   * never changes it. The model promises that whenever step(s, …) returns a
   * state s2 with hash(s2) !== hash(s), produces(…) === hash(s2). The search
   * then abandons a configuration as soon as a pending completed operation
   * requires a state that is not the current one and that no operation left
   * produces, instead of when that operation's return comes up.
   */
  produces?(input: I, output: O): string | undefined;
}

export type CheckResult =
  | { ok: true }
  | {
      ok: false;
      /** The partition found not linearizable (e.g. the key). */
      partition: string;
      /** Readable account of the violation. */
      explanation: string;
      /** The longest linearizable prefix the search found in that partition, in linearization order. */
      longestPrefix: Operation<any, any>[];
      /**
       * The completed operations that could come next after that prefix, none
       * of which can: the model refuses each, or accepting it would leave a
       * pending operation impossible.
       */
      stuckAt: Operation<any, any>[];
    }
  | { ok: 'unknown'; reason: string };

export interface CheckOptions {
  /**
   * Give up after this long and return { ok: 'unknown' }. Partitions are
   * checked smallest first, and a violation found before the deadline is
   * returned.
   */
  timeoutMs?: number;
  /** Filled in with the effort the check took. */
  stats?: CheckStats;
}

/** What a check cost; totals over the partitions checked. */
export interface CheckStats {
  partitions: number;
  /** Operations in the largest partition. */
  largestPartition: number;
  /** Calls of Model.step during the search. */
  steps: number;
  /** Configurations (linearized set, state) memoized. */
  configurations: number;
  /** Times the search undid a step. */
  backtracks: number;
  elapsedMs: number;
}

/**
 * Checks that `history` is linearizable with respect to `model`. Throws a
 * RangeError when an operation has invalid times (call not finite, return
 * before call).
 */
export function checkOperations<S, I, O>(
  model: Model<S, I, O>,
  history: Operation<I, O>[],
  opts: CheckOptions = {},
): CheckResult {
  let t0 = Infinity;
  for (let i = 0; i < history.length; i++) {
    const op = history[i];
    if (typeof op.call !== 'number' || !Number.isFinite(op.call)) {
      throw new RangeError(`operation ${i}: call time ${String(op.call)} is not a finite number`);
    }
    if (typeof op.return !== 'number' || Number.isNaN(op.return) || op.return < op.call) {
      throw new RangeError(`operation ${i}: return time ${String(op.return)} is not a number >= its call time ${op.call}`);
    }
    if (op.call < t0) t0 = op.call;
  }
  const start = performance.now();
  const deadline = opts.timeoutMs === undefined ? Infinity : start + Math.max(0, opts.timeoutMs);
  // Smallest partitions first: with a timeout, as many as possible get checked.
  const partitions = (model.partition ? model.partition(history.slice()) : [history.slice()])
    .map((ops, index) => ({ ops, index }))
    .filter((p) => p.ops.length > 0)
    .sort((a, b) => a.ops.length - b.ops.length);
  const stats: CheckStats = opts.stats ?? {
    partitions: 0,
    largestPartition: 0,
    steps: 0,
    configurations: 0,
    backtracks: 0,
    elapsedMs: 0,
  };
  Object.assign(stats, {
    partitions: partitions.length,
    largestPartition: 0,
    steps: 0,
    configurations: 0,
    backtracks: 0,
    elapsedMs: 0,
  });
  for (const p of partitions) if (p.ops.length > stats.largestPartition) stats.largestPartition = p.ops.length;

  for (let i = 0; i < partitions.length; i++) {
    const { ops, index } = partitions[i];
    const outcome = searchPartition(model, ops, deadline, stats);
    stats.elapsedMs = performance.now() - start;
    if (outcome.kind === 'ok') continue;
    const name = model.partitionName ? model.partitionName(ops) : String(index);
    if (outcome.kind === 'timeout') {
      const elapsed = Math.round(performance.now() - start);
      return {
        ok: 'unknown',
        reason:
          `timed out after ${elapsed} ms (timeoutMs ${opts.timeoutMs}) while checking ` +
          `${model.partitionNoun ?? 'partition'} ${name} (${ops.length} operations); ` +
          `${i} of ${partitions.length} partitions verified (the smallest), none found not linearizable`,
      };
    }
    return explainViolation(model, ops, name, outcome, t0);
  }
  stats.elapsedMs = performance.now() - start;
  return { ok: true };
}

// ---------------------------------------------------------------------------
// The search over one partition.

type SearchOutcome =
  | { kind: 'ok' }
  | { kind: 'timeout' }
  | {
      kind: 'fail';
      /** Partition-local indices of the longest linearizable prefix found, in order. */
      prefix: number[];
      /** Sorted event position of every operation's call and return (return: MAX_POS when unknown). */
      callPos: Int32Array;
      retPos: Int32Array;
    };

const MAX_POS = 0x7fffffff;
const NIL = -1;
/** Stack frames: a completed operation chosen among others, one forced (read-only), an optional one. */
const FRAME_MAIN = 0;
const FRAME_FORCED = 1;
const FRAME_OPTIONAL = 2;
const PHASE_READ_ONLY = 0;
const PHASE_MAIN = 1;
const PHASE_OPTIONAL = 2;
const PHASE_BACKTRACK = 3;
/** Loop iterations between two looks at the clock. */
const CLOCK_EVERY = 1024;

/** One explored configuration in the memoization cache. */
interface CacheEntry<S> {
  /** The completed-operations bitset: words below `lo` all ones, above `hi` all zeros, `words` = lo..hi. */
  lo: number;
  hi: number;
  words: Uint32Array;
  state: S;
  /** Optional (unknown-outcome) operations applied, sorted; null when none. */
  optional: Int32Array | null;
  next: CacheEntry<S> | null;
}

function searchPartition<S, I, O>(
  model: Model<S, I, O>,
  ops: Operation<I, O>[],
  deadline: number,
  stats: CheckStats,
): SearchOutcome {
  const n = ops.length;

  // Completed operations ("finite", must be linearized) and optional ones.
  const finiteOf = new Int32Array(n).fill(NIL);
  const unkOf = new Int32Array(n).fill(NIL);
  const fOps: number[] = [];
  const uOps: number[] = [];
  for (let i = 0; i < n; i++) {
    if (ops[i].return === Infinity) {
      unkOf[i] = uOps.length;
      uOps.push(i);
    } else {
      finiteOf[i] = fOps.length;
      fOps.push(i);
    }
  }
  const nf = fOps.length;
  const nu = uOps.length;

  // Events sorted by time; at equal times calls first, then by history order.
  const nev = n + nf;
  const evOp = new Int32Array(nev);
  const evRet = new Uint8Array(nev);
  const evTime = new Float64Array(nev);
  for (let i = 0, e = 0; i < n; i++) {
    evOp[e] = i;
    evTime[e++] = ops[i].call;
    if (finiteOf[i] !== NIL) {
      evOp[e] = i;
      evRet[e] = 1;
      evTime[e++] = ops[i].return;
    }
  }
  const order = new Int32Array(nev);
  for (let e = 0; e < nev; e++) order[e] = e;
  order.sort((a, b) => evTime[a] - evTime[b] || evRet[a] - evRet[b] || evOp[a] - evOp[b]);
  const callPos = new Int32Array(n);
  const retPos = new Int32Array(n).fill(MAX_POS);
  for (let p = 0; p < nev; p++) {
    const e = order[p];
    if (evRet[e]) retPos[evOp[e]] = p;
    else callPos[evOp[e]] = p;
  }
  if (nf === 0) return { kind: 'ok' };

  // The list of completed operations' events: entries 1..2nf in time order, 0 the head.
  const N = 2 * nf + 1;
  const next = new Int32Array(N);
  const prev = new Int32Array(N);
  const entFinite = new Int32Array(N); // finite index of the entry's operation
  const entMatch = new Int32Array(N); // call entry: its return entry; return entry: NIL
  const entPos = new Int32Array(N);
  {
    const callEntry = new Int32Array(nf);
    let k = 1;
    for (let p = 0; p < nev; p++) {
      const e = order[p];
      const f = finiteOf[evOp[e]];
      if (f === NIL) continue;
      entFinite[k] = f;
      entPos[k] = p;
      if (evRet[e]) {
        entMatch[k] = NIL;
        entMatch[callEntry[f]] = k;
      } else {
        callEntry[f] = k;
      }
      k++;
    }
    for (let i = 0; i < N; i++) {
      next[i] = i + 1 < N ? i + 1 : NIL;
      prev[i] = i - 1;
    }
  }

  // The list of optional operations by call time: entries 1..nu, 0 the head.
  const uN = nu + 1;
  const uNext = new Int32Array(uN);
  const uPrev = new Int32Array(uN);
  const uEntOp = new Int32Array(uN); // optional index (into uOps)
  const uEntCall = new Int32Array(uN);
  {
    const byCall = Array.from({ length: nu }, (_, k) => k).sort((a, b) => callPos[uOps[a]] - callPos[uOps[b]]);
    for (let j = 0; j < nu; j++) {
      uEntOp[j + 1] = byCall[j];
      uEntCall[j + 1] = callPos[uOps[byCall[j]]];
    }
    for (let i = 0; i < uN; i++) {
      uNext[i] = i + 1 < uN ? i + 1 : NIL;
      uPrev[i] = i - 1;
    }
  }

  // Read-only completed operations.
  const readOnly = new Uint8Array(nf);
  let anyReadOnly = false;
  if (model.readOnly) {
    for (let f = 0; f < nf; f++) {
      const op = ops[fOps[f]];
      if (model.readOnly(op.input, op.output)) {
        readOnly[f] = 1;
        anyReadOnly = true;
      }
    }
  }

  // Interchangeable optional operations: class ids, ranks by call within the
  // class, and how many of each class are applied (always the first ones).
  const uClass = new Int32Array(nu).fill(NIL);
  const uRank = new Int32Array(nu);
  let classUsed = new Int32Array(0);
  if (model.interchangeKey && nu > 0) {
    const ids = new Map<string, number>();
    const sizes: number[] = [];
    for (let j = 1; j < uN; j++) {
      const k = uEntOp[j];
      const op = ops[uOps[k]];
      const key = model.interchangeKey(op.input, op.output);
      if (key === undefined) continue;
      let id = ids.get(key);
      if (id === undefined) {
        id = sizes.length;
        ids.set(key, id);
        sizes.push(0);
      }
      uClass[k] = id;
      uRank[k] = sizes[id]++;
    }
    classUsed = new Int32Array(sizes.length);
  }

  // Linearized sets. Completed: bitset with `lo` (first word not full) and
  // `hi` (last word not empty) kept up to date, and a Zobrist hash (h1, h2).
  const W = (nf + 31) >>> 5;
  const fBits = new Uint32Array(W);
  const lastFull = nf % 32 === 0 ? 0xffffffff : ((1 << nf % 32) - 1) >>> 0;
  const fullAt = (w: number): number => (w === W - 1 ? lastFull : 0xffffffff);
  let lo = 0;
  let hi = -1;
  let h1 = 0;
  let h2 = 0;
  const z1 = new Uint32Array(nf);
  const z2 = new Uint32Array(nf);
  {
    let seed = 0x9e3779b9;
    const rand = (): number => {
      // splitmix32
      seed = (seed + 0x9e3779b9) | 0;
      let z = seed;
      z = Math.imul(z ^ (z >>> 16), 0x85ebca6b);
      z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35);
      return (z ^ (z >>> 16)) >>> 0;
    };
    for (let f = 0; f < nf; f++) {
      z1[f] = rand();
      z2[f] = rand();
    }
  }
  const setFinite = (f: number): void => {
    const w = f >>> 5;
    fBits[w] |= 1 << (f & 31);
    h1 ^= z1[f];
    h2 ^= z2[f];
    if (w > hi) hi = w;
    if (w === lo) while (lo < W && fBits[lo] === fullAt(lo)) lo++;
  };
  const clearFinite = (f: number): void => {
    const w = f >>> 5;
    fBits[w] &= ~(1 << (f & 31));
    h1 ^= z1[f];
    h2 ^= z2[f];
    if (w < lo) lo = w;
    if (w === hi) while (hi >= 0 && fBits[hi] === 0) hi--;
  };
  // Optional operations applied: bitset and count.
  const uBits = new Uint32Array(Math.max(1, (nu + 31) >>> 5));
  let uCount = 0;
  const optionalList = (): Int32Array => {
    const list = new Int32Array(uCount);
    let j = 0;
    for (let w = 0; w < uBits.length && j < uCount; w++) {
      let bits = uBits[w];
      while (bits !== 0) {
        const b = 31 - Math.clz32(bits & -bits);
        list[j++] = (w << 5) | b;
        bits &= bits - 1;
      }
    }
    return list;
  };

  // Doomed configurations: state keys (hashes) that pending completed
  // operations require, how many of those are left, and how many operations
  // left can produce them.
  const hashState = model.hash;
  const keyIds = new Map<string, number>();
  const opRequires = new Int32Array(n).fill(NIL);
  const opProduces = new Int32Array(n).fill(NIL);
  let requirersLeft = new Int32Array(0);
  let producersLeft = new Int32Array(0);
  let doom = false;
  if (hashState && model.requires && model.produces) {
    for (let i = 0; i < n; i++) {
      if (finiteOf[i] === NIL) continue;
      const req = model.requires(ops[i].input, ops[i].output);
      if (req === undefined) continue;
      let id = keyIds.get(req);
      if (id === undefined) keyIds.set(req, (id = keyIds.size));
      opRequires[i] = id;
    }
    if (keyIds.size > 0) {
      doom = true;
      requirersLeft = new Int32Array(keyIds.size);
      producersLeft = new Int32Array(keyIds.size);
      for (let i = 0; i < n; i++) {
        if (opRequires[i] !== NIL) requirersLeft[opRequires[i]]++;
        const prod: string | undefined = model.produces(ops[i].input, ops[i].output);
        const id = prod === undefined ? undefined : keyIds.get(prod);
        if (id !== undefined) {
          opProduces[i] = id;
          producersLeft[id]++;
        }
      }
    }
  }
  /** Key id of a state hash, NIL when no operation requires it. */
  const keyOf = (h: string): number => keyIds.get(h) ?? NIL;
  const doomedKey = (k: number, stateKey: number): boolean =>
    k !== NIL && k !== stateKey && producersLeft[k] === 0 && requirersLeft[k] > 0;
  /** Counts operation i as linearized; true if that, with the state key after it, dooms the configuration. */
  const take = (i: number, fromKey: number, toKey: number): boolean => {
    const req = opRequires[i];
    const prod = opProduces[i];
    if (req !== NIL) requirersLeft[req]--;
    if (prod !== NIL) producersLeft[prod]--;
    return doomedKey(fromKey, toKey) || doomedKey(prod, toKey);
  };
  const untake = (i: number): void => {
    if (opRequires[i] !== NIL) requirersLeft[opRequires[i]]++;
    if (opProduces[i] !== NIL) producersLeft[opProduces[i]]++;
  };

  // Memoization cache.
  const cache = new Map<number, CacheEntry<S>>();
  /**
   * Records the current configuration (linearized sets as they are now, with
   * `state` of hash `h`); false when it, or a configuration dominating it,
   * was explored.
   */
  const visit = (state: S, h: string): boolean => {
    let sh = 0;
    if (hashState) sh = fnv1a(h);
    const key = ((h1 ^ sh) >>> 0) * 2097152 + ((h2 ^ Math.imul(sh, 0x9e3779b1)) >>> 11);
    const head = cache.get(key) ?? null;
    for (let c = head; c !== null; c = c.next) {
      if (c.lo !== lo || c.hi !== hi) continue;
      const words = c.words;
      let same = true;
      for (let j = 0; j < words.length; j++) {
        if (words[j] !== fBits[lo + j]) {
          same = false;
          break;
        }
      }
      if (!same || !model.equal(c.state, state)) continue;
      const opt = c.optional;
      if (opt === null) return false;
      let subset = true;
      for (let j = 0; j < opt.length; j++) {
        const k = opt[j];
        if ((uBits[k >>> 5] & (1 << (k & 31))) === 0) {
          subset = false;
          break;
        }
      }
      if (subset) return false;
    }
    configurations++;
    cache.set(key, {
      lo,
      hi,
      words: hi >= lo ? fBits.slice(lo, hi + 1) : EMPTY_WORDS,
      state,
      optional: uCount === 0 ? null : optionalList(),
      next: head,
    });
    return true;
  };

  // The stack of linearized operations.
  const stKind = new Uint8Array(n);
  const stEntry = new Int32Array(n); // list entry of the operation
  const stOp = new Int32Array(n); // partition-local operation index
  const stBarrier = new Int32Array(n); // for optional frames: the barrier they were tried against
  const stState: (S | undefined)[] = new Array(n);
  let depth = 0;
  let finiteDone = 0;
  // Longest prefix (by completed operations linearized), maintained lazily:
  // best[0..lowWater) still equals the stack.
  const best = new Int32Array(n);
  let bestDepth = 0;
  let bestFinite = 0;
  let lowWater = 0;

  let steps = 0;
  let backtracks = 0;
  let configurations = 0;
  const done = (outcome: SearchOutcome): SearchOutcome => {
    stats.steps += steps;
    stats.backtracks += backtracks;
    stats.configurations += configurations;
    return outcome;
  };

  let state = model.init(ops);
  const initHash = hashState ? hashState(state) : '';
  let curKey = doom ? keyOf(initHash) : NIL;
  const stKey = new Int32Array(n); // state key before the frame's operation
  if (doom) {
    for (let k = 0; k < keyIds.size; k++) {
      if (doomedKey(k, curKey)) return done({ kind: 'fail', prefix: [], callPos, retPos });
    }
  }
  visit(state, initHash);

  // A configuration is explored in up to three passes over what can come
  // next: read-only operations (the first the model accepts is forced), then
  // the other completed operations in call order, then the optional ones.
  let phase = anyReadOnly ? PHASE_READ_ONLY : PHASE_MAIN;
  let cur = next[0];
  let u = NIL;
  let barrier = 0;
  let tick = 0;
  for (;;) {
    if (++tick === CLOCK_EVERY) {
      tick = 0;
      if (performance.now() > deadline) return done({ kind: 'timeout' });
    }

    if (phase === PHASE_READ_ONLY || phase === PHASE_MAIN) {
      const match = entMatch[cur];
      if (match === NIL) {
        // A return: every completed operation that can come next was tried.
        if (phase === PHASE_READ_ONLY) {
          phase = PHASE_MAIN;
          cur = next[0];
        } else {
          barrier = entPos[cur];
          phase = PHASE_OPTIONAL;
          u = uNext[0];
        }
        continue;
      }
      const f = entFinite[cur];
      if ((readOnly[f] === 1) !== (phase === PHASE_READ_ONLY)) {
        // Read-only operations are tried (and failed) in the first pass only.
        cur = next[cur];
        continue;
      }
      const i = fOps[f];
      const op = ops[i];
      const r = model.step(state, op.input, op.output);
      steps++;
      if (!r.ok) {
        cur = next[cur];
        continue;
      }
      const h = hashState ? hashState(r.state) : '';
      const newKey = doom ? keyOf(h) : NIL;
      let fresh = false;
      if (!doom || !take(i, curKey, newKey)) {
        setFinite(f);
        fresh = visit(r.state, h);
        if (!fresh) clearFinite(f);
      }
      if (!fresh) {
        if (doom) untake(i);
        // A forced operation that leads nowhere new: this configuration is a dead end.
        if (phase === PHASE_READ_ONLY) phase = PHASE_BACKTRACK;
        else cur = next[cur];
        continue;
      }
      stKind[depth] = phase === PHASE_READ_ONLY ? FRAME_FORCED : FRAME_MAIN;
      stEntry[depth] = cur;
      stOp[depth] = i;
      stState[depth] = state;
      stKey[depth] = curKey;
      depth++;
      state = r.state;
      curKey = newKey;
      // Lift the call and its return out of the list.
      next[prev[cur]] = next[cur];
      prev[next[cur]] = prev[cur];
      next[prev[match]] = next[match];
      if (next[match] !== NIL) prev[next[match]] = prev[match];
      finiteDone++;
      if (finiteDone === nf) return done({ kind: 'ok' });
      if (finiteDone > bestFinite) {
        for (let j = lowWater; j < depth; j++) best[j] = stOp[j];
        bestDepth = depth;
        bestFinite = finiteDone;
        lowWater = depth;
      }
      cur = next[0];
      phase = anyReadOnly ? PHASE_READ_ONLY : PHASE_MAIN;
      continue;
    }

    if (phase === PHASE_OPTIONAL) {
      if (u === NIL || uEntCall[u] >= barrier) {
        phase = PHASE_BACKTRACK;
        continue;
      }
      const k = uEntOp[u];
      const cls = uClass[k];
      if (cls !== NIL && uRank[k] !== classUsed[cls]) {
        // An earlier-called unused operation of its class stands in for it.
        u = uNext[u];
        continue;
      }
      const op = ops[uOps[k]];
      const r = model.step(state, op.input, op.output);
      steps++;
      if (!r.ok) {
        u = uNext[u];
        continue;
      }
      if (depth > 0 && stKind[depth - 1] === FRAME_OPTIONAL && (cls === NIL || cls !== uClass[unkOf[stOp[depth - 1]]])) {
        // The previous operation was optional too: if this one leads to the
        // same state without it, this configuration is dominated by the
        // sibling that skips the previous one (tried from the parent).
        const r0 = model.step(stState[depth - 1] as S, op.input, op.output);
        steps++;
        if (r0.ok && model.equal(r0.state, r.state)) {
          u = uNext[u];
          continue;
        }
      }
      const i = uOps[k];
      const h = hashState ? hashState(r.state) : '';
      const newKey = doom ? keyOf(h) : NIL;
      let fresh = false;
      if (!doom || !take(i, curKey, newKey)) {
        uBits[k >>> 5] |= 1 << (k & 31);
        uCount++;
        fresh = visit(r.state, h);
        if (!fresh) {
          uBits[k >>> 5] &= ~(1 << (k & 31));
          uCount--;
        }
      }
      if (!fresh) {
        if (doom) untake(i);
        u = uNext[u];
        continue;
      }
      stKind[depth] = FRAME_OPTIONAL;
      stEntry[depth] = u;
      stOp[depth] = i;
      stBarrier[depth] = barrier;
      stState[depth] = state;
      stKey[depth] = curKey;
      depth++;
      state = r.state;
      curKey = newKey;
      if (cls !== NIL) classUsed[cls]++;
      uNext[uPrev[u]] = uNext[u];
      if (uNext[u] !== NIL) uPrev[uNext[u]] = uPrev[u];
      cur = next[0];
      phase = anyReadOnly ? PHASE_READ_ONLY : PHASE_MAIN;
      continue;
    }

    // PHASE_BACKTRACK: nothing (more) can come next here; undo the last step.
    if (depth === 0) break;
    backtracks++;
    depth--;
    if (depth < lowWater) lowWater = depth;
    state = stState[depth] as S;
    stState[depth] = undefined;
    if (doom) {
      untake(stOp[depth]);
      curKey = stKey[depth];
    }
    const entry = stEntry[depth];
    const kind = stKind[depth];
    if (kind === FRAME_OPTIONAL) {
      uNext[uPrev[entry]] = entry;
      if (uNext[entry] !== NIL) uPrev[uNext[entry]] = entry;
      const k = uEntOp[entry];
      uBits[k >>> 5] &= ~(1 << (k & 31));
      uCount--;
      if (uClass[k] !== NIL) classUsed[uClass[k]]--;
      u = uNext[entry];
      barrier = stBarrier[depth];
      phase = PHASE_OPTIONAL;
      continue;
    }
    const match = entMatch[entry];
    next[prev[match]] = match;
    if (next[match] !== NIL) prev[next[match]] = match;
    next[prev[entry]] = entry;
    prev[next[entry]] = entry;
    clearFinite(entFinite[entry]);
    finiteDone--;
    if (kind === FRAME_MAIN) {
      cur = next[entry];
      phase = PHASE_MAIN;
    }
    // A forced operation failed: so does the configuration before it (stay in PHASE_BACKTRACK).
  }
  return done({ kind: 'fail', prefix: Array.from(best.subarray(0, bestDepth)), callPos, retPos });
}

const EMPTY_WORDS = new Uint32Array(0);

/** 32-bit FNV-1a of a string's UTF-16 code units. */
function fnv1a(s: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < s.length; i++) {
    h ^= s.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return h >>> 0;
}

// ---------------------------------------------------------------------------
// Explanations.

/** How many operations of the prefix an explanation shows (the last ones). */
const PREFIX_SHOWN = 8;
/** How many operations that cannot come next an explanation lists. */
const STUCK_SHOWN = 24;
/** How many unknown-outcome operations that could come next an explanation lists. */
const DEAD_ENDS_SHOWN = 4;

function listAtMost(items: string[], max: number, sep: string): string {
  if (items.length <= max) return items.join(sep);
  return `${items.slice(0, max).join(sep)}${sep}… ${items.length - max} more`;
}

function explainViolation<S, I, O>(
  model: Model<S, I, O>,
  ops: Operation<I, O>[],
  name: string,
  outcome: Extract<SearchOutcome, { kind: 'fail' }>,
  t0: number,
): CheckResult {
  const { prefix, callPos, retPos } = outcome;
  const describeOp = (op: Operation<I, O>): string =>
    `${model.describe(op.input, op.output)} by c${op.clientId} @${fmtMs(op.call - t0)}–${
      op.return === Infinity ? '∞' : fmtMs(op.return - t0)
    }ms`;

  // Replay the prefix.
  const init = model.init(ops);
  let state = init;
  const done = new Uint8Array(ops.length);
  for (const i of prefix) {
    state = model.step(state, ops[i].input, ops[i].output).state;
    done[i] = 1;
  }
  // What could come next: operations called before the first remaining return.
  let barrier = MAX_POS;
  for (let i = 0; i < ops.length; i++) if (!done[i] && retPos[i] < barrier) barrier = retPos[i];
  const candidates: number[] = [];
  for (let i = 0; i < ops.length; i++) if (!done[i] && callPos[i] < barrier) candidates.push(i);
  candidates.sort((a, b) => callPos[a] - callPos[b]);

  // Doomed configurations (see Model.produces): a pending completed operation
  // requires a state that is not the current one and that nothing left produces.
  const { hash, requires, produces } = model;
  const doomCheck = hash && requires && produces;
  /** A pending completed operation that can never take effect once `taken` is linearized too, in `after`. */
  const doomedBy = (after: S, taken: number): number | undefined => {
    if (!doomCheck) return undefined;
    const now = hash(after);
    const producible = new Set<string>();
    for (let i = 0; i < ops.length; i++) {
      if (done[i] || i === taken) continue;
      const p = produces(ops[i].input, ops[i].output);
      if (p !== undefined) producible.add(p);
    }
    for (let i = 0; i < ops.length; i++) {
      if (done[i] || i === taken || ops[i].return === Infinity) continue;
      const r = requires(ops[i].input, ops[i].output);
      if (r !== undefined && r !== now && !producible.has(r)) return i;
    }
    return undefined;
  };

  const noun = model.partitionNoun ?? 'partition';
  let text = `${noun} ${name}: `;
  if (prefix.length === 0) {
    text += `the state is initially ${model.describeState(init)} and`;
  } else {
    const shown = prefix.slice(-PREFIX_SHOWN).map((i) => describeOp(ops[i]));
    const hidden = prefix.length - shown.length;
    if (hidden > 0) shown.unshift(`… ${hidden} earlier operation${hidden === 1 ? '' : 's'}`);
    text += `after [${shown.join(', ')}] the state is ${model.describeState(state)} and`;
  }

  const stuck: number[] = [];
  const doomedNow = doomedBy(state, -1);
  if (doomedNow !== undefined) {
    // Only at the start: the search never enters such a configuration.
    stuck.push(doomedNow);
    text += ` ${describeOp(ops[doomedNow])} can never take effect: no operation produces the state it requires`;
  } else {
    const reasons: string[] = [];
    const deadEnds: string[] = [];
    /** Victim → the completed operations that would make it impossible. */
    const dooming = new Map<number, string[]>();
    for (const i of candidates) {
      const op = ops[i];
      const r = model.step(state, op.input, op.output);
      if (!r.ok) {
        stuck.push(i);
        const why = model.explainStep
          ? model.explainStep(state, op.input, op.output)
          : `is not possible in state ${model.describeState(state)}`;
        reasons.push(`${describeOp(op)} ${why}`);
        continue;
      }
      const victim = doomedBy(r.state, i);
      if (victim !== undefined) {
        // An unknown-outcome operation that would do this is simply never
        // applied here; a completed one cannot come next.
        if (op.return === Infinity) continue;
        stuck.push(i);
        const list = dooming.get(victim);
        const what = `${describeOp(op)} (→ ${model.describeState(r.state)})`;
        if (list) list.push(what);
        else dooming.set(victim, [what]);
        continue;
      }
      // Only an operation whose outcome is unknown: the search records the
      // prefix when it first gets that far, so a completed operation that
      // could come next would have made it longer. Say nothing of no-ops.
      if (model.equal(r.state, state)) continue;
      deadEnds.push(`${describeOp(op)} (→ ${model.describeState(r.state)})`);
    }
    for (const [victim, list] of dooming) {
      reasons.push(
        `${listAtMost(list, STUCK_SHOWN, ', ')} ${list.length === 1 ? 'is' : 'are each'} possible, but then ` +
          `${describeOp(ops[victim])} could never take effect (no operation left produces the state it requires)`,
      );
    }
    text += ` no operation can come next: ${listAtMost(reasons, STUCK_SHOWN, '; ')}`;
    if (deadEnds.length > 0) {
      text +=
        `; operations with an unknown outcome could take effect here (${listAtMost(deadEnds, DEAD_ENDS_SHOWN, '; ')}), ` +
        `but no completed operation can follow them either`;
    }
  }
  text += `. Longest linearizable prefix: ${prefix.length} of the ${ops.length} operations on this ${noun}.`;

  return {
    ok: false,
    partition: name,
    explanation: text,
    longestPrefix: prefix.map((i) => ops[i]),
    stuckAt: stuck.map((i) => ops[i]),
  };
}

function fmtMs(ms: number): string {
  return String(Math.round(ms * 10) / 10);
}
