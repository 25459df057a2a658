// The linearizability checker of the chaos suite (chaos/checker/): classic
// small histories on registers (stale reads, concurrent writes, cas, unknown
// outcomes), a generic model without hash or partitions, a randomized
// cross-check against a brute-force search, histories generated from a
// simulated atomic register (as recorded, and with one read corrupted), a
// 20,000-operation history checked in bounded time, and the timeout. Then
// the orchestrator checkers over event-stream histories, each fed a bad one.
//
//   CHECKER_SEEDS=n  random small histories cross-checked (default 1500 per generator)
import t, { type Test } from 'tap';
import {
  type CheckStats,
  checkOperations,
  type Model,
  type Operation,
} from '../chaos/checker/linearizability.ts';
import {
  checkRegisterHistory,
  prepareHistory,
  registerModel,
  type RegisterInitial,
  type RegisterOp,
  type RegisterValue,
} from '../chaos/checker/register.ts';
import type { StreamEvent } from '../chaos/checks.ts';
import { checkConvergence, checkGarbageCollected, checkNodeOvercommit, checkRolloutBounds, checkStatefulSetOrdinals } from '../chaos/orchestrator-checks.ts';

// ---------------------------------------------------------------------------
// Helpers.

const read = (c: number, key: string, value: RegisterValue, call: number, ret: number): RegisterOp => ({
  clientId: c,
  input: { op: 'read', key },
  output: { value },
  call,
  return: ret,
});
const write = (c: number, key: string, value: string, call: number, ret: number): RegisterOp => ({
  clientId: c,
  input: { op: 'write', key, value },
  output: { ok: true },
  call,
  return: ret,
});
const writeUnknown = (c: number, key: string, value: string, call: number): RegisterOp => ({
  clientId: c,
  input: { op: 'write', key, value },
  output: { unknown: true },
  call,
  return: Infinity,
});
const cas = (c: number, key: string, from: RegisterValue, to: string, ok: boolean, call: number, ret: number): RegisterOp => ({
  clientId: c,
  input: { op: 'cas', key, from, to },
  output: { ok },
  call,
  return: ret,
});
const casUnknown = (c: number, key: string, from: RegisterValue, to: string, call: number): RegisterOp => ({
  clientId: c,
  input: { op: 'cas', key, from, to },
  output: { unknown: true },
  call,
  return: Infinity,
});

/** Checks both ways: prepared (simplified) and as recorded (only unknown reads dropped). */
function check(history: RegisterOp[], initial: RegisterInitial = {}) {
  const prepared = checkRegisterHistory(history, { initial });
  const raw = checkOperations(registerModel(initial), prepareHistory(history, { initial, simplify: false }));
  return { prepared, raw };
}

function expectOk(tt: Test, history: RegisterOp[], initial: RegisterInitial = {}, what = 'linearizable') {
  const { prepared, raw } = check(history, initial);
  tt.same(prepared, { ok: true }, `${what} (prepared)`);
  tt.same(raw, { ok: true }, `${what} (as recorded)`);
}

function expectViolation(tt: Test, history: RegisterOp[], initial: RegisterInitial = {}, what = 'not linearizable') {
  const { prepared, raw } = check(history, initial);
  tt.equal(prepared.ok, false, `${what} (prepared)`);
  tt.equal(raw.ok, false, `${what} (as recorded)`);
  if (prepared.ok !== false) throw new Error('expected a violation');
  return prepared;
}

/** Deterministic PRNG (mulberry32). */
function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let x = a;
    x = Math.imul(x ^ (x >>> 15), x | 1);
    x ^= x + Math.imul(x ^ (x >>> 7), x | 61);
    return ((x ^ (x >>> 14)) >>> 0) / 4294967296;
  };
}

// ---------------------------------------------------------------------------
// Classic small histories.

t.test('stale read after a completed write', async (t) => {
  const v = expectViolation(t, [write(1, 'k', 'a', 0, 10), read(2, 'k', null, 20, 30)]);
  t.equal(v.partition, 'k');
  t.match(v.explanation, /^key k: /);
  t.match(v.explanation, /read → absent by c2 @20–30ms/);
  t.match(v.explanation, /write 'a' by c1 @0–10ms/);
  t.same(v.stuckAt, [write(1, 'k', 'a', 0, 10)], 'the write cannot come next (the read could not follow)');

  expectOk(t, [write(1, 'k', 'a', 0, 10), read(2, 'k', null, 5, 15)], {}, 'a read concurrent with the write may miss it');
  expectOk(t, [write(1, 'k', 'a', 0, 10), read(2, 'k', null, 10, 15)], {}, 'touching intervals count as concurrent');
  expectOk(t, [write(1, 'k', 'a', 0, 10), read(2, 'k', 'a', 20, 30)]);
});

t.test('explanation format', async (t) => {
  const history = [
    read(9, 'other', null, 0, 1),
    write(2, 'k3', 'a', 10, 12),
    read(1, 'k3', 'a', 13, 14),
    read(4, 'k3', 'b', 15, 16),
    write(3, 'k3', 'b', 20, 25),
  ];
  const v = expectViolation(t, history);
  t.equal(v.partition, 'k3');
  t.equal(
    v.explanation,
    "key k3: after [write 'a' by c2 @10–12ms, read → 'a' by c1 @13–14ms] the state is 'a' and no operation " +
      "can come next: read → 'b' by c4 @15–16ms requires 'b' but the state is 'a'. Longest linearizable " +
      'prefix: 2 of the 4 operations on this key.',
  );
  t.same(v.longestPrefix, [history[1], history[2]]);
  t.same(v.stuckAt, [history[3]]);

  const never = expectViolation(t, [write(1, 'k', 'a', 0, 1), read(2, 'k', 'zzz', 2, 3)]);
  t.match(never.explanation, /read → 'zzz' by c2 @2–3ms can never take effect: no operation produces the state it requires/);
});

