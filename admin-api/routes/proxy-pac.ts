// GET /proxy.pac: a proxy auto-configuration file for browsers and MDM.
// There is deliberately no "; DIRECT" fallback: when the proxy is down,
// browsing stops rather than silently going unfiltered.
import type { FastifyPluginAsync } from 'fastify';
import type { Config } from '../../core/config.js';

export function proxyPac(proxyHost: string, proxyPort: number): string {
  return `function FindProxyForURL(url, host) {
  if (isPlainHostName(host) || host === "localhost" || shExpMatch(host, "127.*")) {
    return "DIRECT";
  }
  return "PROXY ${proxyHost}:${proxyPort}";
}
`;
}

export const proxyPacRoutes: FastifyPluginAsync<{ config: Config }> = async (app, opts) => {
  const body = proxyPac(opts.config.publicHost, opts.config.proxyPort);
  app.get(
    '/proxy.pac',
    { config: { access: 'public' }, schema: { tags: ['system'], summary: 'Proxy auto-configuration file for browsers and MDM' } },
    async (_req, reply) =>
      reply.type('application/x-ns-proxy-autoconfig').header('cache-control', 'max-age=300').send(body),
  );
};
