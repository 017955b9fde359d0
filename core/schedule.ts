// Schedules: weekly windows in the school's time zone, optionally on term
// days only. Local time comes from Intl (so DST is the time zone database's
// business, not ours) and is cached per minute: the hot path formats a date
// at most once a minute, not once a request.

/** A weekly window as stored in schedules.windows: ISO weekdays (1 = Monday), "HH:MM" times, end exclusive. */
export interface ScheduleWindow {
  days: number[];
  start: string;
  end: string;
}

export interface ScheduleDefinition {
  id: number;
  key: string;
  name: string;
  /** Unvalidated JSON from the database; compileSchedule checks it. */
  windows: unknown;
  termTimeOnly: boolean;
}

export interface CalendarPeriod {
  kind: 'term' | 'holiday';
  name: string;
  /** Inclusive local dates, "YYYY-MM-DD". */
  startsOn: string;
  endsOn: string;
}

export class ScheduleError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ScheduleError';
  }
}

/** What a schedule needs to know about an instant, in the school's local time. */
export interface LocalMoment {
  /** 1 = Monday … 7 = Sunday. */
  readonly weekday: number;
  /** Minutes since local midnight, 0–1439. */
  readonly minuteOfDay: number;
  readonly isTermDay: boolean;
}

const MS_PER_MINUTE = 60_000;
const MS_PER_DAY = 86_400_000;
const DAY_NAMES = ['Mon', 'Tue', 'Wed', 'Thu', 'Fri', 'Sat', 'Sun'];

/** Days since 1970-01-01 for a "YYYY-MM-DD" date, or undefined when it is not a real date. */
function dayNumberOf(date: string): number | undefined {
  const m = /^(\d{4})-(\d{2})-(\d{2})$/.exec(date);
  if (!m) return undefined;
  const [year, month, day] = [Number(m[1]), Number(m[2]), Number(m[3])];
  const ms = Date.UTC(year, month - 1, day);
  const check = new Date(ms);
  if (check.getUTCMonth() !== month - 1 || check.getUTCDate() !== day) return undefined;
  return ms / MS_PER_DAY;
}

interface DayRange {
  first: number;
  last: number;
}

/**
 * The school's clock and calendar: local weekday, time and term-day status of
 * an instant. Shared by every schedule of a school so that they share the
 * per-minute cache.
 */
export class SchoolClock {
  readonly timeZone: string;
  private readonly format: Intl.DateTimeFormat;
  private readonly terms: DayRange[];
  private readonly holidays: DayRange[];
  private cachedMinute = Number.NaN;
  private cachedMoment: LocalMoment = { weekday: 1, minuteOfDay: 0, isTermDay: true };

  constructor(timeZone: string, calendar: readonly CalendarPeriod[]) {
    try {
      this.format = new Intl.DateTimeFormat('en-GB', {
        timeZone,
        year: 'numeric',
        month: 'numeric',
        day: 'numeric',
        hour: 'numeric',
        minute: 'numeric',
        hourCycle: 'h23',
      });
    } catch {
      throw new ScheduleError(`unknown time zone "${timeZone}" (expected an IANA name such as Europe/London)`);
    }
    this.timeZone = timeZone;
    this.terms = [];
    this.holidays = [];
    for (const period of calendar) {
      const first = dayNumberOf(period.startsOn);
      const last = dayNumberOf(period.endsOn);
      if (first === undefined || last === undefined) {
        throw new ScheduleError(
          `calendar period "${period.name}": dates must be YYYY-MM-DD (got ${period.startsOn} to ${period.endsOn})`,
        );
      }
      if (last < first) throw new ScheduleError(`calendar period "${period.name}" ends before it starts`);
      if (period.kind !== 'term' && period.kind !== 'holiday') {
        throw new ScheduleError(`calendar period "${period.name}": kind must be term or holiday, not "${String(period.kind)}"`);
      }
      (period.kind === 'term' ? this.terms : this.holidays).push({ first, last });
    }
  }

  /** The local moment of `now`; recomputed only when the minute changes. */
  at(now: Date): LocalMoment {
    const minute = Math.floor(now.getTime() / MS_PER_MINUTE);
    if (minute !== this.cachedMinute) {
      this.cachedMoment = this.compute(minute * MS_PER_MINUTE);
      this.cachedMinute = minute;
    }
    return this.cachedMoment;
  }

  /** A term day: some term covers it and no holiday does; with no terms recorded, any non-holiday. */
  isTermDay(dayNumber: number): boolean {
    const covers = (r: DayRange): boolean => dayNumber >= r.first && dayNumber <= r.last;
    if (this.holidays.some(covers)) return false;
    return this.terms.length === 0 || this.terms.some(covers);
  }

