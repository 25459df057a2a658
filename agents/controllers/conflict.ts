// A write that lost to a newer version (409 Conflict) means the cache had not
// caught up with the object yet: not a failure worth a warning or a growing
// back-off, just a reason to look again shortly, once it has.
import { ApiClientError } from '../client/api.ts';
import type { QueueController } from './controller.ts';

export const CONFLICT_RETRY_MS = 200;

export async function requeueOnConflict(c: QueueController, key: string, sync: () => Promise<void>): Promise<void> {
  try {
    await sync();
  } catch (e) {
    if (e instanceof ApiClientError && e.code === 409 && e.reason === 'Conflict') return c.enqueueAfter(key, CONFLICT_RETRY_MS);
    throw e;
  }
}
