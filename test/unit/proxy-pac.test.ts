import vm from 'node:vm';
import { describe, expect, it } from 'vitest';
import { proxyPac } from '../../admin-api/routes/proxy-pac.js';

// Runs the PAC file as a browser would, with the PAC helper functions it uses.
function findProxy(pac: string, url: string, host: string): string {
  const context = vm.createContext({
    isPlainHostName: (h: string) => !h.includes('.'),
    shExpMatch: (s: string, pattern: string) =>
      new RegExp(`^${pattern.replace(/[.]/g, '\\.').replace(/\*/g, '.*').replace(/\?/g, '.')}$`).test(s),
  });
  vm.runInContext(pac, context);
  return vm.runInContext(`FindProxyForURL(${JSON.stringify(url)}, ${JSON.stringify(host)})`, context) as string;
}

describe('proxy.pac', () => {
  const pac = proxyPac('proxy.school.internal', 3128);
  it('sends web traffic through the proxy with no unfiltered fallback', () => {
    expect(findProxy(pac, 'https://www.bbc.co.uk/', 'www.bbc.co.uk')).toBe('PROXY proxy.school.internal:3128');
  });
  it('leaves plain intranet host names and loopback direct', () => {
    expect(findProxy(pac, 'http://printer/', 'printer')).toBe('DIRECT');
    expect(findProxy(pac, 'http://localhost:8000/', 'localhost')).toBe('DIRECT');
    expect(findProxy(pac, 'http://127.0.0.1/', '127.0.0.1')).toBe('DIRECT');
  });
});