t.test('two concurrent writes, reads observing them', async (t) => {
  const writes = [write(1, 'k', 'a', 0, 100), write(2, 'k', 'b', 0, 100)];
  expectOk(t, [
    ...writes,
    read(3, 'k', 'a', 10, 20),
    read(3, 'k', 'b', 30, 40),
    read(4, 'k', 'a', 12, 22),
    read(4, 'k', 'b', 32, 42),
  ]);
  expectOk(t, [...writes, read(3, 'k', 'b', 10, 20), read(3, 'k', 'a', 30, 40), read(4, 'k', 'a', 50, 60)]);
  const v = expectViolation(t, [
    ...writes,
    read(3, 'k', 'a', 10, 20),
    read(3, 'k', 'b', 30, 40),
    read(4, 'k', 'b', 10, 20),
    read(4, 'k', 'a', 30, 40),
  ]);
  t.equal(v.partition, 'k');
  t.ok(v.stuckAt.length > 0);
  // Both orders, but after the writes completed: the last value must stay.
  expectViolation(t, [...writes, read(3, 'k', 'a', 110, 120), read(4, 'k', 'b', 130, 140)]);
});

t.test('compare-and-set', async (t) => {
  const initial = { k: 'v0' };
  expectOk(t, [cas(1, 'k', 'v0', 'v1', true, 0, 10), cas(2, 'k', 'v0', 'v2', false, 0, 10)], initial);
  expectOk(t, [cas(1, 'k', 'v0', 'v1', true, 0, 10), cas(2, 'k', 'v1', 'v2', true, 11, 20), read(3, 'k', 'v2', 21, 22)], initial);
  const both = expectViolation(t, [cas(1, 'k', 'v0', 'v1', true, 0, 10), cas(2, 'k', 'v0', 'v2', true, 0, 10)], initial);
  t.match(both.explanation, /cas 'v0'→'v\d' ok by c\d/);
  const failedAlone = expectViolation(t, [read(1, 'k', 'v0', 0, 5), cas(1, 'k', 'v0', 'v1', false, 10, 20)], initial);
  t.match(failedAlone.explanation, /cas 'v0'→'v1' failed by c1 @10–20ms requires a state other than 'v0' \(it failed\) but the state is 'v0'/);
  expectOk(t, [read(1, 'k', 'v0', 0, 5), write(2, 'k', 'w', 6, 8), cas(1, 'k', 'v0', 'v1', false, 10, 20)], initial);
  // Success from a value already overwritten.
  expectViolation(t, [write(1, 'k', 'a', 0, 1), write(2, 'k', 'b', 2, 3), cas(3, 'k', 'a', 'c', true, 4, 5)], initial);
  // Create-if-absent.
  expectOk(t, [cas(1, 'k', null, 'a', true, 0, 1), cas(2, 'k', null, 'b', false, 0, 1), read(3, 'k', 'a', 2, 3)]);
});

t.test('operations with an unknown outcome', async (t) => {
  // Observed later: it took effect.
  expectOk(t, [writeUnknown(1, 'k', 'x', 0), read(2, 'k', 'x', 50, 60)]);
  // Never observed: it may never have taken effect.
  expectOk(t, [writeUnknown(1, 'k', 'x', 0), read(2, 'k', null, 50, 60), read(3, 'k', null, 70, 80)]);
  // Observed, then gone: nothing else wrote.
  const gone = expectViolation(t, [writeUnknown(1, 'k', 'x', 0), read(2, 'k', 'x', 10, 20), read(3, 'k', null, 30, 40)]);
  t.equal(gone.partition, 'k');
  // It cannot take effect before it was invoked.
  expectViolation(t, [read(2, 'k', 'x', 0, 5), writeUnknown(1, 'k', 'x', 10)]);
  // Late effect: it may take effect long after the client gave up.
  expectOk(t, [writeUnknown(1, 'k', 'x', 0), write(2, 'k', 'y', 10, 20), read(3, 'k', 'y', 30, 40), read(3, 'k', 'x', 50, 60)]);
  // It can explain a failed cas.
  expectOk(
    t,
    [read(1, 'k', 'v0', 0, 1), writeUnknown(2, 'k', 'x', 2), cas(1, 'k', 'v0', 'v1', false, 10, 20)],
    { k: 'v0' },
  );

  // A cas with an unknown outcome applies only from its `from`.
  expectOk(t, [casUnknown(1, 'k', 'a', 'b', 0), read(2, 'k', 'b', 10, 11)], { k: 'a' });
  expectViolation(t, [casUnknown(1, 'k', 'a', 'b', 0), write(3, 'k', 'c', 1, 2), read(2, 'k', 'b', 10, 11)], { k: 'z' });
  expectViolation(t, [write(3, 'k', 'c', 0, 1), casUnknown(1, 'k', 'a', 'b', 2), read(2, 'k', 'b', 10, 11)], { k: 'a' });
  expectOk(t, [casUnknown(1, 'k', 'a', 'b', 0), write(3, 'k', 'c', 1, 2), read(2, 'k', 'c', 10, 11)], { k: 'a' });

  // Reads with an unknown outcome constrain nothing.
  const unknownRead: RegisterOp = { ...read(5, 'k', null, 0, 1), output: { unknown: true }, return: Infinity };
  expectOk(t, [write(1, 'k', 'a', 0, 1), unknownRead, read(2, 'k', 'a', 2, 3)]);
});

