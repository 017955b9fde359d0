import { PassThrough } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { createProgressReporter, renderBar, renderPlain } from '../../blocklists/progress.js';

function capture(isTTY: boolean): { stream: PassThrough; text: () => string } {
  const stream = Object.assign(new PassThrough(), { isTTY });
  const chunks: string[] = [];
  stream.on('data', (c: Buffer) => chunks.push(c.toString()));
  return { stream, text: () => chunks.join('') };
}

describe('progress rendering', () => {
  it('draws a bar proportional to the work done', () => {
    expect(renderBar('importing', { done: 0, total: 200, detail: 'x' })).toBe(`importing [${'-'.repeat(30)}]   0% x`);
    expect(renderBar('importing', { done: 100, total: 200, detail: 'x' })).toBe(`importing [${'#'.repeat(15)}${'-'.repeat(15)}]  50% x`);
    expect(renderBar('importing', { done: 250, total: 200, detail: 'x' })).toBe(`importing [${'#'.repeat(30)}] 100% x`);
    expect(renderBar('downloading', { done: 5, detail: '5 KiB' })).toBe('downloading 5 KiB');
    expect(renderPlain('importing', { done: 1, total: 3, detail: '10 entries, games' })).toBe('importing:  33%, 10 entries, games');
    expect(renderPlain('importing', { detail: '10 entries' })).toBe('importing: 10 entries');
  });

  it('redraws in place on a terminal, at most every 100 ms, and ends the line when finished', () => {
    let now = 0;
    const out = capture(true);
    const progress = createProgressReporter(out.stream, { label: 'importing', now: () => now });
    progress.update({ done: 1, total: 10, detail: 'a' });
    now = 50;
    progress.update({ done: 2, total: 10, detail: 'b' }); // too soon: not drawn
    now = 150;
    progress.update({ done: 3, total: 10, detail: 'c' });
    now = 160;
    progress.update({ done: 10, total: 10, detail: 'd' });
    progress.finish();
    progress.finish(); // a second finish (an error path after success) adds nothing
    const draws = out.text().split('\r\x1b[K').filter(Boolean);
    expect(draws.map((d) => d.replace(/^.*% /, ''))).toEqual(['a', 'c', 'd\n']);
  });

  it('writes plain lines, one per interval, when stderr is not a terminal', () => {
    let now = 0;
    const out = capture(false);
    const progress = createProgressReporter(out.stream, { label: 'importing', plainIntervalMs: 1000, now: () => now });
    for (let i = 1; i <= 30; i++) {
      now = i * 100;
      progress.update({ done: i, total: 30, detail: `${i} entries` });
    }
    progress.finish();
    expect(out.text()).not.toContain('\r');
    expect(out.text().trimEnd().split('\n')).toEqual([
      'importing:   3%, 1 entries',
      'importing:  36%, 11 entries',
      'importing:  70%, 21 entries',
      'importing: 100%, 30 entries',
    ]);
  });
});
