// Kubernetes' slowStartBatch: run `count` calls in batches of 1, 2, 4, …
// (each batch concurrent), stopping after the first batch with a failure. A
// request that fails for everyone (quota, admission, a terminating
// namespace) then fails once or twice, not `count` times.
//
// Within a batch at most `inFlight` calls run at once. client-go bounds a
// controller's requests with a QPS limiter instead; without any bound, 500
// concurrent creates queue every other write behind them on a busy API —
// Lease renewals included, which then miss their deadline.

/** Runs fn for each item with at most `limit` calls pending; settles like Promise.allSettled. */
export async function settleLimited<T>(items: readonly T[], limit: number, fn: (item: T) => Promise<void>): Promise<PromiseSettledResult<void>[]> {
  const results: PromiseSettledResult<void>[] = new Array(items.length);
  let next = 0;
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, async () => {
    for (let i = next++; i < items.length; i = next++) {
      try {
        await fn(items[i]!);
        results[i] = { status: 'fulfilled', value: undefined };
      } catch (e) {
        results[i] = { status: 'rejected', reason: e };
      }
    }
  }));
  return results;
}

/** Runs fn up to `count` times; returns how many succeeded and the first error, if any. */
export async function slowStartBatch(count: number, initial: number, fn: () => Promise<void>, inFlight = Infinity): Promise<{ successes: number; error?: Error }> {
  let remaining = count;
  let successes = 0;
  for (let size = Math.min(remaining, initial); size > 0; size = Math.min(2 * size, remaining)) {
    const results = await settleLimited(Array.from({ length: size }, (_, i) => i), inFlight, () => fn());
    const failed = results.filter((r): r is PromiseRejectedResult => r.status === 'rejected');
    successes += size - failed.length;
    if (failed.length) return { successes, error: failed[0]!.reason as Error };
    remaining -= size;
  }
  return { successes };
}