t.test('prepareHistory', async (t) => {
  const unknownRead: RegisterOp = { ...read(5, 'k', null, 0, 1), output: { unknown: true } };
  const failedWrite: RegisterOp = { ...write(6, 'k', 'f', 0, 1), output: { ok: false } };
  const timedOut: RegisterOp = { ...writeUnknown(1, 'k', 'x', 0), return: 30 };
  const history = [
    unknownRead,
    failedWrite,
    timedOut, // observed by the reads below: must have taken effect by 20
    read(2, 'k', 'x', 10, 20),
    read(3, 'k', 'x', 15, 40),
    writeUnknown(4, 'k', 'y', 50), // nobody ever sees y, no failed cas: dropped
    write(7, 'j', 'u', 0, 1), // nobody ever reads u: written as a placeholder
    writeUnknown(8, 'j', 'v', 2), // nobody reads v, but a cas fails later: kept
    cas(9, 'j', 'w', 'z', false, 5, 6),
  ];
  const before = JSON.stringify(history);
  const prepared = prepareHistory(history);
  t.equal(JSON.stringify(history), before, 'the input is not modified');
  t.same(
    prepared.map((o) => [o.clientId, o.return, 'unobserved' in o.input ? o.input.unobserved : undefined]),
    [
      [1, 20, undefined],
      [2, 20, undefined],
      [3, 40, undefined],
      [7, 1, true],
      [8, Infinity, true],
      [9, 6, undefined],
    ],
  );
  t.same(prepareHistory(history, { simplify: false }).map((o) => [o.clientId, o.return]), [
    [1, Infinity],
    [2, 20],
    [3, 40],
    [4, Infinity],
    [7, 1],
    [8, Infinity],
    [9, 6],
  ]);
  t.same(checkRegisterHistory(history), { ok: true });
});

t.test('partitions are checked independently and named by key', async (t) => {
  const history = [
    write(1, 'a', '1', 0, 10),
    write(2, 'b', '2', 0, 10),
    read(3, 'a', '1', 20, 30),
    read(4, 'b', null, 20, 30), // stale
    read(5, 'c', null, 0, 1),
  ];
  const v = expectViolation(t, history);
  t.equal(v.partition, 'b');
  t.match(v.explanation, /^key b: /);
  const stats: CheckStats = {} as CheckStats;
  checkOperations(registerModel(), history, { stats });
  t.equal(stats.partitions, 3);
  t.equal(stats.largestPartition, 2);
  t.ok(stats.steps > 0 && stats.configurations > 0);
});

t.test('invalid histories are rejected', async (t) => {
  t.throws(() => checkOperations(registerModel(), [read(1, 'k', null, 5, 4)]), RangeError);
  t.throws(() => checkOperations(registerModel(), [read(1, 'k', null, NaN, 4)]), RangeError);
  t.throws(() => checkOperations(registerModel(), [read(1, 'k', null, 0, NaN)]), RangeError);
  t.same(checkOperations(registerModel(), []), { ok: true });
});

// ---------------------------------------------------------------------------
// A generic model: a counter, without hash, partitions or hints.

type CounterIn = { op: 'inc' } | { op: 'get' };
type CounterOut = { value?: number };
const counter: Model<number, CounterIn, CounterOut> = {
  init: () => 0,
  step: (s, i, o) => (i.op === 'inc' ? { ok: true, state: s + 1 } : { ok: o.value === s, state: s }),
  equal: (a, b) => a === b,
  describe: (i, o) => (i.op === 'inc' ? 'inc' : `get → ${o.value}`),
  describeState: (s) => String(s),
};

t.test('a generic model (counter)', async (t) => {
  const op = (c: number, input: CounterIn, output: CounterOut, call: number, ret: number): Operation<CounterIn, CounterOut> => ({
    clientId: c,
    input,
    output,
    call,
    return: ret,
  });
  const inc = (c: number, call: number, ret: number) => op(c, { op: 'inc' }, {}, call, ret);
  const get = (c: number, value: number, call: number, ret: number) => op(c, { op: 'get' }, { value }, call, ret);
  t.same(checkOperations(counter, [inc(1, 0, 10), inc(2, 0, 10), get(3, 1, 5, 6), get(4, 2, 11, 12)]), { ok: true });
  const v = checkOperations(counter, [inc(1, 0, 10), get(3, 0, 11, 12)]);
  t.equal(v.ok, false);
  if (v.ok === false) {
    t.equal(v.partition, '0');
    t.equal(
      v.explanation,
      'partition 0: after [inc by c1 @0–10ms] the state is 1 and no operation can come next: get → 0 by c3 @11–12ms ' +
        'is not possible in state 1. Longest linearizable prefix: 1 of the 2 operations on this partition.',
    );
  }
  // Unknown outcome: an inc that may or may not have happened.
  const maybe = op(1, { op: 'inc' }, {}, 0, Infinity);
  t.same(checkOperations(counter, [maybe, get(2, 1, 5, 6)]), { ok: true });
  t.same(checkOperations(counter, [maybe, get(2, 0, 5, 6)]), { ok: true });
  t.equal(checkOperations(counter, [maybe, get(2, 2, 5, 6)]).ok, false);
});

// ---------------------------------------------------------------------------
// Randomized cross-check against an exhaustive search without any pruning.

/** Is there an order of all completed operations and some of the unknown ones, respecting real time, that the model accepts? */
function bruteForce<S, I, O>(model: Model<S, I, O>, ops: Operation<I, O>[]): boolean {
  const used = new Array<boolean>(ops.length).fill(false);
  const completed = ops.filter((o) => o.return !== Infinity).length;
  const search = (state: S, done: number): boolean => {
    if (done === completed) return true;
    for (let b = 0; b < ops.length; b++) {
      if (used[b]) continue;
      // b may come next unless an unused completed operation returned before b was called.
      if (ops.some((a, i) => !used[i] && i !== b && a.return < ops[b].call)) continue;
      const r = model.step(state, ops[b].input, ops[b].output);
      if (!r.ok) continue;
      used[b] = true;
      const found = search(r.state, done + (ops[b].return === Infinity ? 0 : 1));
      used[b] = false;
      if (found) return true;
    }
    return false;
  };
  return search(model.init(ops), 0);
}

