import { describe, expect, it } from 'vitest';
import { compileSchedule, SchoolClock, ScheduleError, type CalendarPeriod, type ScheduleDefinition } from '../../core/schedule.js';

const LONDON = 'Europe/London';

function schedule(windows: unknown, termTimeOnly = false, calendar: CalendarPeriod[] = [], timeZone = LONDON) {
  const def: ScheduleDefinition = { id: 7, key: 'school-hours', name: 'School hours', windows, termTimeOnly };
  return compileSchedule(def, new SchoolClock(timeZone, calendar));
}

const schoolHours = [{ days: [1, 2, 3, 4, 5], start: '08:30', end: '15:30' }];
const at = (iso: string) => new Date(iso);

describe('weekly windows in the school time zone', () => {
  it('uses GMT in winter: start inclusive, end exclusive, to the millisecond', () => {
    const s = schedule(schoolHours);
    // Tuesday 4 March 2025, GMT = UTC.
    expect(s.isActive(at('2025-03-04T08:29:59.999Z'))).toBe(false);
    expect(s.isActive(at('2025-03-04T08:30:00.000Z'))).toBe(true);
    expect(s.isActive(at('2025-03-04T15:29:59.999Z'))).toBe(true);
    expect(s.isActive(at('2025-03-04T15:30:00.000Z'))).toBe(false);
  });

  it('uses BST in summer: 08:30 local is 07:30 UTC', () => {
    const s = schedule(schoolHours);
    // Tuesday 1 July 2025, BST = UTC+1.
    expect(s.isActive(at('2025-07-01T07:29:00Z'))).toBe(false);
    expect(s.isActive(at('2025-07-01T07:30:00Z'))).toBe(true);
    expect(s.isActive(at('2025-07-01T14:29:00Z'))).toBe(true);
    expect(s.isActive(at('2025-07-01T14:30:00Z'))).toBe(false);
    expect(s.isActive(at('2025-07-01T15:00:00Z'))).toBe(false);
  });

  it('is inactive at weekends', () => {
    const s = schedule(schoolHours);
    expect(s.isActive(at('2025-03-08T10:00:00Z'))).toBe(false); // Saturday
    expect(s.isActive(at('2025-03-09T10:00:00Z'))).toBe(false); // Sunday
    expect(s.isActive(at('2025-03-10T10:00:00Z'))).toBe(true); // Monday
  });

  it('takes the weekday from the local date, not the UTC date', () => {
    const s = schedule([{ days: [2], start: '00:00', end: '01:00' }]);
    // Monday 7 July 2025 23:30 UTC is Tuesday 00:30 BST.
    expect(s.isActive(at('2025-07-07T23:30:00Z'))).toBe(true);
    // Monday 3 March 2025 23:30 UTC is still Monday in GMT.
    expect(s.isActive(at('2025-03-03T23:30:00Z'))).toBe(false);
  });

  it('handles the spring-forward gap (30 March 2025, 01:00 GMT → 02:00 BST)', () => {
    const s = schedule([{ days: [7], start: '01:30', end: '02:30' }]);
    expect(s.isActive(at('2025-03-30T00:45:00Z'))).toBe(false); // 00:45 GMT
    expect(s.isActive(at('2025-03-30T00:59:00Z'))).toBe(false); // 00:59 GMT
    expect(s.isActive(at('2025-03-30T01:00:00Z'))).toBe(true); // 02:00 BST: 01:30–02:00 never happened
    expect(s.isActive(at('2025-03-30T01:29:00Z'))).toBe(true); // 02:29 BST
    expect(s.isActive(at('2025-03-30T01:30:00Z'))).toBe(false); // 02:30 BST
  });

  it('handles the autumn repeated hour (26 October 2025, 02:00 BST → 01:00 GMT)', () => {
    const s = schedule([{ days: [7], start: '01:00', end: '02:00' }]);
    expect(s.isActive(at('2025-10-25T23:59:00Z'))).toBe(false); // 00:59 BST
    expect(s.isActive(at('2025-10-26T00:00:00Z'))).toBe(true); // 01:00 BST
    expect(s.isActive(at('2025-10-26T00:59:00Z'))).toBe(true); // 01:59 BST
    expect(s.isActive(at('2025-10-26T01:00:00Z'))).toBe(true); // 01:00 GMT, the hour again
    expect(s.isActive(at('2025-10-26T01:59:00Z'))).toBe(true); // 01:59 GMT
    expect(s.isActive(at('2025-10-26T02:00:00Z'))).toBe(false); // 02:00 GMT
  });

  it('follows another time zone when the school is elsewhere', () => {
    const s = schedule(schoolHours, false, [], 'America/New_York');
    // Tuesday 4 March 2025 08:30 EST is 13:30 UTC.
    expect(s.isActive(at('2025-03-04T13:29:00Z'))).toBe(false);
    expect(s.isActive(at('2025-03-04T13:30:00Z'))).toBe(true);
  });

  it('allows a window to run to the end of the day with 24:00', () => {
    const s = schedule([{ days: [6], start: '20:00', end: '24:00' }]);
    expect(s.isActive(at('2025-03-08T23:59:00Z'))).toBe(true);
    expect(s.isActive(at('2025-03-09T00:00:00Z'))).toBe(false);
  });
});

