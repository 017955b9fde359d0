import { describe, expect, it } from 'vitest';
import { MatcherBuilder } from '../../blocklists/matcher.js';
import { compilePolicy, PolicyError, type PolicySnapshot } from '../../core/policy/compile.js';
import { decide } from '../../core/policy/decide.js';
import type { OverrideInput, PolicyInput } from '../../core/policy/input.js';
import type { CategoryLookup, Identity, RequestTarget } from '../../core/policy/types.js';

// Category ids
const GAMBLING = 1;
const SOCIAL = 2;
const IWF = 3;
const FORUMS = 4;
const GAMES = 5;
const NEWS = 6;
// Group ids
const STAFF = 10;
const PUPILS = 11;
const GUESTS = 12;
const LOCKED = 13;

// Instants in Europe/London (GMT in March: local = UTC).
const TUESDAY_10AM = new Date('2025-03-04T10:00:00Z');
const TUESDAY_6PM = new Date('2025-03-04T18:00:00Z');
const SATURDAY_10AM = new Date('2025-03-08T10:00:00Z');
const HALF_TERM_TUESDAY_10AM = new Date('2025-02-18T10:00:00Z');

function baseInput(overrides: OverrideInput[] = []): PolicyInput {
  return {
    schoolId: 1,
    timeZone: 'Europe/London',
    groups: [
      { id: STAFF, key: 'staff', name: 'Staff', defaultAction: 'allow', isDefault: false },
      { id: PUPILS, key: 'pupils', name: 'Pupils', defaultAction: 'allow', isDefault: false },
      { id: GUESTS, key: 'guests', name: 'Guests', defaultAction: 'allow', isDefault: true },
      { id: LOCKED, key: 'exams', name: 'Exam room', defaultAction: 'block', isDefault: false },
    ],
    schedules: [
      {
        id: 20,
        key: 'school-hours',
        name: 'School hours',
        windows: [{ days: [1, 2, 3, 4, 5], start: '08:30', end: '15:30' }],
        termTimeOnly: true,
      },
    ],
    calendar: [{ kind: 'holiday', name: 'February half term', startsOn: '2025-02-17', endsOn: '2025-02-21' }],
    categories: [
      { id: GAMBLING, key: 'gambling', name: 'Gambling', severity: 'high', illegal: false },
      { id: SOCIAL, key: 'social_networks', name: 'Social networks', severity: 'medium', illegal: false },
      { id: IWF, key: 'iwf', name: 'IWF list', severity: 'critical', illegal: true },
      { id: FORUMS, key: 'forums', name: 'Forums', severity: 'low', illegal: false },
      { id: GAMES, key: 'games', name: 'Games', severity: 'low', illegal: false },
      { id: NEWS, key: 'news', name: 'News', severity: 'none', illegal: false },
    ],
    rules: [
      { id: 100, groupId: PUPILS, categoryId: GAMBLING, action: 'block', scheduleId: null },
      { id: 101, groupId: STAFF, categoryId: SOCIAL, action: 'block_during', scheduleId: 20 },
      { id: 102, groupId: PUPILS, categoryId: FORUMS, action: 'monitor', scheduleId: null },
      { id: 103, groupId: PUPILS, categoryId: NEWS, action: 'allow', scheduleId: null },
      { id: 104, groupId: STAFF, categoryId: FORUMS, action: 'monitor', scheduleId: null },
      { id: 105, groupId: STAFF, categoryId: GAMES, action: 'allow', scheduleId: null },
      { id: 106, groupId: LOCKED, categoryId: NEWS, action: 'allow', scheduleId: null },
    ],
    overrides,
    ipAssignments: [],
    usersDigest: 'none',
  };
}

function lists(): CategoryLookup {
  const b = new MatcherBuilder();
  b.add('domain', 'bet.example', GAMBLING);
  b.add('domain', 'social.example', SOCIAL);
  b.add('domain', 'abuse.example', IWF);
  b.add('domain', 'forum.example', FORUMS);
  b.add('domain', 'games.example', GAMES);
  b.add('domain', 'news.example', NEWS);
  b.add('url', 'news.example/gambling-tips', GAMBLING);
  // A site in several categories.
  for (const c of [GAMBLING, SOCIAL, FORUMS]) b.add('domain', 'everything.example', c);
  for (const c of [SOCIAL, FORUMS]) b.add('domain', 'chatter.example', c);
  for (const c of [FORUMS, NEWS]) b.add('domain', 'comments.example', c);
  return b.build();
}