/** Small random single-key history: values reused sometimes, random outcomes, some unknown. */
function randomHistory(rand: () => number): { history: RegisterOp[]; initial: RegisterInitial } {
  const initial = { k: rand() < 0.5 ? null : 'i' };
  const values = ['a', 'b', 'c', 'd', 'e', 'f', 'g', 'h'];
  const seen = (): RegisterValue => {
    const r = rand();
    return r < 0.15 ? null : r < 0.3 ? 'i' : values[Math.floor(rand() * 4)];
  };
  const n = 3 + Math.floor(rand() * 5);
  const history: RegisterOp[] = [];
  for (let i = 0; i < n; i++) {
    const call = Math.floor(rand() * 12);
    const ret = call + Math.floor(rand() * 6);
    const value = rand() < 0.85 ? values[i] : values[Math.floor(rand() * 3)];
    const r = rand();
    let op: RegisterOp =
      r < 0.45
        ? read(i, 'k', seen(), call, ret)
        : r < 0.7
          ? { ...write(i, 'k', value, call, ret), output: { ok: rand() < 0.95 } }
          : cas(i, 'k', seen(), value, rand() < 0.5, call, ret);
    if (rand() < 0.2) op = { ...op, output: { unknown: true }, return: Infinity };
    history.push(op);
  }
  return { history, initial };
}

t.test('random small histories agree with brute force', async (t) => {
  const seeds = Number(process.env.CHECKER_SEEDS ?? 1500);
  let linearizable = 0;
  let mismatches = 0;
  for (let seed = 1; seed <= 2 * seeds; seed++) {
    const rand = rng(seed);
    // Half purely random (mostly violations), half recorded from a simulated
    // register with one outcome or time changed half the time.
    const { history, initial } =
      seed <= seeds
        ? randomHistory(rand)
        : simulate({ seed, clients: 2 + Math.floor(rand() * 4), keys: 1, ops: 4 + Math.floor(rand() * 5), pUnknown: 0.25, maxLatency: 6 });
    if (seed > seeds && rand() < 0.5) perturb(history, rand);
    const model = registerModel(initial);
    const recorded = prepareHistory(history, { initial, simplify: false });
    const expected = bruteForce(model, recorded);
    if (expected) linearizable++;
    const raw = checkOperations(model, recorded).ok;
    const prepared = checkRegisterHistory(history, { initial }).ok;
    if (raw !== expected || prepared !== expected) {
      mismatches++;
      if (mismatches <= 3) t.fail(`seed ${seed}: brute force ${expected}, checker ${raw}, prepared ${prepared}: ${JSON.stringify(history)}`);
    }
  }
  t.equal(mismatches, 0, `${2 * seeds} histories, ${linearizable} linearizable`);
  t.ok(linearizable > 0 && linearizable < 2 * seeds, 'both verdicts represented');
});

// ---------------------------------------------------------------------------
// Histories recorded from a simulated atomic register.

interface SimOptions {
  seed: number;
  clients: number;
  keys: number;
  ops: number;
  /** Probability that a write, cas or read times out (outcome unknown). */
  pUnknown?: number;
  maxLatency?: number;
}

/**
 * Clients issue one operation at a time on random keys (skewed: k0 is hot);
 * each takes effect atomically at a random instant within its interval. A
 * timed-out write or cas takes effect (or not) at a random instant up to
 * three timeouts after its call, possibly after the client moved on. Reads
 * return the current value; cas uses the value the client last saw.
 */
function simulate(o: SimOptions): { history: RegisterOp[]; initial: Record<string, RegisterValue> } {
  const rand = rng(o.seed);
  const pUnknown = o.pUnknown ?? 0.03;
  const maxLatency = o.maxLatency ?? 20;
  const keys = Array.from({ length: o.keys }, (_, i) => `k${i}`);
  const initial: Record<string, RegisterValue> = {};
  keys.forEach((k, i) => (initial[k] = i % 2 === 0 ? `${k}/init` : null));
  interface Planned {
    op: RegisterOp;
    at: number;
    applies: boolean;
    unknown: boolean;
  }
  const planned: Planned[] = [];
  const perClient = Math.ceil(o.ops / o.clients);
  for (let c = 0; c < o.clients; c++) {
    let now = Math.floor(rand() * 10);
    for (let i = 0; i < perClient && planned.length < o.ops; i++) {
      const call = now + Math.floor(rand() * 3);
      let latency = 1 + Math.floor(rand() * maxLatency);
      if (rand() < 0.03) latency *= 10; // slow requests
      const key = keys[Math.floor(rand() * rand() * keys.length)];
      const kind = rand();
      const value = `${key}/c${c}/${i}`;
      const op: RegisterOp =
        kind < 0.5 ? read(c, key, null, call, call + latency) : kind < 0.75 ? write(c, key, value, call, call + latency) : cas(c, key, null, value, true, call, call + latency);
      const unknown = rand() < pUnknown;
      let at = call + rand() * latency;
      let applies = true;
      if (unknown) {
        op.output = { unknown: true };
        op.return = Infinity;
        applies = rand() < 0.5;
        at = call + rand() * 3 * maxLatency;
        now = call + maxLatency; // the client's timeout
      } else {
        now = call + latency;
      }
      planned.push({ op, at, applies, unknown });
    }
  }
  const state = new Map(keys.map((k) => [k, initial[k]]));
  const lastSeen = new Map<string, RegisterValue>();
  // A client's operations take effect in its order (each within its own interval).
  for (const p of [...planned].sort((a, b) => a.at - b.at)) {
    const { op } = p;
    const key = op.input.key;
    const seenKey = `${op.clientId} ${key}`;
    const current = state.get(key) ?? null;
    if (op.input.op === 'read') {
      if (!p.unknown) {
        op.output = { value: current };
        lastSeen.set(seenKey, current);
      }
    } else if (op.input.op === 'write') {
      if (p.applies) state.set(key, op.input.value);
      if (!p.unknown) lastSeen.set(seenKey, op.input.value);
    } else {
      const from = lastSeen.has(seenKey) ? (lastSeen.get(seenKey) ?? null) : initial[key];
      op.input = { ...op.input, from };
      const success = current === from;
      if (p.applies && success) state.set(key, op.input.to);
      if (!p.unknown) {
        op.output = { ok: success };
        if (success) lastSeen.set(seenKey, op.input.to);
      }
    }
  }
  return { history: planned.map((p) => p.op).sort((a, b) => a.call - b.call), initial };
}

