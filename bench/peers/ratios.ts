// Portcullis against the peers measured in the same run, as ratios, each
// beside the aim issue 7 sets for it.
import { medianLightRun, type PeerResult } from './measure.js';

const isPortcullis = (r: PeerResult): boolean => r.name.startsWith('Portcullis');
const isLimit = (r: PeerResult): boolean => r.name.startsWith('origin direct');

function best(results: readonly PeerResult[], value: (r: PeerResult) => number | undefined): { name: string; value: number } | undefined {
  let found: { name: string; value: number } | undefined;
  for (const r of results) {
    const v = value(r);
    if (v !== undefined && Number.isFinite(v) && (found === undefined || v > found.value)) found = { name: r.name, value: v };
  }
  return found;
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
 * What the proxy adds to the one-connection p99, median run against median
 * run. An origin slower on its own than through the proxy was disturbed
 * while measured: no figure is made of that.
 */
function addedP99Cell(r: PeerResult, limit: PeerResult | undefined): string {
  if (!limit) return '–';
  const through = medianLightRun(r).latencyP99Ms;
  const direct = medianLightRun(limit).latencyP99Ms;
  if (direct > through) return `– (the origin alone had the higher p99, ${direct.toFixed(2)} against ${through.toFixed(2)} ms: disturbed, measure again)`;
  return `${(through - direct).toFixed(2)} ms (aim < 2 ms)`;
}

export function formatRatios(results: readonly PeerResult[]): string {
  const peers = results.filter((r) => !isPortcullis(r) && !isLimit(r));
  const limit = results.find(isLimit);
  const bestAllowed = best(peers, (r) => r.allowed.requestsPerSecond);
  const bestBlocked = best(peers, (r) => r.blocked?.requestsPerSecond);
  const bestTunnels = best(peers, (r) => r.tunnels?.tunnelsPerSecond);
  const rows = results.filter(isPortcullis).map((r) => {
    return [
      r.name,
      `${ratio(r.allowed.requestsPerSecond, bestAllowed?.value)} (aim ≥ 1×)`,
      `${ratio(r.allowed.requestsPerSecond, limit?.allowed.requestsPerSecond)} (aim ≥ 0.5×)`,
      r.blocked ? `${ratio(r.blocked.requestsPerSecond, bestBlocked?.value)} (aim ≥ 2×)` : '–',
      r.tunnels ? ratio(r.tunnels.tunnelsPerSecond, bestTunnels?.value) : '–',
      addedP99Cell(r, limit),
      `${mebibytes(r.idleUsage.rssBytes)} / ${mebibytes(highestRss(r))} MiB${holdsFullLists(r) ? ` (aim < 400 MB = ${AIM_MIB} MiB)` : ''}`,
    ];
  });
  const scaling = (() => {
    const one = results.find((r) => r.name === 'Portcullis, 1 process');
    const many = results.find((r) => /^Portcullis, \d+ workers$/.test(r.name));
    return one && many ? `Scaling: ${many.name} ÷ one process = ${ratio(many.allowed.requestsPerSecond, one.allowed.requestsPerSecond)} allowed requests/s, ${ratio(many.blocked?.requestsPerSecond ?? 0, one.blocked?.requestsPerSecond)} blocked.` : '';
  })();
  const header = [
    'Portcullis',
    `allowed req/s ÷ best peer (${bestAllowed?.name ?? '–'})`,
    'allowed req/s ÷ origin direct',
    `blocked req/s ÷ best filtering peer (${bestBlocked?.name ?? '–'})`,
    `CONNECT tunnels/s ÷ best peer (${bestTunnels?.name ?? '–'})`,
    'p99 added at one connection (vs origin direct)',
    'RSS idle / highest after the request loads',
  ];
  return [
    `| ${header.join(' | ')} |`,
    `| ${header.map((_, i) => (i === 0 ? '---' : '---:')).join(' | ')} |`,
    ...rows.map((cells) => `| ${cells.join(' | ')} |`),
    '',
    scaling,
  ].join('\n');
}