function snapshot(overrides: OverrideInput[] = []): PolicySnapshot {
  return compilePolicy(baseInput(overrides), lists());
}

function who(groupId: number, groupKey: string): Identity {
  return { userId: null, username: null, groupId, groupKey, source: 'ip-group' };
}
const staff = who(STAFF, 'staff');
const pupil = who(PUPILS, 'pupils');
const guest: Identity = { userId: null, username: null, groupId: GUESTS, groupKey: 'guests', source: 'default' };

const site = (host: string, path?: string): RequestTarget => (path === undefined ? { host, port: 443 } : { host, port: 80, path });

function override(partial: Partial<OverrideInput> & Pick<OverrideInput, 'id' | 'value'>): OverrideInput {
  return { action: 'allow', kind: 'domain', groupId: null, reason: 'testing', decidedBy: 'jsmith', expiresAt: null, ...partial };
}

describe('group default', () => {
  it('applies when no category matches', () => {
    expect(decide(snapshot(), guest, site('unlisted.example'), TUESDAY_10AM)).toEqual({
      action: 'allow',
      categories: [],
      category: null,
      ruleKind: 'default',
      ruleId: null,
      rule: 'default for guests: allow',
    });
  });

  it('applies when the matching categories have no rule for the group', () => {
    const d = decide(snapshot(), guest, site('bet.example'), TUESDAY_10AM);
    expect(d).toMatchObject({ action: 'allow', categories: ['gambling'], ruleKind: 'default' });
  });

  it('can be block', () => {
    const s = snapshot();
    expect(decide(s, who(LOCKED, 'exams'), site('unlisted.example'), TUESDAY_10AM)).toMatchObject({
      action: 'block',
      rule: 'default for exams: block',
    });
    expect(decide(s, who(LOCKED, 'exams'), site('news.example'), TUESDAY_10AM)).toMatchObject({
      action: 'allow',
      rule: 'exams: news is allowed',
    });
  });

  it('falls back to the default group for an identity whose group no longer exists', () => {
    const d = decide(snapshot(), who(999, 'deleted'), site('unlisted.example'), TUESDAY_10AM);
    expect(d.rule).toBe('default for guests: allow');
  });
});

describe('group rules', () => {
  it('blocks a category, subdomains included', () => {
    const s = snapshot();
    for (const host of ['bet.example', 'www.bet.example']) {
      expect(decide(s, pupil, site(host), TUESDAY_10AM)).toEqual({
        action: 'block',
        categories: ['gambling'],
        category: 'gambling',
        ruleKind: 'group_rule',
        ruleId: 100,
        rule: 'pupils: gambling is blocked',
      });
    }
  });

  it('blocks during the schedule only, by the time the caller passes', () => {
    const s = snapshot();
    expect(decide(s, staff, site('social.example'), TUESDAY_10AM)).toMatchObject({
      action: 'block',
      category: 'social_networks',
      ruleId: 101,
      rule: 'staff: social networks are blocked during School hours (Mon–Fri 08:30–15:30)',
    });
    for (const now of [TUESDAY_6PM, SATURDAY_10AM, HALF_TERM_TUESDAY_10AM]) {
      expect(decide(s, staff, site('social.example'), now)).toMatchObject({
        action: 'allow',
        category: 'social_networks',
        ruleId: 101,
        rule: 'staff: social networks are allowed outside School hours (Mon–Fri 08:30–15:30)',
      });
    }
  });

  it('monitors', () => {
    expect(decide(snapshot(), pupil, site('forum.example'), TUESDAY_10AM)).toMatchObject({
      action: 'monitor',
      category: 'forums',
      rule: 'pupils: forums are allowed and monitored',
    });
  });

  it('reports every category most severe first and lets the strongest rule decide', () => {
    const s = snapshot();
    // Pupils: gambling block beats forums monitor.
    expect(decide(s, pupil, site('everything.example'), TUESDAY_6PM)).toMatchObject({
      action: 'block',
      categories: ['gambling', 'social_networks', 'forums'],
      category: 'gambling',
    });
    // Staff: block_during in its window beats monitor…
    expect(decide(s, staff, site('chatter.example'), TUESDAY_10AM)).toMatchObject({
      action: 'block',
      categories: ['social_networks', 'forums'],
      category: 'social_networks',
    });
    // …and outside it, monitor beats what is now an allow.
    expect(decide(s, staff, site('chatter.example'), TUESDAY_6PM)).toMatchObject({
      action: 'monitor',
      category: 'forums',
      rule: 'staff: forums are allowed and monitored',
    });
    // Pupils: monitor beats allow.
    expect(decide(s, pupil, site('comments.example'), TUESDAY_10AM)).toMatchObject({
      action: 'monitor',
      categories: ['forums', 'news'],
      category: 'forums',
    });
  });

  it('consults url entries only when the path is known', () => {
    const s = snapshot();
    expect(decide(s, pupil, site('news.example'), TUESDAY_10AM)).toMatchObject({ action: 'allow', categories: ['news'], category: 'news' });
    expect(decide(s, pupil, site('news.example', '/gambling-tips/today'), TUESDAY_10AM)).toMatchObject({
      action: 'block',
      categories: ['gambling', 'news'],
      category: 'gambling',
    });
    expect(decide(s, pupil, site('news.example', '/weather'), TUESDAY_10AM)).toMatchObject({ action: 'allow', categories: ['news'] });
  });

  it('returns the same category list object for repeated lookups of one site', () => {
    const s = snapshot();
    const first = decide(s, pupil, site('everything.example'), TUESDAY_10AM).categories;
    expect(decide(s, staff, site('www.everything.example'), TUESDAY_6PM).categories).toBe(first);
  });
});