  private compute(epochMs: number): LocalMoment {
    let year = 0;
    let month = 0;
    let day = 0;
    let hour = 0;
    let minute = 0;
    for (const part of this.format.formatToParts(epochMs)) {
      switch (part.type) {
        case 'year': year = Number(part.value); break;
        case 'month': month = Number(part.value); break;
        case 'day': day = Number(part.value); break;
        case 'hour': hour = Number(part.value); break;
        case 'minute': minute = Number(part.value); break;
        default: break;
      }
    }
    const dayNumber = Date.UTC(year, month - 1, day) / MS_PER_DAY;
    // 1970-01-01 (day 0) was a Thursday, ISO weekday 4.
    const weekday = ((((dayNumber + 3) % 7) + 7) % 7) + 1;
    return { weekday, minuteOfDay: hour * 60 + minute, isTermDay: this.isTermDay(dayNumber) };
  }
}

export interface CompiledSchedule {
  readonly id: number;
  readonly key: string;
  readonly name: string;
  readonly termTimeOnly: boolean;
  /** e.g. "School hours (Mon–Fri 08:30–15:30)". */
  readonly description: string;
  isActive(now: Date): boolean;
}

function parseTime(text: unknown, allowEndOfDay: boolean): number | undefined {
  if (typeof text !== 'string') return undefined;
  const m = /^(\d{2}):(\d{2})$/.exec(text);
  if (!m) return undefined;
  const hours = Number(m[1]);
  const minutes = Number(m[2]);
  if (allowEndOfDay && hours === 24 && minutes === 0) return 24 * 60;
  if (hours > 23 || minutes > 59) return undefined;
  return hours * 60 + minutes;
}

function describeDays(days: readonly number[]): string {
  const sorted = [...new Set(days)].sort((a, b) => a - b);
  const runs: string[] = [];
  for (let i = 0; i < sorted.length; ) {
    let j = i;
    while (j + 1 < sorted.length && sorted[j + 1] === sorted[j] + 1) j++;
    const first = DAY_NAMES[sorted[i] - 1];
    const last = DAY_NAMES[sorted[j] - 1];
    if (j - i >= 2) runs.push(`${first}–${last}`);
    else runs.push(...sorted.slice(i, j + 1).map((d) => DAY_NAMES[d - 1]));
    i = j + 1;
  }
  return runs.join(', ');
}

/** Validates the stored windows; every failure names the schedule. */
function parseWindows(def: ScheduleDefinition): ScheduleWindow[] {
  const where = `schedule "${def.key}" (#${def.id})`;
  if (!Array.isArray(def.windows)) {
    throw new ScheduleError(`${where}: windows must be a list of {days, start, end}, got ${JSON.stringify(def.windows)}`);
  }
  return def.windows.map((raw: unknown, index): ScheduleWindow => {
    const at = `${where}, window ${index + 1}`;
    if (typeof raw !== 'object' || raw === null) throw new ScheduleError(`${at}: expected {days, start, end}`);
    const { days, start, end } = raw as Record<string, unknown>;
    if (!Array.isArray(days) || days.length === 0) {
      throw new ScheduleError(`${at}: days must be a non-empty list of ISO weekdays (1 = Monday … 7 = Sunday)`);
    }
    for (const d of days) {
      if (!Number.isInteger(d) || (d as number) < 1 || (d as number) > 7) {
        throw new ScheduleError(`${at}: day ${JSON.stringify(d)} is not an ISO weekday (1 = Monday … 7 = Sunday)`);
      }
    }
    const startMinute = parseTime(start, false);
    const endMinute = parseTime(end, true);
    if (startMinute === undefined) throw new ScheduleError(`${at}: start ${JSON.stringify(start)} is not a time HH:MM`);
    if (endMinute === undefined) throw new ScheduleError(`${at}: end ${JSON.stringify(end)} is not a time HH:MM (or 24:00)`);
    if (endMinute <= startMinute) {
      throw new ScheduleError(`${at}: end ${String(end)} must be after start ${String(start)} (split a window that crosses midnight in two)`);
    }
    return { days: days as number[], start: start as string, end: end as string };
  });
}

export function compileSchedule(def: ScheduleDefinition, clock: SchoolClock): CompiledSchedule {
  const windows = parseWindows(def);
  // Per ISO weekday (index 1–7): flat [start, end, start, end, …] minutes.
  const byWeekday: number[][] = Array.from({ length: 8 }, () => []);
  for (const w of windows) {
    const start = parseTime(w.start, false) as number;
    const end = parseTime(w.end, true) as number;
    for (const d of w.days) byWeekday[d].push(start, end);
  }
  const termTimeOnly = def.termTimeOnly;
  const description = `${def.name} (${windows.map((w) => `${describeDays(w.days)} ${w.start}–${w.end}`).join('; ')})`;
  return Object.freeze({
    id: def.id,
    key: def.key,
    name: def.name,
    termTimeOnly,
    description,
    isActive(now: Date): boolean {
      const moment = clock.at(now);
      if (termTimeOnly && !moment.isTermDay) return false;
      const ranges = byWeekday[moment.weekday];
      for (let i = 0; i < ranges.length; i += 2) {
        if (moment.minuteOfDay >= ranges[i] && moment.minuteOfDay < ranges[i + 1]) return true;
      }
      return false;
    },
  });
}