describe('term time', () => {
  const calendar: CalendarPeriod[] = [
    { kind: 'term', name: 'Autumn 1', startsOn: '2025-09-03', endsOn: '2025-10-24' },
    { kind: 'term', name: 'Autumn 2', startsOn: '2025-11-03', endsOn: '2025-12-19' },
    { kind: 'holiday', name: 'INSET day', startsOn: '2025-11-20', endsOn: '2025-11-20' },
  ];

  it('applies only on days some term covers and no holiday does', () => {
    const s = schedule(schoolHours, true, calendar);
    expect(s.isActive(at('2025-09-09T09:00:00Z'))).toBe(true); // Tue in Autumn 1, 10:00 BST
    expect(s.isActive(at('2025-10-24T09:00:00Z'))).toBe(true); // last day of term, inclusive
    expect(s.isActive(at('2025-10-28T10:00:00Z'))).toBe(false); // Tue, half term
    expect(s.isActive(at('2025-11-03T10:00:00Z'))).toBe(true); // first day of Autumn 2
    expect(s.isActive(at('2025-11-20T10:00:00Z'))).toBe(false); // INSET day inside term
    expect(s.isActive(at('2025-11-21T10:00:00Z'))).toBe(true);
  });

  it('ignores the calendar when the schedule is not term-time only', () => {
    const s = schedule(schoolHours, false, calendar);
    expect(s.isActive(at('2025-10-28T10:00:00Z'))).toBe(true);
  });

  it('treats every non-holiday day as a term day when no terms are recorded', () => {
    const holidaysOnly: CalendarPeriod[] = [{ kind: 'holiday', name: 'Summer', startsOn: '2025-07-22', endsOn: '2025-09-02' }];
    const s = schedule([{ days: [1, 2, 3, 4, 5, 6, 7], start: '00:00', end: '24:00' }], true, holidaysOnly);
    expect(s.isActive(at('2025-07-21T22:59:00Z'))).toBe(true); // Mon 21 July 23:59 BST
    expect(s.isActive(at('2025-07-21T23:00:00Z'))).toBe(false); // Tue 22 July 00:00 BST: holiday by local date
    expect(s.isActive(at('2025-09-02T22:59:00Z'))).toBe(false); // 2 September, inclusive end
    expect(s.isActive(at('2025-09-02T23:00:00Z'))).toBe(true); // 3 September 00:00 BST
  });

  it('refuses calendar periods with impossible dates', () => {
    expect(() => new SchoolClock(LONDON, [{ kind: 'term', name: 'Spring', startsOn: '2025-02-30', endsOn: '2025-03-01' }])).toThrow(
      /calendar period "Spring": dates must be YYYY-MM-DD/,
    );
    expect(() => new SchoolClock(LONDON, [{ kind: 'term', name: 'Spring', startsOn: '2025-03-02', endsOn: '2025-03-01' }])).toThrow(
      /ends before it starts/,
    );
  });
});

describe('validation', () => {
  const bad: Array<[unknown, RegExp]> = [
    [{ days: [1] }, /not an array|must be a list/],
    [[{ days: [0], start: '08:30', end: '15:30' }], /day 0 is not an ISO weekday/],
    [[{ days: [8], start: '08:30', end: '15:30' }], /day 8 is not an ISO weekday/],
    [[{ days: ['1'], start: '08:30', end: '15:30' }], /day "1" is not an ISO weekday/],
    [[{ days: [], start: '08:30', end: '15:30' }], /days must be a non-empty list/],
    [[{ days: [1], start: '8:30', end: '15:30' }], /start "8:30" is not a time HH:MM/],
    [[{ days: [1], start: '08:30', end: '25:00' }], /end "25:00" is not a time/],
    [[{ days: [1], start: '24:00', end: '24:00' }], /start "24:00" is not a time/],
    [[{ days: [1], start: '15:30', end: '15:30' }], /end 15:30 must be after start 15:30/],
    [[{ days: [1], start: '22:00', end: '02:00' }], /crosses midnight/],
    [['08:30-15:30'], /window 1: expected \{days, start, end\}/],
  ];
  it.each(bad)('refuses %j with an error naming the schedule', (windows, message) => {
    expect(() => schedule(windows)).toThrow(ScheduleError);
    expect(() => schedule(windows)).toThrow(message);
    expect(() => schedule(windows)).toThrow(/schedule "school-hours" \(#7\)/);
  });

  it('refuses an unknown time zone', () => {
    expect(() => new SchoolClock('Europe/Londn', [])).toThrow(/unknown time zone "Europe\/Londn"/);
  });
});

describe('description', () => {
  it('names the schedule and its windows readably', () => {
    expect(schedule(schoolHours).description).toBe('School hours (Mon–Fri 08:30–15:30)');
    expect(
      schedule([
        { days: [1, 3, 5], start: '12:00', end: '13:00' },
        { days: [6, 7], start: '09:00', end: '10:00' },
      ]).description,
    ).toBe('School hours (Mon, Wed, Fri 12:00–13:00; Sat, Sun 09:00–10:00)');
  });
});