/** Changes one outcome or call time at random. */
function perturb(history: RegisterOp[], rand: () => number): void {
  const i = Math.floor(rand() * history.length);
  const op = history[i];
  const values = history.flatMap((h) => (h.input.op === 'write' ? [h.input.value] : h.input.op === 'cas' ? [h.input.to] : []));
  if ('value' in op.output) {
    history[i] = { ...op, output: { value: values.length > 0 && rand() < 0.8 ? values[Math.floor(rand() * values.length)] : null } };
  } else if ('ok' in op.output) {
    history[i] = { ...op, output: { ok: !op.output.ok } };
  } else {
    history[i] = { ...op, call: Math.max(0, op.call - 3) };
  }
}

/**
 * Makes a read return a stale value: one written by a completed write or cas
 * that returned before another completed write or cas of the key was called,
 * which itself returned before the read was called. Returns its index.
 */
function corruptRead(history: RegisterOp[], rand: () => number): number {
  const applied = (o: RegisterOp) => o.input.op !== 'read' && 'ok' in o.output && o.output.ok;
  const written = (o: RegisterOp) => (o.input.op === 'write' ? o.input.value : o.input.op === 'cas' ? o.input.to : null);
  const reads = history.flatMap((o, i) => (o.input.op === 'read' && 'value' in o.output ? [i] : []));
  for (;;) {
    const i = reads[Math.floor(rand() * reads.length)];
    const r = history[i];
    const writes = history.filter((o) => o.input.key === r.input.key && applied(o));
    const newer = writes.filter((o) => o.return < r.call).sort((a, b) => b.return - a.return)[0];
    const stale = newer && writes.filter((o) => o.return < newer.call).sort((a, b) => b.return - a.return)[0];
    if (!stale) continue;
    history[i] = { ...r, output: { value: written(stale) } };
    return i;
  }
}

/** The longest prefix of a violation must itself be accepted by the model, in order. */
function prefixReplays(v: { longestPrefix: Operation<any, any>[] }, initial: RegisterInitial): boolean {
  const model = registerModel(initial);
  let state = model.init(v.longestPrefix as RegisterOp[]);
  for (const op of v.longestPrefix as RegisterOp[]) {
    const r = model.step(state, op.input, op.output);
    if (!r.ok) return false;
    state = r.state;
  }
  return true;
}

t.test('simulated atomic register: linearizable, then one read corrupted', async (t) => {
  for (const seed of [1, 2, 3, 4]) {
    const { history, initial } = simulate({ seed, clients: 30, keys: 10, ops: 3000 });
    const stats = {} as CheckStats;
    t.same(checkRegisterHistory(history, { initial, stats }), { ok: true }, `seed ${seed}: linearizable`);
    t.same(
      checkOperations(registerModel(initial), prepareHistory(history, { initial, simplify: false })),
      { ok: true },
      `seed ${seed}: linearizable as recorded`,
    );

    const corrupted = history.slice();
    const i = corruptRead(corrupted, rng(seed));
    const key = corrupted[i].input.key;
    const v = checkRegisterHistory(corrupted, { initial });
    t.equal(v.ok, false, `seed ${seed}: read ${i} on ${key} made stale: not linearizable`);
    if (v.ok !== false) continue;
    t.equal(v.partition, key);
    t.ok(v.explanation.startsWith(`key ${key}: `), v.explanation.slice(0, 200));
    t.ok(v.stuckAt.length > 0, 'operations that cannot come next are listed');
    t.ok(prefixReplays(v, initial), 'the longest prefix replays in the model');
  }
});

t.test('20,000 operations, 30 clients, 10 keys', async (t) => {
  const { history, initial } = simulate({ seed: 42, clients: 30, keys: 10, ops: 20_000 });
  const unknown = history.filter((o) => 'unknown' in o.output).length;
  const stats = {} as CheckStats;
  const started = performance.now();
  const result = checkRegisterHistory(history, { initial, timeoutMs: 120_000, stats });
  const ms = performance.now() - started;
  t.same(result, { ok: true });
  t.comment(
    `20,000 operations (${unknown} with an unknown outcome; largest key ${stats.largestPartition}): ` +
      `${ms.toFixed(0)} ms including preparation, ${stats.steps} steps, ${stats.configurations} configurations`,
  );

  const corrupted = history.slice();
  const i = corruptRead(corrupted, rng(42));
  const t1 = performance.now();
  const v = checkRegisterHistory(corrupted, { initial, timeoutMs: 120_000, stats });
  t.equal(v.ok, false);
  if (v.ok === false) t.equal(v.partition, corrupted[i].input.key);
  t.comment(`the same with one stale read: ${(performance.now() - t1).toFixed(0)} ms, ${stats.steps} steps`);
});

