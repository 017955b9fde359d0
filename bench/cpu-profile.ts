// Summarises a V8 CPU profile (.cpuprofile, from node --cpu-prof) of the
// proxy under load: where its CPU time went, by area and by function (self
// time), with idle time left out so the shares are of the time it worked.
import { readFileSync } from 'node:fs';

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
}

interface CpuProfile {
  nodes: ProfileNode[];
  samples: number[];
  timeDeltas: number[];
}

export interface ProfileSummary {
  busyMs: number;
  areas: Array<{ area: string; share: number }>;
  functions: Array<{ name: string; where: string; share: number }>;
}

/** Which part of the stack a frame belongs to, from its script URL. */
function areaOf(frame: ProfileNode['callFrame']): string {
  const { url, functionName } = frame;
  if (functionName === '(garbage collector)') return 'garbage collection';
  if (functionName === '(program)' || (url === '' && functionName !== '')) return 'native (system calls, V8 internals)';
  const own = /\/dist\/([a-z-]+)\//.exec(url);
  if (own && !url.includes('node_modules')) return `Portcullis ${own[1]}/`;
  const pkg = /node_modules\/((?:@[^/]+\/)?[^/]+)\//.exec(url);
  if (pkg) return `${pkg[1]} (library)`;
  if (url.startsWith('node:internal/streams') || url === 'node:stream') return 'Node streams';
  if (/^node:(_http|http|internal\/http)/.test(url)) return 'Node HTTP (server and parser)';
  if (/^node:(net|internal\/stream_base|internal\/net)/.test(url)) return 'Node sockets';
  if (url.startsWith('node:')) return 'Node core (events, timers, other)';
  return 'other';
}

export function summariseCpuProfile(file: string, topFunctions = 12): ProfileSummary {
  const profile = JSON.parse(readFileSync(file, 'utf8')) as CpuProfile;
  const frames = new Map(profile.nodes.map((node) => [node.id, node.callFrame]));
  const selfByArea = new Map<string, number>();
  const selfByFunction = new Map<string, { name: string; where: string; us: number }>();
  let busy = 0;
  for (let i = 0; i < profile.samples.length; i++) {
    const frame = frames.get(profile.samples[i]);
    const us = profile.timeDeltas[i] ?? 0;
    if (!frame || frame.functionName === '(idle)') continue;
    busy += us;
    const area = areaOf(frame);
    selfByArea.set(area, (selfByArea.get(area) ?? 0) + us);
    const where = frame.url === '' ? '' : `${frame.url.replace(/^file:\/\/.*?\/(dist|node_modules)\//, '$1/')}:${frame.lineNumber + 1}`;
    const key = `${frame.functionName}@${where}`;
    const entry = selfByFunction.get(key) ?? { name: frame.functionName || '(anonymous)', where, us: 0 };
    entry.us += us;
    selfByFunction.set(key, entry);
  }
  const share = (us: number) => (busy === 0 ? 0 : us / busy);
  return {
    busyMs: busy / 1_000,
    areas: [...selfByArea.entries()].sort((a, b) => b[1] - a[1]).map(([area, us]) => ({ area, share: share(us) })),
    functions: [...selfByFunction.values()]
      .sort((a, b) => b.us - a.us)
      .slice(0, topFunctions)
      .map((f) => ({ name: f.name, where: f.where, share: share(f.us) })),
  };
}

export function formatProfileSummary(summary: ProfileSummary): string {
  const pct = (x: number) => `${(x * 100).toFixed(1)} %`;
  return [
    '| area (self time) | share of busy CPU |',
    '| --- | ---: |',
    ...summary.areas.filter((a) => a.share >= 0.005).map((a) => `| ${a.area} | ${pct(a.share)} |`),
    '',
    '| function (self time) | where | share |',
    '| --- | --- | ---: |',
    ...summary.functions.map((f) => `| \`${f.name}\` | ${f.where || 'native'} | ${pct(f.share)} |`),
  ].join('\n');
}
