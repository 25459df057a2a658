// CronJob schedules, read as Kubernetes reads them (robfig/cron's standard
// parser): five fields (minute hour day-of-month month day-of-week) or one
// of the descriptors @yearly/@annually/@monthly/@weekly/@daily/@midnight/
// @hourly, evaluated in an IANA time zone (UTC by default). The fields are
// parsed by cron-parser; what Kubernetes refuses and cron-parser accepts (a
// sixth, seconds field; @minutely, @weekdays …) is refused here first.
import { type CronExpression, CronExpressionParser } from 'cron-parser';

const DESCRIPTORS: Record<string, string> = {
  '@yearly': '0 0 1 1 *', '@annually': '0 0 1 1 *', '@monthly': '0 0 1 * *', '@weekly': '0 0 * * 0',
  '@daily': '0 0 * * *', '@midnight': '0 0 * * *', '@hourly': '0 * * * *',
};

/** Why an IANA time zone name is refused (Kubernetes' messages), or undefined. */
export function timeZoneError(tz: string): string | undefined {
  if (tz === '') return 'timeZone must be nonempty';
  if (tz === 'Local') return 'timeZone must be an explicit time zone as defined in https://www.iana.org/time-zones';
  try {
    new Intl.DateTimeFormat('en-US', { timeZone: tz });
    return undefined;
  } catch {
    return `unknown time zone ${tz}`;
  }
}

/** The five fields of a schedule; throws with a message for a schedule Kubernetes refuses. */
function standardFields(schedule: string): string {
  const s = schedule.trim();
  if (s.startsWith('@')) {
    const d = DESCRIPTORS[s];
    if (!d) throw new Error(`unrecognized descriptor: ${s}`);
    return d;
  }
  const n = s.split(/\s+/).filter(Boolean).length;
  if (n !== 5) throw new Error(`expected exactly 5 fields, found ${n}: ${s}`);
  return s;
}

/** Why a schedule is refused, or undefined. */
export function scheduleError(schedule: string): string | undefined {
  try {
    parse(schedule, 'UTC', 0);
    return undefined;
  } catch (e) {
    return (e as Error).message;
  }
}

function parse(schedule: string, tz: string, from: number): CronExpression {
  // cron-parser takes a leading sixth field as seconds: always pin seconds to 0.
  return CronExpressionParser.parse(`0 ${standardFields(schedule)}`, { currentDate: new Date(from), tz });
}

export interface Schedule {
  /** The first activation strictly after `t` (ms). */
  next(t: number): number;
  /** The last activation at or before `t` (ms), or undefined. */
  latest(t: number): number | undefined;
}

/** A parsed schedule in a time zone (default UTC); throws as scheduleError says. */
export function parseSchedule(schedule: string, timeZone = 'UTC'): Schedule {
  parse(schedule, timeZone, 0);
  return {
    next: (t) => parse(schedule, timeZone, t).next().getTime(),
    latest: (t) => {
      try {
        return parse(schedule, timeZone, t + 1).prev().getTime();
      } catch {
        return undefined; // no activation before t (out of the parser's range)
      }
    },
  };
}

/**
 * Kubernetes' mostRecentScheduleTime: the latest activation in (earliest, now]
 * and how many activations that window holds (counted up to 101, enough for
 * the "too many missed start times" rule).
 */
export function missedActivations(s: Schedule, earliest: number, now: number): { latest?: number; missed: number } {
  const first = s.next(earliest);
  if (first > now) return { missed: 0 };
  const latest = s.latest(now) ?? first;
  let missed = 1;
  for (let t = first; missed <= 100;) {
    t = s.next(t);
    if (t > latest) break;
    missed++;
  }
  return { latest, missed };
}

/** RFC 3339 of `t` in a time zone, with its offset ("2026-01-01T09:00:00+09:00"; "Z" for UTC). */
export function formatInZone(t: number, timeZone = 'UTC'): string {
  if (timeZone === 'UTC') return new Date(t).toISOString().replace(/\.\d+Z$/, 'Z');
  const parts = Object.fromEntries(new Intl.DateTimeFormat('en-US', {
    timeZone, hourCycle: 'h23', year: 'numeric', month: '2-digit', day: '2-digit', hour: '2-digit', minute: '2-digit', second: '2-digit', timeZoneName: 'longOffset',
  }).formatToParts(new Date(t)).map((p) => [p.type, p.value]));
  const offset = parts.timeZoneName === 'GMT' ? 'Z' : String(parts.timeZoneName).replace('GMT', '');
  return `${parts.year}-${parts.month}-${parts.day}T${parts.hour}:${parts.minute}:${parts.second}${offset}`;
}
