// The one duration parser of flags and configuration: Go's time.ParseDuration
// units ("500ms", "30s", "2m", "1h30m", "168h") plus "d" for days; a bare
// number is seconds (as kubectl's --timeout accepts). Quantities
// ("100m", "1Gi") are parsed by parseQuantity in schema/validate.ts.

const UNIT_MS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 };

export class DurationError extends Error {
  override name = 'DurationError';
}

/** A duration in milliseconds; throws DurationError naming `what` (a flag or field) when `v` is not one. */
export function parseDuration(v: string, what: string): number {
  const s = v.trim();
  if (/^\d+(?:\.\d+)?$/.test(s)) return Number(s) * 1000;
  const re = /(\d+(?:\.\d+)?)(ms|s|m|h|d)/y;
  let total = 0;
  let at = 0;
  while (at < s.length) {
    re.lastIndex = at;
    const m = re.exec(s);
    if (!m) break;
    total += Number(m[1]) * UNIT_MS[m[2]!]!;
    at = re.lastIndex;
  }
  if (!s || at !== s.length) throw new DurationError(`invalid value "${v}" for ${what}: expected a duration such as 500ms, 30s, 2m, 1h30m or 168h`);
  return total;
}
