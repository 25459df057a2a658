// Query parameters as Kubernetes parses them.
import { errors } from '../errors.ts';

const TRUE = new Set(['1', 't', 'T', 'TRUE', 'true', 'True']);
const FALSE = new Set(['0', 'f', 'F', 'FALSE', 'false', 'False']);

/**
 * A boolean query parameter, parsed like Go's strconv.ParseBool: 1, t, T,
 * TRUE, true, True and their false counterparts; absent is `dflt`; anything
 * else (an empty value too: `?watch`) is a 400. (Kubernetes itself is more
 * lenient: there, any value but 0 and false is true.)
 */
export function queryBool(q: URLSearchParams, name: string, dflt = false): boolean {
  const all = q.getAll(name);
  if (!all.length) return dflt;
  const v = all[0];
  if (TRUE.has(v)) return true;
  if (FALSE.has(v)) return false;
  throw errors.badRequest(`invalid boolean value for query parameter "${name}": strconv.ParseBool: parsing ${JSON.stringify(v)}: invalid syntax`);
}

/** The boolean query parameters of the API (validated on every request that has them). */
export const BOOLEAN_PARAMS = ['watch', 'allowWatchBookmarks', 'sendInitialEvents', 'force', 'pretty', 'orphanDependents', 'ignoreStoreReadErrorWithClusterBreakingPotential'] as const;

/** Rejects (400) a malformed value of any boolean query parameter. */
export function validateBooleans(q: URLSearchParams): void {
  for (const name of BOOLEAN_PARAMS) queryBool(q, name);
}
