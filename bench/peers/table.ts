// The peers' figures as Markdown tables: one row per peer, then how each
// was set up.
import { medianLightRun, type LoadFigures, type MeasureSettings, type PeerResult } from './measure.js';
import type { QuietTally } from './quiet.js';

const whole = (value: number | undefined): string => (value === undefined || !Number.isFinite(value) ? '–' : Math.round(value).toLocaleString('en-GB'));
const ms = (value: number): string => (value < 10 ? value.toFixed(2) : value.toFixed(1));
const mib = (bytes: number): string => (bytes / 2 ** 20).toFixed(1);
const kib = (bytes: number | undefined): string => (bytes === undefined || !Number.isFinite(bytes) ? '–' : (bytes / 1024).toFixed(1));
/** A garbage collection in the proxy while the clients connect can free more than they take: then there is no figure to give. */
const GC_NOISE = 'GC noise';
const perConnection = (bytes: number): string => (bytes < 0 ? GC_NOISE : kib(bytes));

function row(cells: string[]): string {
  return `| ${cells.join(' | ')} |`;
}

/** "name a, b, c" for every peer that has the runs: each round's figure, in round order. */
function perRound(results: readonly PeerResult[], runs: (r: PeerResult) => readonly LoadFigures[] | undefined, figure: (run: LoadFigures) => string): string {
  return results
    .filter((r) => runs(r) !== undefined)
    .map((r) => `${r.name} ${runs(r)!.map(figure).join(', ')}`)
    .join('; ');
}

export function formatPeerTable(results: readonly PeerResult[], settings: MeasureSettings, quiet: QuietTally): string {
  const c = settings.connections;
  const header = [
    'peer',
    `allowed req/s (${c} conns)`,
    'p50 / p99 ms',
    'peer CPU s',
    `blocked req/s (${c} conns)`,
    'block answer',
    '1 conn req/s',
    '1 conn p50 / p99 ms',
    `CONNECT tunnels/s (${c} at once)`,
    'RSS / PSS MiB (idle)',
    `RSS / PSS KiB per idle conn (${settings.idleClients})`,
    'processes',
  ];
  const lines = [row(header), row(header.map((_, i) => (i === 0 || i === 5 ? '---' : '---:')))];
  for (const r of results) {
    const idle = r.idle;
    const light = medianLightRun(r);
    lines.push(
      row([
        r.name,
        whole(r.allowed.requestsPerSecond),
        `${ms(r.allowed.latencyP50Ms)} / ${ms(r.allowed.latencyP99Ms)}`,
        r.allowed.cpuSeconds.toFixed(1),
        whole(r.blocked?.requestsPerSecond),
        r.blocked?.blockAnswer ?? '–',
        whole(light.requestsPerSecond),
        `${ms(light.latencyP50Ms)} / ${ms(light.latencyP99Ms)}`,
        r.tunnels ? `${whole(r.tunnels.tunnelsPerSecond)}${r.tunnels.failures ? ` (${r.tunnels.failures} failed)` : ''}` : '–',
        `${mib(r.idleUsage.rssBytes)} / ${mib(r.idleUsage.pssBytes)}`,
        idle ? `${perConnection(idle.rssBytesPerConnection)} / ${perConnection(idle.pssBytesPerConnection)}${idle.closedByProxy ? ` (${idle.closedByProxy} closed by the proxy)` : ''}${idle.failures ? ` (${idle.failures} failed)` : ''}` : '–',
        String(r.idleUsage.processes),
      ]),
    );
  }
  const setups = results.map((r) => `- ${r.name} (${r.version}${r.startedIn ? `, started and ready in ${r.startedIn.toFixed(1)} s` : ''}): ${r.settings.join('; ')}`);
  const rate = (run: LoadFigures) => whole(run.requestsPerSecond);
  const how =
    `wrk ${settings.threads} threads, keep-alive; ${settings.rounds} rounds, each with one ${settings.seconds} s run of every case per proxy and one ${settings.lightSeconds} s run at one connection; ` +
    `the allowed and blocked figures are each proxy's median round, the one-connection columns its run with the median p99; CONNECT tunnels and idle clients one run each, after the rounds. Each round's figure: ` +
    `allowed req/s: ${perRound(results, (r) => r.allowedRounds, rate)}. ` +
    `Blocked req/s: ${perRound(results, (r) => r.blockedRounds, rate)}. ` +
    `One-connection p99, ms: ${perRound(results, (r) => r.lightRuns, (run) => ms(run.latencyP99Ms))}. ` +
    `Before each of the ${quiet.runs} timed runs (tunnels and idle clients included) the bench waited for the machine to go quiet (under ${quiet.options.maxBusyCores} cores busy, all processes, over ${quiet.options.windowMs} ms): ` +
    `${(quiet.waitedMs / 1000).toFixed(0)} s of waiting in all${quiet.notQuiet ? `; ${quiet.notQuiet} of them went ahead after ${quiet.options.timeoutMs / 1000} s without it (up to ${quiet.highestBusyCores.toFixed(2)} cores busy)` : ', and every run began on a quiet machine'}. ` +
    `${settings.tunnels} CONNECT tunnels each carrying one request; every case checked against the origin's count.`;
  const noise = results.some((r) => r.idle && (r.idle.rssBytesPerConnection < 0 || r.idle.pssBytesPerConnection < 0))
    ? [`"${GC_NOISE}": the proxy's memory fell while the idle clients connected (a garbage collection freed more than they took), so no figure per connection could be read.`, '']
    : [];
  return [...lines, '', how, '', ...noise, ...setups].join('\n');
}
