// Portcullis against the peers measured in the same run, as ratios, each
// beside the aim issue 7 sets for it.
import { median } from '../common.js';
import type { PeerResult } from './measure.js';
import { NODE_RELAY_NAME } from './node-relay.js';

const isPortcullis = (r: PeerResult): boolean => r.name.startsWith('Portcullis');
const isLimit = (r: PeerResult): boolean => r.name.startsWith('origin direct');
/** The bare Node.js relay: a reference, not a peer a school would run, so never the "best peer". */
const isFloor = (r: PeerResult): boolean => r.name === NODE_RELAY_NAME;

/** The best peer's figure in each round (by `value`), and the peers that were best. */
function bestPerRound(peers: readonly PeerResult[], rounds: number, value: (r: PeerResult, round: number) => number | undefined): { values: Array<number | undefined>; names: string[] } {
  const values: Array<number | undefined> = [];
  const names = new Set<string>();
  for (let round = 0; round < rounds; round++) {
    let found: { name: string; value: number } | undefined;
    for (const r of peers) {
      const v = value(r, round);
      if (v !== undefined && Number.isFinite(v) && (found === undefined || v > found.value)) found = { name: r.name, value: v };
    }
    values.push(found?.value);
    if (found) names.add(found.name);
  }
  return { values, names: [...names] };
}

/**
 * Portcullis's figure over the other's, round by round (both measured in the
 * same round, so in the same spell of the machine), as the median of those
 * ratios with each round's beside it.
 */
function roundRatios(ours: ReadonlyArray<number | undefined>, theirs: ReadonlyArray<number | undefined>, aim?: string): string {
  const ratios: number[] = [];
  ours.forEach((value, round) => {
    const other = theirs[round];
    if (value !== undefined && other !== undefined && other > 0) ratios.push(value / other);
  });
  if (ratios.length === 0) return '–';
  const notes = [...(ratios.length > 1 ? [`rounds ${ratios.map((r) => r.toFixed(2)).join(', ')}`] : []), ...(aim ? [`aim ${aim}`] : [])];
  return `${median(ratios).toFixed(2)}×${notes.length ? ` (${notes.join('; ')})` : ''}`;
}

const ratio = (a: number, b: number | undefined): string => (b === undefined || b === 0 ? '–' : `${(a / b).toFixed(2)}×`);

/** The most the proxy held after any request load (allowed, one connection, blocked, every round): lists, connections and what the load left behind. */
function highestRss(r: PeerResult): number {
  const runs = [...r.allowedRounds, ...r.lightRuns, ...(r.blockedRounds ?? [])];
  return Math.max(r.idleUsage.rssBytes, ...runs.map((run) => run.usage.rssBytes));
}

const mebibytes = (bytes: number): string => (bytes / 2 ** 20).toFixed(0);
/** The issue's aim, 400 MB (10^6 bytes), in the MiB the table shows. */
const AIM_MIB = Math.floor(400e6 / 2 ** 20);
/** portcullis-5m's name ends with the domain count it serves (bench/peers/portcullis.ts). */
const holdsFullLists = (r: PeerResult): boolean => / domains$/.test(r.name);

/**
 * What the proxy adds to the one-connection p99: round by round, its p99
 * less the origin's in the same round, the median of those. When that median
 * is below zero (the origin alone slower in most rounds, or by more in the
 * rounds it was slower in) it was disturbed while measured: no figure is
 * made of that.
 */
function addedP99Cell(r: PeerResult, limit: PeerResult | undefined): string {
  if (!limit) return '–';
  const added = r.lightRuns.map((run, round) => run.latencyP99Ms - (limit.lightRuns[round]?.latencyP99Ms ?? Number.NaN)).filter(Number.isFinite);
  if (added.length === 0) return '–';
  const middle = median(added);
  if (middle < 0) return `– (the origin alone had the higher p99 in most rounds: disturbed, measure again)`;
  const each = added.length > 1 ? `rounds ${added.map((a) => a.toFixed(2)).join(', ')}; ` : '';
  return `${middle.toFixed(2)} ms (${each}aim < 2 ms)`;
}

