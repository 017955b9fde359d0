// The destination guard: private, local and own-port destinations are refused
// unless allowed, and the address checked is the address connected to.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseCidr, type Cidr } from '../../core/cidr.js';
import type { Resolve } from '../../proxy/destination-guard.js';
import { hostMapPolicy } from '../support/host-map-policy.js';
import {
  connectViaProxy,
  requestViaProxy,
  startHttpOrigin,
  startHttpsOrigin,
  startProxy,
  testConfig,
  type RunningProxy,
  type TestHttpsOrigin,
  type TestOrigin,
} from '../support/proxy-harness.js';

const cidr = (text: string): Cidr => parseCidr(text) as Cidr;

describe('without an allowance for private destinations', () => {
  let origin: TestOrigin;
  let secure: TestHttpsOrigin;
  let proxy: RunningProxy;
  beforeAll(async () => {
    origin = await startHttpOrigin();
    secure = await startHttpsOrigin();
    proxy = await startProxy(hostMapPolicy({}), testConfig({ allowedPrivateDestinations: [], connectPorts: new Set([secure.port]) }));
  });
  afterAll(async () => {
    await proxy.close();
    await origin.close();
    await secure.close();
  });

  it.each([
    ['a name that resolves to loopback', 'origin.test'],
    ['a loopback literal', '127.0.0.1'],
    ['loopback in hex', '0x7f.1'],
    ['loopback as one decimal number', '2130706433'],
    ['IPv6 loopback', '[::1]'],
    ['IPv4-mapped IPv6 loopback', '[::ffff:127.0.0.1]'],
    ['localhost', 'localhost'],
    ['a .localhost name', 'app.localhost'],
    ['a private address', '10.1.2.3'],
    ['a 192.168 address', '192.168.0.1'],
    ['a 172.16/12 address', '172.20.0.1'],
    ['the link-local metadata address', '169.254.169.254'],
    ['the unspecified address', '0.0.0.0'],
    ['a multicast address', '224.0.0.1'],
    ['an IPv6 unique local address', '[fd00::1]'],
    ['an IPv6 link-local address', '[fe80::1]'],
  ])('refuses plain HTTP to %s', async (_name, host) => {
    const before = proxy.recorder.events.length;
    const requestsBefore = origin.requests.length;
    const res = await requestViaProxy(proxy.port, `http://${host}:${origin.port}/`);
    expect(res.status).toBe(403);
    expect(res.body).toContain('cannot be reached through the proxy');
    expect(origin.requests.length).toBe(requestsBefore);
    const events = await proxy.recorder.waitFor(before + 1);
    expect(events[before].status).toBe(403);
    // Recorded as refused by the proxy's protections, not as allowed by the policy.
    expect(events[before].decision).toMatchObject({ action: 'block', ruleKind: 'safety' });
    expect(events[before].decision.rule).toMatch(/^proxy safety: /);
  });

  it('refuses a CONNECT to a name that resolves to loopback', async () => {
    const before = proxy.recorder.events.length;
    const tunnel = await connectViaProxy(proxy.port, `origin.test:${secure.port}`);
    expect(tunnel.status).toBe(403);
    const events = await proxy.recorder.waitFor(before + 1);
    expect(events[before].decision).toMatchObject({ action: 'block', ruleKind: 'safety' });
    expect(tunnel.body).toContain('private or local network address');
    expect(secure.handshakes).toBe(0);
  });

  it('refuses a CONNECT to an IPv6 loopback literal', async () => {
    const tunnel = await connectViaProxy(proxy.port, `[::1]:${secure.port}`);
    expect(tunnel.status).toBe(403);
  });
});

describe('with loopback allowed as an intranet', () => {
  let origin: TestOrigin;
  let proxy: RunningProxy;
  const lookups: string[] = [];
  // Answers 127.0.0.1 once per name, then an address that is not allowed, as a rebinding attacker would.
  const rebinding: Resolve = async (host) => {
    lookups.push(host);
    if (host === 'dual.test') return ['10.9.9.9', '127.0.0.1'];
    if (host === 'nowhere.test') throw Object.assign(new Error('getaddrinfo ENOTFOUND'), { code: 'ENOTFOUND' });
    if (host === 'flaky.test') throw Object.assign(new Error('getaddrinfo EAI_AGAIN'), { code: 'EAI_AGAIN' });
    if (host === 'slow.test') return new Promise<string[]>(() => undefined);
    return lookups.filter((h) => h === host).length === 1 ? ['127.0.0.1'] : ['127.0.0.2'];
  };
  beforeAll(async () => {
    origin = await startHttpOrigin();
    proxy = await startProxy(
      hostMapPolicy({}),
      testConfig({ allowedPrivateDestinations: [cidr('127.0.0.1/32')], adminPort: 3999, upstreamTimeoutMs: 300 }),
      rebinding,
    );
  });
  afterAll(async () => {
    await proxy.close();
    await origin.close();
  });

  it('connects to the address it checked, with one lookup per request', async () => {
    const res = await requestViaProxy(proxy.port, `http://rebind.test:${origin.port}/`);
    expect(res.status).toBe(200);
    expect(lookups.filter((h) => h === 'rebind.test')).toHaveLength(1);
    // The next lookup answers 127.0.0.2, which is not allowed.
    expect((await requestViaProxy(proxy.port, `http://rebind.test:${origin.port}/`)).status).toBe(403);
  });

  it('uses an allowed address when a name has several', async () => {
    const res = await requestViaProxy(proxy.port, `http://dual.test:${origin.port}/`);
    expect(res.status).toBe(200);
  });

  it.each([
    ['its own listening port', () => `127.0.0.1:${proxy.port}`],
    ['its own port on another loopback address', () => `127.0.0.2:${proxy.port}`],
    ['its own port on the unspecified address', () => `0.0.0.0:${proxy.port}`],
    ['the admin port', () => '127.0.0.1:3999'],
  ])('refuses %s even though loopback is allowed', async (_name, authority) => {
    const res = await requestViaProxy(proxy.port, `http://${authority()}/`);
    expect(res.status).toBe(403);
    expect(res.body).toContain('the proxy itself');
  });

  it('says when a name does not exist', async () => {
    const res = await requestViaProxy(proxy.port, `http://nowhere.test:${origin.port}/`);
    expect(res.status).toBe(502);
    expect(res.body).toContain('nowhere.test does not exist');
  });

  it('says when DNS could not be reached', async () => {
    const res = await requestViaProxy(proxy.port, `http://flaky.test:${origin.port}/`);
    expect(res.status).toBe(502);
    expect(res.body).toContain('DNS server could not be reached');
  });

  it('answers 504 when DNS does not answer in time', async () => {
    const res = await requestViaProxy(proxy.port, `http://slow.test:${origin.port}/`);
    expect(res.status).toBe(504);
    expect(res.body).toContain('did not answer in time');
  });
});
