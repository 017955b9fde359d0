import { setTimeout as sleep } from 'node:timers/promises';
import { describe, expect, it } from 'vitest';
import { cachingResolve } from '../../proxy/dns-cache.js';

function countingResolver(answer: (host: string) => Promise<string[]>) {
  const calls: string[] = [];
  return { calls, resolve: (host: string) => (calls.push(host), answer(host)) };
}

describe('cachingResolve', () => {
  it('answers a repeated name from the cache until the entry expires', async () => {
    const inner = countingResolver(async (host) => [host === 'a.test' ? '192.0.2.1' : '192.0.2.2']);
    const resolve = cachingResolve(inner.resolve, { ttlMs: 100 });
    expect(await resolve('a.test')).toEqual(['192.0.2.1']);
    // Known now: answered at once, not as a promise.
    expect(resolve('a.test')).toEqual(['192.0.2.1']);
    expect(await resolve('b.test')).toEqual(['192.0.2.2']);
    expect(inner.calls).toEqual(['a.test', 'b.test']);
    await sleep(150);
    await resolve('a.test');
    expect(inner.calls).toEqual(['a.test', 'b.test', 'a.test']);
  });

  it('shares one query between concurrent lookups of a name', async () => {
    const inner = countingResolver(async () => (await sleep(20), ['192.0.2.1']));
    const resolve = cachingResolve(inner.resolve);
    const answers = await Promise.all([resolve('a.test'), resolve('a.test'), resolve('a.test')]);
    expect(answers).toEqual([['192.0.2.1'], ['192.0.2.1'], ['192.0.2.1']]);
    expect(inner.calls).toHaveLength(1);
  });

  it('does not remember failures', async () => {
    let fail = true;
    const inner = countingResolver(async () => {
      if (fail) throw Object.assign(new Error('getaddrinfo EAI_AGAIN a.test'), { code: 'EAI_AGAIN' });
      return ['192.0.2.1'];
    });
    const resolve = cachingResolve(inner.resolve);
    await expect(resolve('a.test')).rejects.toMatchObject({ code: 'EAI_AGAIN' });
    fail = false;
    expect(await resolve('a.test')).toEqual(['192.0.2.1']);
    expect(inner.calls).toHaveLength(2);
  });
});
