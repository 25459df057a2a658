// The controller work queue (agents/informer/workqueue.ts): client-go's
// semantics — dedup, no item handed out twice, delays, per-item exponential
// backoff plus an overall token bucket, shutdown — and the worker loop.
import t from 'tap';
import {
  BucketRateLimiter, ItemExponentialFailureRateLimiter, MaxOfRateLimiter, WorkQueue, defaultControllerRateLimiter, runWorkers,
} from '../agents/informer/workqueue.ts';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

t.test('an item queued several times is handed out once', async (t) => {
  const q = new WorkQueue<string>();
  q.add('a');
  q.add('b');
  q.add('a');
  q.add('a');
  t.equal(q.len(), 2);
  t.equal(await q.get(), 'a');
  t.equal(await q.get(), 'b');
  t.equal(q.len(), 0);
  t.equal(q.stats.adds, 2, 'deduplicated adds are not counted');
});

t.test('an item being processed is not handed out again until done, then once', async (t) => {
  const q = new WorkQueue<string>();
  q.add('x');
  t.equal(await q.get(), 'x');
  q.add('x');
  q.add('x');
  t.equal(q.len(), 0, 'not queued while processing');
  let second: string | undefined;
  const waiting = q.get().then((v) => (second = v));
  await sleep(30);
  t.equal(second, undefined, 'a second worker gets nothing meanwhile');
  q.done('x');
  await waiting;
  t.equal(second, 'x', 'done() hands it to the waiting worker, once');
  t.equal(q.len(), 0);
  t.equal(q.inProgress(), 1);
});

t.test('done() re-queues an item that was added while it was processed', async (t) => {
  const q = new WorkQueue<string>();
  q.add('k');
  t.equal(await q.get(), 'k');
  q.add('k');
  t.equal(q.len(), 0);
  q.done('k');
  t.equal(q.len(), 1);
  t.equal(await q.get(), 'k');
  q.done('k');
  t.equal(q.len(), 0);
  t.equal(q.inProgress(), 0);
});

t.test('a blocked get() is woken by add()', async (t) => {
  const q = new WorkQueue<number>();
  const p = q.get();
  setTimeout(() => q.add(7), 10);
  t.equal(await p, 7);
});

t.test('addAfter delays an item; the earliest pending time wins; dedup with queued items', async (t) => {
  const q = new WorkQueue<string>();
  const t0 = performance.now();
  q.addAfter('late', 80);
  q.addAfter('late', 200); // later: ignored
  q.addAfter('early', 20);
  t.equal(q.delayed(), 2);
  t.equal(q.len(), 0);
  t.equal(await q.get(), 'early');
  t.equal(await q.get(), 'late');
  const took = performance.now() - t0;
  t.ok(took >= 75 && took < 190, `the earlier time of "late" was kept (${took.toFixed(0)} ms)`);
  q.addAfter('now', 0);
  t.equal(q.len(), 1, 'a non-positive delay queues at once');
});

t.test('per-item exponential backoff: 5 ms doubling up to 1000 s; forget resets', async (t) => {
  const r = new ItemExponentialFailureRateLimiter<string>(5, 1_000_000);
  const delays = Array.from({ length: 6 }, () => r.when('a'));
  t.same(delays, [5, 10, 20, 40, 80, 160]);
  t.equal(r.when('b'), 5, 'items back off independently');
  t.equal(r.numRequeues('a'), 6);
  for (let i = 0; i < 100; i++) r.when('a');
  t.equal(r.when('a'), 1_000_000, 'capped at 1000 s');
  r.forget('a');
  t.equal(r.numRequeues('a'), 0);
  t.equal(r.when('a'), 5);
});

t.test('token bucket: a burst passes, then one token per 1/qps', async (t) => {
  let now = 0;
  const r = new BucketRateLimiter<string>(10, 3, () => now);
  t.same([r.when('a'), r.when('b'), r.when('c')], [0, 0, 0], 'the burst');
  t.equal(r.when('d'), 100, 'the 4th waits for the next token');
  t.equal(r.when('e'), 200, 'and the 5th for the one after');
  now = 1000; // 10 tokens later, minus the 2 reserved: full again (capped at the burst)
  t.same([r.when('f'), r.when('g'), r.when('h'), r.when('i')], [0, 0, 0, 100]);
});

t.test('the default limiter is the max of both', async (t) => {
  let now = 0;
  const r = new MaxOfRateLimiter<string>(new ItemExponentialFailureRateLimiter(5, 1_000_000), new BucketRateLimiter(10, 2, () => now));
  t.equal(r.when('a'), 5);
  t.equal(r.when('a'), 10);
  t.equal(r.when('b'), 100, 'the bucket is empty: its delay is larger than the item\'s 5 ms');
  t.equal(r.numRequeues('a'), 2);
  r.forget('a');
  t.equal(r.numRequeues('a'), 0);
  const d = defaultControllerRateLimiter<string>();
  t.equal(d.when('z'), 5);
  t.equal(d.when('z'), 10);
});

