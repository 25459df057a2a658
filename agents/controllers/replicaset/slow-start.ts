// Kubernetes' slowStartBatch: run `count` calls in batches of 1, 2, 4, …
// (each batch concurrent), stopping after the first batch with a failure. A
// request that fails for everyone (quota, admission, a terminating
// namespace) then fails once or twice, not `count` times.

/** Runs fn up to `count` times; returns how many succeeded and the first error, if any. */
export async function slowStartBatch(count: number, initial: number, fn: () => Promise<void>): Promise<{ successes: number; error?: Error }> {
  let remaining = count;
  let successes = 0;
  for (let size = Math.min(remaining, initial); size > 0; size = Math.min(2 * size, remaining)) {
    const results = await Promise.allSettled(Array.from({ length: size }, () => fn()));
    const failed = results.filter((r): r is PromiseRejectedResult => r.status === 'rejected');
    successes += size - failed.length;
    if (failed.length) return { successes, error: failed[0]!.reason as Error };
    remaining -= size;
  }
  return { successes };
}