t.test('timeout', async (t) => {
  // 26 concurrent writes, then two reads that cannot both be explained: the
  // search has to go through the subsets of the other writes.
  const history: RegisterOp[] = [];
  for (let c = 0; c < 26; c++) history.push(write(c, 'k', `w${c}`, 0, 1000));
  history.push(read(30, 'k', 'w0', 1001, 1002), read(30, 'k', 'w1', 1003, 1004));
  const started = performance.now();
  const r = checkRegisterHistory(history, { timeoutMs: 200 });
  t.equal(r.ok, 'unknown');
  if (r.ok === 'unknown') t.match(r.reason, /^timed out after \d+ ms \(timeoutMs 200\) while checking key k \(28 operations\)/);
  t.comment(`gave up after ${(performance.now() - started).toFixed(0)} ms`);
  // A violation found before the deadline is still reported.
  const stale = checkRegisterHistory([...history, write(40, 'a', 'x', 0, 1), read(41, 'a', null, 2, 3)], { timeoutMs: 200 });
  t.equal(stale.ok, false);
});

// ---------------------------------------------------------------------------
// The orchestrator checkers (chaos/orchestrator-checks.ts) over event-stream
// histories: each one passes a good history and fails a bad one.

/** A stream built write by write: each call is the next committed event, one second after the previous. */
function history() {
  const events: StreamEvent[] = [];
  const t0 = Date.parse('2026-01-01T00:00:00Z');
  let uid = 0;
  const uids = new Map<string, string>();
  const put = (type: 'ADDED' | 'MODIFIED' | 'DELETED', resource: string, namespace: string, name: string, body: Record<string, unknown>) => {
    const key = `${resource}/${namespace}/${name}`;
    if (type === 'ADDED') uids.set(key, `u${++uid}`);
    const meta = { name, ...(namespace ? { namespace } : {}), uid: uids.get(key), ...(body.metadata as object | undefined) };
    const index = events.length + 1;
    events.push({ index, type, resource, namespace, name, value: null, object: JSON.stringify({ ...body, metadata: meta }), time: t0 + index * 1000 });
    return uids.get(key)!;
  };
  const h = {
    events, t0,
    uid: (resource: string, namespace: string, name: string) => uids.get(`${resource}/${namespace}/${name}`)!,
    add: (resource: string, namespace: string, name: string, body: Record<string, unknown> = {}) => put('ADDED', resource, namespace, name, body),
    mod: (resource: string, namespace: string, name: string, body: Record<string, unknown> = {}) => put('MODIFIED', resource, namespace, name, body),
    del: (resource: string, namespace: string, name: string, body: Record<string, unknown> = {}) => put('DELETED', resource, namespace, name, body),
    owner: (kind: string, name: string, uid: string) => ({ ownerReferences: [{ kind, name, uid, controller: true }] }),
    node: (name: string, ready = true, alloc = { cpu: '1', memory: '1Gi', pods: '3' }) => ({ status: { allocatable: alloc, conditions: [{ type: 'Ready', status: ready ? 'True' : 'Unknown' }] } }),
    pod: (owner: object, o: { ready?: boolean; node?: string; cpu?: string; deleting?: boolean; labels?: Record<string, string> } = {}) => ({
      metadata: { ...owner, ...(o.deleting ? { deletionTimestamp: '2026-01-01T00:00:00Z' } : {}), ...(o.labels ? { labels: o.labels } : {}) },
      spec: { ...(o.node ? { nodeName: o.node } : {}), containers: [{ name: 'c', resources: { requests: { cpu: o.cpu ?? '100m' } } }] },
      status: { phase: 'Running', conditions: [{ type: 'Ready', status: o.ready === false ? 'False' : 'True' }] },
    }),
  };
  return h;
}

/** A Deployment of 3 (maxSurge 1, maxUnavailable 0) with its ReplicaSet and 3 ready pods: within its bounds. */
function steadyDeployment() {
  const h = history();
  const spec = { replicas: 3, strategy: { type: 'RollingUpdate', rollingUpdate: { maxSurge: 1, maxUnavailable: 0 } } };
  const d = h.add('deployments', 'ns', 'web', { spec });
  const rs1 = h.add('replicasets', 'ns', 'web-1', { metadata: h.owner('Deployment', 'web', d), spec: { replicas: 3 } });
  for (const i of [1, 2, 3]) h.add('pods', 'ns', `web-1-${i}`, h.pod(h.owner('ReplicaSet', 'web-1', rs1)));
  const rs2 = h.add('replicasets', 'ns', 'web-2', { metadata: h.owner('Deployment', 'web', d), spec: { replicas: 1 } });
  return { h, d, rs1, rs2, spec };
}