describe('illegal categories', () => {
  it('are blocked for everyone, whatever the overrides', () => {
    const s = snapshot([override({ id: 1, action: 'allow', value: 'abuse.example' })]);
    for (const identity of [staff, pupil, guest]) {
      expect(decide(s, identity, site('www.abuse.example'), TUESDAY_10AM)).toEqual({
        action: 'block',
        categories: ['iwf'],
        category: 'iwf',
        ruleKind: 'illegal',
        ruleId: null,
        rule: 'IWF list: illegal content, always blocked',
      });
    }
  });
});

describe('local overrides', () => {
  it('beat group rules, and name who decided and why', () => {
    const s = snapshot([override({ id: 12, value: 'bet.example', groupId: PUPILS, reason: 'needed for Year 9 history' })]);
    expect(decide(s, pupil, site('bet.example'), TUESDAY_10AM)).toEqual({
      action: 'allow',
      categories: ['gambling'],
      category: null,
      ruleKind: 'override',
      ruleId: 12,
      rule: 'local override #12 by jsmith for pupils: allow bet.example ("needed for Year 9 history")',
    });
  });

  it('for all groups apply to every group; for one group to that group only', () => {
    const s = snapshot([
      override({ id: 1, action: 'block', value: 'unlisted.example' }),
      override({ id: 2, action: 'block', value: 'games.example', groupId: STAFF }),
    ]);
    expect(decide(s, guest, site('a.unlisted.example'), TUESDAY_10AM)).toMatchObject({
      action: 'block',
      rule: 'local override #1 by jsmith: block unlisted.example ("testing")',
    });
    expect(decide(s, staff, site('games.example'), TUESDAY_10AM)).toMatchObject({ action: 'block', ruleId: 2 });
    expect(decide(s, pupil, site('games.example'), TUESDAY_10AM)).toMatchObject({ action: 'allow', ruleKind: 'default' });
  });

  it('the most specific wins: a subdomain over its parent, a group over all groups, then block over allow', () => {
    const s = snapshot([
      override({ id: 1, action: 'block', value: 'example.org' }),
      override({ id: 2, action: 'allow', value: 'docs.example.org' }),
      override({ id: 3, action: 'allow', value: 'maps.example.org', groupId: PUPILS }),
      override({ id: 4, action: 'block', value: 'maps.example.org' }),
      override({ id: 5, action: 'allow', value: 'video.example.org' }),
      override({ id: 6, action: 'block', value: 'video.example.org' }),
    ]);
    expect(decide(s, pupil, site('example.org'), TUESDAY_10AM).ruleId).toBe(1);
    expect(decide(s, pupil, site('www.docs.example.org'), TUESDAY_10AM)).toMatchObject({ action: 'allow', ruleId: 2 });
    expect(decide(s, pupil, site('maps.example.org'), TUESDAY_10AM)).toMatchObject({ action: 'allow', ruleId: 3 });
    expect(decide(s, staff, site('maps.example.org'), TUESDAY_10AM)).toMatchObject({ action: 'block', ruleId: 4 });
    expect(decide(s, pupil, site('video.example.org'), TUESDAY_10AM)).toMatchObject({ action: 'block', ruleId: 6 });
  });

  it('stop applying at expires_at without a recompile', () => {
    const expiry = new Date('2025-03-04T12:00:00Z');
    const s = snapshot([override({ id: 7, value: 'bet.example', expiresAt: expiry })]);
    expect(decide(s, pupil, site('bet.example'), new Date(expiry.getTime() - 1))).toMatchObject({ action: 'allow', ruleId: 7 });
    expect(decide(s, pupil, site('bet.example'), expiry)).toMatchObject({ action: 'block', ruleId: 100 });
  });

  it('url overrides need the path and cover it at a segment boundary, subdomains included', () => {
    const s = snapshot([
      override({ id: 8, action: 'block', kind: 'url', value: 'example.org/private' }),
      override({ id: 9, action: 'allow', kind: 'url', value: 'https://example.org/private/ok/' }),
      override({ id: 10, action: 'block', kind: 'domain', value: 'example.net' }),
      override({ id: 11, action: 'allow', kind: 'url', value: 'example.net/homework' }),
    ]);
    const d = (host: string, path?: string) => decide(s, guest, site(host, path), TUESDAY_10AM);
    expect(d('example.org')).toMatchObject({ action: 'allow', ruleKind: 'default' });
    expect(d('example.org', '/private')).toMatchObject({ action: 'block', ruleId: 8 });
    expect(d('www.example.org', '/private/notes?x=1')).toMatchObject({ action: 'block', ruleId: 8 });
    expect(d('example.org', '/privateer')).toMatchObject({ action: 'allow', ruleKind: 'default' });
    expect(d('example.org', '/private/ok/page')).toMatchObject({ action: 'allow', ruleId: 9 });
    // A url override is more specific than a domain override.
    expect(d('example.net', '/homework/maths')).toMatchObject({ action: 'allow', ruleId: 11 });
    expect(d('example.net', '/games')).toMatchObject({ action: 'block', ruleId: 10 });
    expect(d('example.net')).toMatchObject({ action: 'block', ruleId: 10 });
  });

  it('are compiled from normalised values', () => {
    const s = snapshot([override({ id: 1, action: 'block', value: 'WWW.Example.COM.' })]);
    expect(decide(s, guest, site('www.example.com'), TUESDAY_10AM)).toMatchObject({
      action: 'block',
      rule: 'local override #1 by jsmith: block www.example.com ("testing")',
    });
  });
});