t.test('addRateLimited re-queues after the backoff; forget restarts it', async (t) => {
  const q = new WorkQueue<string>({ rateLimiter: new ItemExponentialFailureRateLimiter(20, 1000) });
  q.addRateLimited('r');
  t.equal(q.numRequeues('r'), 1);
  t.equal(q.len(), 0, 'not before its delay');
  t.equal(q.delayed(), 1);
  t.equal(await q.get(), 'r');
  q.done('r');
  q.addRateLimited('r'); // 40 ms now
  const t0 = performance.now();
  t.equal(await q.get(), 'r');
  t.ok(performance.now() - t0 >= 35, 'the second retry waited longer');
  q.done('r');
  q.forget('r');
  t.equal(q.numRequeues('r'), 0);
  t.equal(q.stats.retries, 2);
});

t.test('shutdown: no new items, queued ones still handed out, then undefined to every waiter', async (t) => {
  const q = new WorkQueue<string>();
  q.add('a');
  q.addAfter('delayed', 20);
  q.shutdown();
  t.ok(q.shuttingDown());
  q.add('b');
  t.equal(q.len(), 1, 'add after shutdown is ignored');
  t.equal(q.delayed(), 0, 'delayed items are dropped');
  t.equal(await q.get(), 'a');
  t.equal(await q.get(), undefined);
  const q2 = new WorkQueue<string>();
  const waiters = [q2.get(), q2.get()];
  q2.shutdown();
  t.same(await Promise.all(waiters), [undefined, undefined]);
  await sleep(30);
  t.equal(q.len(), 0, 'the dropped delayed item never arrives');
});

t.test('shutDownWithDrain waits for in-flight items', async (t) => {
  const q = new WorkQueue<string>();
  q.add('a');
  const a = await q.get();
  let drained = false;
  const p = q.shutDownWithDrain().then(() => (drained = true));
  await sleep(20);
  t.notOk(drained);
  q.done(a!);
  await p;
  t.ok(drained);
});

t.test('runWorkers: concurrent workers, never the same key twice at once, retries failures with backoff', async (t) => {
  const q = new WorkQueue<string>({ rateLimiter: new ItemExponentialFailureRateLimiter(2, 50) });
  const active = new Set<string>();
  let overlap = false;
  let maxConcurrent = 0;
  const attempts = new Map<string, number>();
  const done = new Set<string>();
  const errors: unknown[] = [];
  const run = runWorkers(q, 4, async (key) => {
    if (active.has(key)) overlap = true;
    active.add(key);
    maxConcurrent = Math.max(maxConcurrent, active.size);
    await sleep(5);
    active.delete(key);
    const n = (attempts.get(key) ?? 0) + 1;
    attempts.set(key, n);
    if (key === 'flaky' && n < 3) throw new Error('not yet');
    done.add(key);
  }, { onError: (item, err) => errors.push([item, (err as Error).message]) });
  for (let round = 0; round < 3; round++) for (const k of ['a', 'b', 'c', 'd', 'e', 'flaky']) q.add(k);
  for (let i = 0; i < 200 && done.size < 6; i++) await sleep(5);
  await q.shutDownWithDrain();
  await run;
  t.notOk(overlap, 'a key is never processed by two workers at once');
  t.ok(maxConcurrent > 1 && maxConcurrent <= 4, `workers ran concurrently (${maxConcurrent})`);
  t.equal(done.size, 6);
  t.equal(attempts.get('flaky'), 3, 'the failing key was retried until it succeeded');
  t.equal(errors.length, 2);
  t.equal(q.numRequeues('flaky'), 0, 'success forgets the backoff');
});

t.test('runWorkers gives up after maxRetries', async (t) => {
  const q = new WorkQueue<string>({ rateLimiter: new ItemExponentialFailureRateLimiter(1, 5) });
  let calls = 0;
  const given: boolean[] = [];
  const run = runWorkers(q, 1, () => {
    calls++;
    throw new Error('always');
  }, { maxRetries: 2, onError: (_i, _e, _n, givenUp) => given.push(givenUp) });
  q.add('x');
  for (let i = 0; i < 100 && given.length < 3; i++) await sleep(5);
  await sleep(20);
  q.shutdown();
  await run;
  t.equal(calls, 3, 'first try + 2 retries');
  t.same(given, [false, false, true]);
});

t.test('runWorkers lets the event loop turn while a key keeps coming back at once', async (t) => {
  // A reconcile that awaits no I/O and re-adds its own key with no delay (as
  // the Deployment controller's "check the deadline now" once did): get()
  // hands the key straight back, and without a yield between items the
  // workers would never leave the microtask queue — this timer would never
  // fire, the test would hang until tap's timeout.
  const q = new WorkQueue<string>();
  let passes = 0;
  const run = runWorkers(q, 2, async (key) => {
    passes++;
    await Promise.resolve();
    q.add(key);
  });
  q.add('hot');
  q.add('also-hot');
  const fired = await new Promise<boolean>((resolve) => setTimeout(() => resolve(true), 20));
  q.shutdown();
  await run;
  t.ok(fired, 'a timer fired while the keys kept coming back');
  t.ok(passes > 2, `the keys were reconciled again and again meanwhile (${passes} passes)`);
  // setImmediate callbacks run between items too: an I/O-free worker loop does not starve them either.
  const q2 = new WorkQueue<string>();
  const run2 = runWorkers(q2, 1, async (key) => q2.add(key));
  q2.add('k');
  await new Promise<void>((resolve) => setImmediate(resolve));
  q2.shutdown();
  await run2;
  t.pass('setImmediate ran while the key kept coming back');
});