t.test('rollout bounds: a good rollout passes, too few available or too many pods fail', async (t) => {
  {
    const { h, rs1, rs2 } = steadyDeployment();
    // Surge one, then retire one old pod: never fewer than 3 ready nor more than 4 pods.
    for (const i of [1, 2, 3]) {
      h.add('pods', 'ns', `web-2-${i}`, h.pod(h.owner('ReplicaSet', 'web-2', rs2), { ready: false }));
      h.mod('pods', 'ns', `web-2-${i}`, h.pod(h.owner('ReplicaSet', 'web-2', rs2)));
      h.mod('pods', 'ns', `web-1-${i}`, h.pod(h.owner('ReplicaSet', 'web-1', rs1), { deleting: true }));
      h.del('pods', 'ns', `web-1-${i}`, h.pod(h.owner('ReplicaSet', 'web-1', rs1), { deleting: true }));
    }
    const ok = checkRolloutBounds(h.events);
    t.equal(ok.anomalies, 0, ok.details.join('; '));
    t.ok(ok.checks > 5, `checked at ${ok.checks} steps`);
  }
  {
    const { h, rs1 } = steadyDeployment();
    // An old pod deleted before its replacement is ready: 2 available < 3 − 0.
    h.mod('pods', 'ns', 'web-1-1', h.pod(h.owner('ReplicaSet', 'web-1', rs1), { deleting: true }));
    const bad = checkRolloutBounds(h.events);
    t.equal(bad.anomalies, 1, 'too few available');
    t.match(bad.details[0], /deployment ns\/web at index \d+: 2 available \(at least 3\), 2 non-terminating pods \(at most 4\)/);
    // The same inside a window of involuntary disruption is no anomaly.
    const last = h.events[h.events.length - 1].time;
    t.equal(checkRolloutBounds(h.events, [{ from: last - 10, to: last + 10, what: 'agent killed' }]).anomalies, 0, 'not during an involuntary disruption');
  }
  {
    const { h, rs2 } = steadyDeployment();
    // Two surge pods at once: 5 > 3 + 1.
    h.add('pods', 'ns', 'web-2-1', h.pod(h.owner('ReplicaSet', 'web-2', rs2), { ready: false }));
    h.add('pods', 'ns', 'web-2-2', h.pod(h.owner('ReplicaSet', 'web-2', rs2), { ready: false }));
    const bad = checkRolloutBounds(h.events);
    t.equal(bad.anomalies, 1, 'too many pods');
    t.match(bad.details[0], /5 non-terminating pods \(at most 4\)/);
  }
  {
    const { h, d, rs2, spec } = steadyDeployment();
    // Scaling is not a rollout: a scale-up starts over and is not bounded until it is within its new bounds.
    h.mod('deployments', 'ns', 'web', { spec: { ...spec, replicas: 6 } });
    for (const i of [1, 2, 3]) h.add('pods', 'ns', `web-2-${i}`, h.pod(h.owner('ReplicaSet', 'web-2', rs2), { ready: false }));
    t.equal(checkRolloutBounds(h.events).anomalies, 0, `a scale-up of ${d} is not an anomaly`);
  }
  {
    // A scale-down while a creation asked for under the old size is on its way: the pod lands
    // after the new bounds; not bounded until the Deployment and its ReplicaSets observed them.
    const h = history();
    const spec = (replicas: number) => ({ replicas, strategy: { type: 'RollingUpdate', rollingUpdate: { maxSurge: 1, maxUnavailable: 0 } } });
    const d = h.add('deployments', 'ns', 'web', { metadata: { generation: 1 }, spec: spec(4), status: { observedGeneration: 1 } });
    const rs1 = h.add('replicasets', 'ns', 'web-1', { metadata: { ...h.owner('Deployment', 'web', d), generation: 1 }, spec: { replicas: 2 }, status: { observedGeneration: 1, replicas: 2 } });
    for (const i of [1, 2]) h.add('pods', 'ns', `web-1-${i}`, h.pod(h.owner('ReplicaSet', 'web-1', rs1)));
    const rs2 = h.add('replicasets', 'ns', 'web-2', { metadata: { ...h.owner('Deployment', 'web', d), generation: 2 }, spec: { replicas: 3 }, status: { observedGeneration: 2, replicas: 2 } });
    const rs2Meta = (generation: number) => ({ ...h.owner('Deployment', 'web', d), generation });
    for (const i of [1, 2]) h.add('pods', 'ns', `web-2-${i}`, h.pod(h.owner('ReplicaSet', 'web-2', rs2)));
    // 4 pods of 4 + 1, the third web-2 pod on its way; then scaled to 3 (at most 4 pods).
    h.mod('deployments', 'ns', 'web', { metadata: { generation: 2 }, spec: spec(3), status: { observedGeneration: 1 } });
    h.mod('replicasets', 'ns', 'web-2', { metadata: rs2Meta(3), spec: { replicas: 2 }, status: { observedGeneration: 2, replicas: 2 } });
    h.mod('deployments', 'ns', 'web', { metadata: { generation: 2 }, spec: spec(3), status: { observedGeneration: 2 } });
    h.add('pods', 'ns', 'web-2-3', h.pod(h.owner('ReplicaSet', 'web-2', rs2)));
    h.mod('replicasets', 'ns', 'web-2', { metadata: rs2Meta(3), spec: { replicas: 2 }, status: { observedGeneration: 3, replicas: 3 } });
    h.mod('pods', 'ns', 'web-2-3', h.pod(h.owner('ReplicaSet', 'web-2', rs2), { deleting: true }));
    h.mod('replicasets', 'ns', 'web-2', { metadata: rs2Meta(3), spec: { replicas: 2 }, status: { observedGeneration: 3, replicas: 2 } });
    const scaled = checkRolloutBounds(h.events);
    t.equal(scaled.anomalies, 0, `a creation landing after a scale-down is not an anomaly: ${scaled.details.join('; ')}`);
    // Once observed, it is bounded again.
    h.add('pods', 'ns', 'web-2-4', h.pod(h.owner('ReplicaSet', 'web-2', rs2)));
    const bad = checkRolloutBounds(h.events);
    t.equal(bad.anomalies, 1, 'bounded again once observed');
    t.match(bad.details[0], /5 non-terminating pods \(at most 4\)/);
  }
  {
    const { h, rs1 } = steadyDeployment();
    // A node going down is an involuntary disruption seen in the stream itself.
    h.add('nodes', '', 'n1', h.node('n1', false));
    h.mod('pods', 'ns', 'web-1-1', h.pod(h.owner('ReplicaSet', 'web-1', rs1), { ready: false }));
    t.equal(checkRolloutBounds(h.events).anomalies, 0, 'not while a node is down');
  }
});