describe('compilation refuses inconsistent input', () => {
  const cases: Array<[string, (input: PolicyInput) => void, RegExp]> = [
    ['a rule for a missing category', (i) => i.rules.push({ id: 200, groupId: PUPILS, categoryId: 99, action: 'block', scheduleId: null }), /group rule #200 \(group "pupils"\): category #99 does not exist/],
    ['a rule for a missing group', (i) => i.rules.push({ id: 201, groupId: 98, categoryId: GAMES, action: 'block', scheduleId: null }), /group rule #201: group #98 does not exist/],
    ['an unknown schedule', (i) => i.rules.push({ id: 202, groupId: PUPILS, categoryId: GAMES, action: 'block_during', scheduleId: 77 }), /group rule #202 \(pupils\/games\): schedule #77 does not exist/],
    ['block_during without a schedule', (i) => i.rules.push({ id: 203, groupId: PUPILS, categoryId: GAMES, action: 'block_during', scheduleId: null }), /block_during needs a schedule/],
    ['a bad action', (i) => i.rules.push({ id: 204, groupId: PUPILS, categoryId: GAMES, action: 'deny' as never, scheduleId: null }), /unknown action "deny"/],
    ['a bad schedule', (i) => i.schedules.push({ id: 21, key: 'lunch', name: 'Lunch', windows: [{ days: [1], start: '13:00', end: '12:00' }], termTimeOnly: false }), /schedule "lunch" \(#21\), window 1: end 12:00 must be after start 13:00/],
    ['a bad override domain', (i) => i.overrides.push(override({ id: 30, value: 'not a host' })), /override #30 \(domain "not a host"\): not a valid domain name/],
    ['a url override without a path', (i) => i.overrides.push(override({ id: 31, kind: 'url', value: 'example.org' })), /override #31 .*a url override is host\/path/],
    ['an override for a missing group', (i) => i.overrides.push(override({ id: 32, value: 'example.org', groupId: 97 })), /group #97 does not exist/],
    ['no default group', (i) => (i.groups[2].isDefault = false), /has no default group/],
    ['two default groups', (i) => (i.groups[0].isDefault = true), /has 2 default groups/],
    ['a bad ip assignment', (i) => i.ipAssignments.push({ id: 40, cidr: '10.0.0.0/33', user: null, groupId: PUPILS }), /"10.0.0.0\/33" is not an address or CIDR range/],
    ['an unknown time zone', (i) => (i.timeZone = 'Mars/Olympus'), /unknown time zone "Mars\/Olympus"/],
  ];
  it.each(cases)('%s', (_, spoil, message) => {
    const input = baseInput();
    spoil(input);
    expect(() => compilePolicy(input, lists())).toThrow(PolicyError);
    expect(() => compilePolicy(input, lists())).toThrow(message);
  });
});

describe('ip assignments', () => {
  it('resolve to the most specific range, a person or a group', () => {
    const input = baseInput();
    input.ipAssignments.push(
      { id: 1, cidr: '10.0.0.0/8', user: null, groupId: PUPILS },
      { id: 2, cidr: '10.1.0.0/16', user: null, groupId: STAFF },
      { id: 3, cidr: '10.1.2.3/32', user: { id: 50, username: 'jsmith', groupId: STAFF }, groupId: null },
      { id: 4, cidr: 'fd00::/8', user: null, groupId: PUPILS },
      { id: 5, cidr: 'fd00:1::/32', user: null, groupId: STAFF },
    );
    const ips = compilePolicy(input, lists()).ipAssignments;
    expect(ips.lookup('10.200.0.1')?.assignmentId).toBe(1);
    expect(ips.lookup('10.1.9.9')?.assignmentId).toBe(2);
    expect(ips.lookup('10.1.2.3')).toEqual({ assignmentId: 3, user: { id: 50, username: 'jsmith' }, groupId: STAFF });
    expect(ips.lookup('::ffff:10.1.2.3')?.assignmentId).toBe(3);
    expect(ips.lookup('11.0.0.1')).toBeUndefined();
    expect(ips.lookup('fd00:1:0:0::5')?.assignmentId).toBe(5);
    expect(ips.lookup('fd12::1')?.assignmentId).toBe(4);
    expect(ips.lookup('fe80::1')).toBeUndefined();
    expect(ips.lookup('not an address')).toBeUndefined();
  });

  it('cover everything with /0, and give way to any narrower range', () => {
    const input = baseInput();
    input.ipAssignments.push(
      { id: 1, cidr: '0.0.0.0/0', user: null, groupId: PUPILS },
      { id: 2, cidr: '255.255.255.0/24', user: null, groupId: STAFF },
      { id: 3, cidr: '::/0', user: null, groupId: PUPILS },
      { id: 4, cidr: '2001:db8::1', user: null, groupId: STAFF },
    );
    const ips = compilePolicy(input, lists()).ipAssignments;
    expect(ips.lookup('1.2.3.4')?.assignmentId).toBe(1);
    expect(ips.lookup('255.255.255.255')?.assignmentId).toBe(2);
    expect(ips.lookup('255.255.254.255')?.assignmentId).toBe(1);
    expect(ips.lookup('2001:db8::2')?.assignmentId).toBe(3);
    expect(ips.lookup('2001:0db8:0000::0001')?.assignmentId).toBe(4);
  });
});

describe('rule sentences', () => {
  it('read as English for the category names we ship', () => {
    const names = ['Gambling', 'Social networks', 'News and press', 'Proxies, strict', 'Fake news', 'DNS over HTTPS', 'VPN services', 'Licensed gambling (France)', 'Drugs'];
    const input = baseInput();
    input.categories = names.map((name, i) => ({ id: 30 + i, key: `c${i}`, name, severity: 'low', illegal: false }));
    input.rules = names.map((_, i) => ({ id: 300 + i, groupId: PUPILS, categoryId: 30 + i, action: 'block', scheduleId: null }));
    const rules = compilePolicy(input, lists()).groups.get(PUPILS)?.rules ?? [];
    expect(names.map((_, i) => rules[30 + i]?.text)).toEqual([
      'pupils: gambling is blocked',
      'pupils: social networks are blocked',
      'pupils: news and press are blocked',
      'pupils: proxies, strict are blocked',
      'pupils: fake news is blocked',
      'pupils: DNS over HTTPS is blocked',
      'pupils: VPN services are blocked',
      'pupils: licensed gambling (France) is blocked',
      'pupils: drugs are blocked',
    ]);
  });
});