export function formatRatios(results: readonly PeerResult[]): string {
  const peers = results.filter((r) => !isPortcullis(r) && !isLimit(r) && !isFloor(r));
  const limit = results.find(isLimit);
  const floor = results.find(isFloor);
  const rounds = Math.max(0, ...results.map((r) => r.allowedRounds.length));
  const allowedOf = (r: PeerResult, round: number) => r.allowedRounds[round]?.requestsPerSecond;
  const blockedOf = (r: PeerResult, round: number) => r.blockedRounds?.[round]?.requestsPerSecond;
  const roundsOf = (r: PeerResult, value: (r: PeerResult, round: number) => number | undefined) => Array.from({ length: rounds }, (_, round) => value(r, round));
  const bestAllowed = bestPerRound(peers, rounds, allowedOf);
  const bestBlocked = bestPerRound(peers, rounds, blockedOf);
  const bestTunnels = bestPerRound(peers, 1, (r) => r.tunnels?.tunnelsPerSecond);
  const rows = results.filter(isPortcullis).map((r) => {
    return [
      r.name,
      roundRatios(roundsOf(r, allowedOf), bestAllowed.values, '≥ 1×'),
      limit ? roundRatios(roundsOf(r, allowedOf), roundsOf(limit, allowedOf), '≥ 0.5×') : '–',
      floor ? roundRatios(roundsOf(r, allowedOf), roundsOf(floor, allowedOf)) : '–',
      r.blocked ? roundRatios(roundsOf(r, blockedOf), bestBlocked.values, '≥ 2×') : '–',
      r.tunnels ? ratio(r.tunnels.tunnelsPerSecond, bestTunnels.values[0]) : '–',
      addedP99Cell(r, limit),
      `${mebibytes(r.idleUsage.rssBytes)} / ${mebibytes(highestRss(r))} MiB${holdsFullLists(r) ? ` (aim < 400 MB = ${AIM_MIB} MiB)` : ''}`,
    ];
  });
  const scaling = (() => {
    const one = results.find((r) => r.name === 'Portcullis, 1 process');
    const many = results.find((r) => /^Portcullis, \d+ workers$/.test(r.name));
    if (!one || !many) return '';
    return `Scaling: ${many.name} ÷ one process: ${roundRatios(roundsOf(many, allowedOf), roundsOf(one, allowedOf))} allowed requests/s, ${roundRatios(roundsOf(many, blockedOf), roundsOf(one, blockedOf))} blocked.`;
  })();
  const floorLine = floor && limit
    ? `${NODE_RELAY_NAME} ÷ origin direct: ${roundRatios(roundsOf(floor, allowedOf), roundsOf(limit, allowedOf))} allowed requests/s. The relay does no more than any Node.js proxy must: its rate is about the most a Node.js proxy can expect here, before any filtering, identification or logging.`
    : '';
  const named = (best: { names: string[] }) => best.names.join(' or ') || '–';
  const header = [
    'Portcullis',
    `allowed req/s ÷ best peer of each round (${named(bestAllowed)})`,
    'allowed req/s ÷ origin direct',
    'allowed req/s ÷ Node relay (the floor)',
    `blocked req/s ÷ best filtering peer of each round (${named(bestBlocked)})`,
    `CONNECT tunnels/s ÷ best peer (${named(bestTunnels)})`,
    'p99 added at one connection (vs origin direct, same round)',
    'RSS idle / highest after the request loads',
  ];
  return [
    `| ${header.join(' | ')} |`,
    `| ${header.map((_, i) => (i === 0 ? '---' : '---:')).join(' | ')} |`,
    ...rows.map((cells) => `| ${cells.join(' | ')} |`),
    '',
    'Each ratio is the median of the ratios within each round (both figures taken in the same round, so in the same spell of the machine), with every round\'s beside it.',
    '',
    [floorLine, scaling].filter(Boolean).join('\n\n'),
  ].join('\n');
}