t.test('node over-commit', async (t) => {
  const h = history();
  h.add('nodes', '', 'n1', h.node('n1'));
  h.add('pods', 'ns', 'a', h.pod({}, { node: 'n1', cpu: '600m' }));
  h.add('pods', 'ns', 'b', h.pod({}, { node: 'n1', cpu: '300m' }));
  t.equal(checkNodeOvercommit(h.events).anomalies, 0, '900m of 1 cpu');
  h.add('pods', 'ns', 'c', h.pod({}, { node: 'n1', cpu: '200m' }));
  const bad = checkNodeOvercommit(h.events);
  t.equal(bad.anomalies, 1);
  t.match(bad.details[0], /node n1 over-committed at index 4: cpu 1100 > 1000/);
  // A finished pod frees its share; a pod count over `pods` is over-commitment too.
  const h2 = history();
  h2.add('nodes', '', 'n1', h2.node('n1'));
  for (const p of ['a', 'b', 'c']) h2.add('pods', 'ns', p, h2.pod({}, { node: 'n1', cpu: '10m' }));
  h2.mod('pods', 'ns', 'a', { ...h2.pod({}, { node: 'n1', cpu: '10m' }), status: { phase: 'Succeeded' } });
  h2.add('pods', 'ns', 'd', h2.pod({}, { node: 'n1', cpu: '10m' }));
  t.equal(checkNodeOvercommit(h2.events).anomalies, 0, 'a Succeeded pod does not count');
  h2.add('pods', 'ns', 'e', h2.pod({}, { node: 'n1', cpu: '10m' }));
  t.match(checkNodeOvercommit(h2.events).details[0], /pods 4 > 3/);
});

t.test('a StatefulSet ordinal never has two pods', async (t) => {
  const h = history();
  const ss = h.add('statefulsets', 'ns', 'db', { spec: { replicas: 2 } });
  const own = h.owner('StatefulSet', 'db', ss);
  h.add('pods', 'ns', 'db-0', h.pod(own, { labels: { 'apps.kubernetes.io/pod-index': '0' } }));
  h.add('pods', 'ns', 'db-1', h.pod(own, { labels: { 'apps.kubernetes.io/pod-index': '1' } }));
  h.del('pods', 'ns', 'db-1', h.pod(own));
  h.add('pods', 'ns', 'db-1', h.pod(own, { labels: { 'apps.kubernetes.io/pod-index': '1' } }));
  t.equal(checkStatefulSetOrdinals(h.events).anomalies, 0, 'replaced after the old one was gone');
  // A second pod claiming ordinal 0 (by its index label) while db-0 lives.
  h.add('pods', 'ns', 'db-0-x', h.pod(own, { labels: { 'apps.kubernetes.io/pod-index': '0' } }));
  const bad = checkStatefulSetOrdinals(h.events);
  t.equal(bad.anomalies, 1);
  t.match(bad.details[0], /statefulset ns\/db ordinal 0 at index \d+: 2 pods \(db-0, db-0-x\)/);
  // A new db-1 created while the old one was not yet deleted.
  const h2 = history();
  const ss2 = h2.add('statefulsets', 'ns', 'db', { spec: { replicas: 1 } });
  h2.add('pods', 'ns', 'db-0', h2.pod(h2.owner('StatefulSet', 'db', ss2)));
  h2.add('pods', 'ns', 'db-0', h2.pod(h2.owner('StatefulSet', 'db', ss2)));
  t.match(checkStatefulSetOrdinals(h2.events).details[0], /pod ns\/db-0 at index 3: created \(uid u3\) while u2 still existed/);
});

t.test('every dependent of a deleted owner is collected', async (t) => {
  const h = history();
  const d = h.add('deployments', 'ns', 'web', {});
  const rs = h.add('replicasets', 'ns', 'web-1', { metadata: h.owner('Deployment', 'web', d) });
  h.add('pods', 'ns', 'web-1-a', h.pod(h.owner('ReplicaSet', 'web-1', rs)));
  h.add('pods', 'ns', 'bare', h.pod({}));
  t.equal(checkGarbageCollected(h.events).anomalies, 0, 'owners alive');
  h.del('deployments', 'ns', 'web');
  const bad = checkGarbageCollected(h.events);
  t.equal(bad.anomalies, 1, 'the ReplicaSet of the deleted Deployment is left');
  t.match(bad.details[0], /replicasets\/ns\/web-1 of deleted Deployment\/web/);
  h.del('replicasets', 'ns', 'web-1', { metadata: h.owner('Deployment', 'web', d) });
  t.match(checkGarbageCollected(h.events).details[0], /pods\/ns\/web-1-a of deleted ReplicaSet\/web-1/, 'then its pod');
  h.del('pods', 'ns', 'web-1-a', h.pod(h.owner('ReplicaSet', 'web-1', rs)));
  t.equal(checkGarbageCollected(h.events).anomalies, 0, 'all collected');
});

t.test('convergence within a bound after the faults stop', async (t) => {
  const h = history();
  const ss = h.add('statefulsets', 'ns', 'db', { metadata: { generation: 1 }, spec: { replicas: 1 } });
  h.add('pods', 'ns', 'db-0', h.pod(h.owner('StatefulSet', 'db', ss), { node: 'n1' }));
  const stopped = h.events[h.events.length - 1].time;
  // Converged 5 s after the faults stopped.
  for (let i = 0; i < 4; i++) h.add('configmaps', 'ns', `x${i}`);
  h.mod('statefulsets', 'ns', 'db', { metadata: { generation: 1 }, spec: { replicas: 1 }, status: { observedGeneration: 1, replicas: 1, readyReplicas: 1, updatedReplicas: 1 } });
  const ok = checkConvergence(h.events, stopped, 10_000);
  t.equal(ok.anomalies, 0, ok.details.join('; '));
  t.equal(ok.convergedMs, 5000);
  const late = checkConvergence(h.events, stopped, 3000);
  t.equal(late.anomalies, 1, 'over the bound');
  t.match(late.details[0], /converged 5000 ms after the faults stopped \(bound 3000 ms\)/);
  // Diverging again before the end: not converged.
  h.mod('statefulsets', 'ns', 'db', { metadata: { generation: 2 }, spec: { replicas: 2 }, status: { observedGeneration: 1, replicas: 1, readyReplicas: 1, updatedReplicas: 1 } });
  const never = checkConvergence(h.events, stopped, 60_000);
  t.equal(never.anomalies, 1);
  t.match(never.details[0], /not converged at the end of the stream: statefulset ns\/db: generation 2 not observed/);
  t.equal(never.convergedMs, null);
});
