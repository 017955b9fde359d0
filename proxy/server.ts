// The proxy's request path: for each request the listener (listener.ts) reads,
// it parses the target, identifies the user, asks the policy, and then
// blocks, forwards (plain HTTP) or tunnels (CONNECT). Every request that gets
// as far as a decision is recorded once.
import type { AddressInfo, Socket } from 'node:net';
import { newEventId } from '../access-log/event-id.js';
import { normaliseHost } from '../blocklists/host.js';
import { CidrSet } from '../core/cidr.js';
import type { Config } from '../core/config.js';
import type { Logger } from '../core/logger.js';
import type { Decision, Identity, RequestTarget } from '../core/policy/types.js';
import { newBlockRef } from './block-ref.js';
import type { ClientExchange } from './client-connection.js';
import type { ClientHelloPeek } from './client-hello.js';
import { createDestinationGuard, systemResolve, type Resolve } from './destination-guard.js';
import { cachingResolve } from './dns-cache.js';
import { createForwarder } from './forward.js';
import { fieldValue } from './http1/head.js';
import { createListener } from './listener.js';
import { blockPage, errorPage, notAProxyRequestPage, proxyAuthRequiredPage, sendHtml } from './pages.js';
import { formatAuthority, parseConnectAuthority, parseHttpTarget } from './request-target.js';
import { refuseConnect, runTunnel, type HelloVerdict } from './tunnel.js';
import type { AccessEvent, AccessRecorder, IdentifyResult, ProxyPolicy } from './types.js';

export interface ProxyServerOptions {
  config: Config;
  policy: ProxyPolicy;
  recorder: AccessRecorder;
  log: Logger;
  /** Name resolution for destinations; the system resolver (all addresses) by default. */
  resolve?: Resolve;
}

export interface ProxyServer {
  listen(): Promise<AddressInfo>;
  /** Stops accepting, ends idle connections, and cuts what is still open after a short grace. */
  close(): Promise<void>;
}

const PROXY_AUTHENTICATE = 'Basic realm="Portcullis"';
const CLOSE_GRACE_MS = 2_000;
const SIGN_IN_UNAVAILABLE = 'Your sign-in cannot be checked just now. Try again in a minute.';
// Real ClientHellos are a few kilobytes (post-quantum key shares included); far more is not a browser.
const MAX_CLIENT_HELLO_BYTES = 32 * 1024;

function describeUser(identity: Identity): string {
  return identity.username ?? `not signed in (group ${identity.groupKey})`;
}

/** The policy allowed it, but the proxy's own protections refused it: record it as such. */
function safetyRefusal(decision: Decision, reason: string): Decision {
  return { action: 'block', categories: decision.categories, category: null, ruleKind: 'safety', ruleId: null, rule: `proxy safety: ${reason}` };
}

/** The stricter of two decisions, for a tunnel whose CONNECT host and TLS server name differ. */
function stricter(a: Decision, b: Decision): Decision {
  const rank = { allow: 0, monitor: 1, block: 2 } as const;
  return rank[b.action] > rank[a.action] ? b : a;
}

export function createProxyServer(options: ProxyServerOptions): ProxyServer {
  const { config, policy, recorder, log } = options;
  const clients = new CidrSet(config.allowedClients);
  const forwarder = createForwarder({ upstreamTimeoutMs: config.upstreamTimeoutMs, log });
  const tunnels = new Set<Socket>();
  const parent = config.upstreamProxy;
  // The listening port is known once listen() has bound it (PROXY_PORT may be 0).
  let ownPorts = [config.proxyPort, config.adminPort].filter((port) => port > 0);

  const guard = createDestinationGuard({
    allowedPrivateDestinations: config.allowedPrivateDestinations,
    parentResolvesNames: parent !== undefined,
    resolve: options.resolve ?? cachingResolve(systemResolve),
    resolveTimeoutMs: config.upstreamTimeoutMs,
    ownPorts: () => ownPorts,
  });
  const adminBaseUrl = `http://${formatAuthority(config.publicHost, config.adminPort, 80)}`;
  const pacUrl = `${adminBaseUrl}/proxy.pac`;
  const proxyAddress = formatAuthority(config.publicHost, config.proxyPort, 0);

  // Each request's event is one object literal with every field, filled in as the request goes
  // and then recorded. Not `{ ...event, status }`: Node 20's V8 keeps objects made by a spread
  // followed by more properties alive through young-generation collections, which made each
  // scavenge copy and promote about a megabyte and pause the proxy for 1.5–2 ms.
  function newEvent(id: string, started: number, identity: Identity, decision: Decision, clientIp: string, method: string,
    scheme: 'http' | 'https', target: RequestTarget & { path?: string }): AccessEvent {
    return {
      id, time: new Date(started), identity, clientIp, method, scheme, host: target.host, port: target.port, path: target.path ?? null,
      decision, status: 0, bytesIn: 0, bytesOut: 0, durationMs: 0, blockRef: null,
    };
  }

  function record(event: AccessEvent, started: number): void {
    event.durationMs = Date.now() - started;
    try {
      recorder.record(event);
    } catch (err) {
      log.error({ err, id: event.id }, 'access recorder failed; the event is lost');
    }
  }

  const listener = createListener({
    maxHeaderBytes: config.maxHeaderBytes,
    headerTimeoutMs: config.headerTimeoutMs,
    idleTimeoutMs: config.idleTimeoutMs,
    allowClient: (address) => clients.has(address),
    onRefusedClient: (address) => log.warn({ clientIp: address }, 'connection from a client outside ALLOWED_CLIENTS refused'),
    onMalformed: (clientIp, status, reason) => log.info({ clientIp, status, reason }, 'malformed request'),
    errorPage,
    onRequest(exchange) {
      handleRequest(exchange).catch((err: unknown) => {
        log.error({ err }, 'request handling failed');
        if (exchange.status === 0) sendHtml(exchange, 500, errorPage('Proxy error', 'Something went wrong inside the proxy.'));
        else exchange.destroy();
      });
    },
    onConnect(exchange) {
      const { socket, head } = exchange.takeSocket();
      tunnels.add(socket);
      socket.once('close', () => tunnels.delete(socket));
      // Once our side has ended (a refusal sent, or the tunnel's server gone), a client
      // that keeps its side open is cut after the header timeout instead of held for ever.
      socket.once('finish', () => {
        const linger = setTimeout(() => socket.destroy(), config.headerTimeoutMs).unref();
        socket.once('close', () => clearTimeout(linger));
      });
      socket.on('error', (err) => log.debug({ err }, 'CONNECT client socket error'));
      handleConnect(exchange, socket, head).catch((err: unknown) => {
        log.error({ err }, 'CONNECT handling failed');
        refuseConnect(socket, 500, 'Something went wrong inside the proxy.');
      });
    },
  });

  /** identify() and decide() come from elsewhere; their failures are answered, not thrown. */
  async function identifyAndDecide(
    clientIp: string,
    authorization: string | undefined,
    target: RequestTarget,
  ): Promise<{ identity: Identity; decision: Decision } | { authRequired: 'required' | 'invalid' } | { signInUnavailable: true }> {
    let identified: IdentifyResult;
    try {
      identified = await policy.identify(clientIp, authorization);
    } catch (err) {
      // Credentials not yet in the cache cannot be checked while Postgres is away.
      log.warn({ err: (err as Error).message, clientIp }, 'sign-in could not be checked');
      return { signInUnavailable: true };
    }
    if (!identified.ok) return { authRequired: identified.reason };
    return { identity: identified.identity, decision: policy.decide(identified.identity, target, new Date()) };
  }

  async function handleRequest(exchange: ClientExchange): Promise<void> {
    const started = Date.now();
    const id = newEventId();
    const clientIp = exchange.clientIp;
    const request = exchange.head;
    const parsed = parseHttpTarget(request.target);
    if (!parsed.ok) {
      log.info({ reqId: id, clientIp, url: request.target, reason: parsed.message }, 'bad request target');
      sendHtml(exchange, 400, parsed.originForm ? notAProxyRequestPage(proxyAddress, pacUrl) : errorPage('Bad request', parsed.message));
      return;
    }
    const target = parsed.target;
    const authority = formatAuthority(target.host, target.port, 80);
    const outcome = await identifyAndDecide(clientIp, fieldValue(request, 'proxy-authorization'), target);
    if ('signInUnavailable' in outcome) {
      sendHtml(exchange, 503, errorPage('Sign-in unavailable', SIGN_IN_UNAVAILABLE));
      return;
    }
    if ('authRequired' in outcome) {
      sendHtml(exchange, 407, proxyAuthRequiredPage(outcome.authRequired), `Proxy-Authenticate: ${PROXY_AUTHENTICATE}\r\n`);
      return;
    }
    const { identity, decision } = outcome;
    const event = newEvent(id, started, identity, decision, clientIp, request.method, 'http', target);

    if (decision.action === 'block') {
      const blockRef = newBlockRef();
      const bytesOut = sendHtml(
        exchange,
        403,
        blockPage({
          blocked: `http://${authority}${target.path}`,
          categoryName: decision.category === null ? null : policy.categoryName(decision.category),
          rule: decision.rule,
          who: describeUser(identity),
          time: new Date(started),
          timeZone: config.schoolTimezone,
          ref: blockRef,
          schoolName: config.schoolName,
          adminBaseUrl,
        }),
      );
      // The access log has every block; the operational log repeats them only when asked to.
      log.debug({ reqId: id, clientIp, host: target.host, blockRef }, 'blocked');
      event.status = 403;
      event.bytesOut = bytesOut;
      event.blockRef = blockRef;
      record(event, started);
      return;
    }

    const verdict = await guard.check(target.host, target.port);
    if (!verdict.ok) {
      const refused = verdict.status === 403;
      const title = refused ? 'Destination not allowed' : 'The site could not be reached';
      event.bytesOut = sendHtml(exchange, verdict.status, errorPage(title, verdict.reason));
      if (refused) event.decision = safetyRefusal(decision, verdict.reason);
      event.status = verdict.status;
      record(event, started);
      return;
    }
    const result = await forwarder.forward(
      exchange,
      target,
      parent ? { kind: 'parent', parent } : { kind: 'direct', address: verdict.address as string },
    );
    event.status = result.status;
    event.bytesIn = result.bytesIn;
    event.bytesOut = result.bytesOut;
    record(event, started);
  }

  async function handleConnect(exchange: ClientExchange, socket: Socket, head: Buffer): Promise<void> {
    const started = Date.now();
    const id = newEventId();
    const clientIp = exchange.clientIp;
    const reqLog = log.child({ reqId: id, clientIp });
    const parsed = parseConnectAuthority(exchange.head.target);
    if (!parsed.ok) {
      reqLog.info({ authority: exchange.head.target, reason: parsed.message }, 'bad CONNECT authority');
      refuseConnect(socket, 400, parsed.message);
      return;
    }
    const target = parsed.target;
    const outcome = await identifyAndDecide(clientIp, fieldValue(exchange.head, 'proxy-authorization'), target);
    if ('signInUnavailable' in outcome) {
      refuseConnect(socket, 503, SIGN_IN_UNAVAILABLE);
      return;
    }
    if ('authRequired' in outcome) {
      const reason = outcome.authRequired === 'required' ? 'Sign in to use the web.' : 'The username or password was not accepted.';
      refuseConnect(socket, 407, reason, [`Proxy-Authenticate: ${PROXY_AUTHENTICATE}`]);
      return;
    }
    const { identity, decision } = outcome;
    const event = newEvent(id, started, identity, decision, clientIp, 'CONNECT', 'https', target);
    const refuse = (status: number, reason: string, blockRef: string | null = null): void => {
      refuseConnect(socket, status, reason);
      event.status = status;
      event.blockRef = blockRef;
      record(event, started);
    };
    const refuseForSafety = (status: number, reason: string): void => {
      if (status === 403) event.decision = safetyRefusal(decision, reason);
      refuse(status, reason);
    };

    if (decision.action === 'block') {
      const blockRef = newBlockRef();
      reqLog.debug({ host: target.host, blockRef }, 'blocked'); // the access log has every block
      refuse(403, `${target.host} is blocked: ${decision.rule}. Reference ${blockRef}.`, blockRef);
      return;
    }
    if (!config.connectPorts.has(target.port)) {
      refuseForSafety(403, `Secure connections are only allowed to ports ${[...config.connectPorts].join(', ')}, not ${target.port}.`);
      return;
    }
    const verdict = await guard.check(target.host, target.port);
    if (!verdict.ok) {
      refuseForSafety(verdict.status, verdict.reason);
      return;
    }

    const onClientHello = (result: ClientHelloPeek, bytesRead: number): HelloVerdict => {
      switch (result.kind) {
        case 'client-hello': {
          if (result.serverName === undefined) return { proceed: true };
          const serverName = normaliseHost(result.serverName);
          if (serverName === undefined) {
            reqLog.info({ serverName: result.serverName }, 'tunnel closed: the TLS server name is not a valid host');
            return { proceed: false, status: 400 };
          }
          if (serverName === target.host) return { proceed: true };
          const sniDecision = policy.decide(identity, { host: serverName, port: target.port }, new Date());
          // The event names whichever host made the stricter decision.
          if (stricter(decision, sniDecision) !== decision) {
            event.host = serverName;
            event.decision = sniDecision;
          }
          if (sniDecision.action === 'block') {
            const blockRef = newBlockRef();
            event.blockRef = blockRef;
            reqLog.info({ host: target.host, serverName, blockRef }, 'tunnel blocked on its TLS server name');
            return { proceed: false, status: 403 };
          }
          return { proceed: true };
        }
        case 'not-tls':
        case 'closed':
          // Only the CONNECT host's checked address can be reached, and it was allowed.
          if (result.kind === 'not-tls') reqLog.info({ host: target.host }, 'tunnel carries something other than TLS');
          return { proceed: true };
        case 'timeout':
          // Silence suits a protocol where the server speaks first; a ClientHello that stalls does not.
          return bytesRead === 0 ? { proceed: true } : { proceed: false, status: 400 };
        case 'invalid':
        case 'too-large':
          // What cannot be read cannot be checked: fail closed.
          reqLog.info({ host: target.host, result }, 'tunnel closed: unreadable ClientHello');
          return { proceed: false, status: 400 };
      }
    };

    const authority = formatAuthority(target.host, target.port, 0);
    const result = await runTunnel({
      client: socket,
      head,
      authority,
      port: target.port,
      route: parent ? { kind: 'parent', parent } : { kind: 'direct', address: verdict.address as string },
      upstreamTimeoutMs: config.upstreamTimeoutMs,
      idleTimeoutMs: config.idleTimeoutMs,
      peekTimeoutMs: config.headerTimeoutMs,
      maxClientHelloBytes: MAX_CLIENT_HELLO_BYTES,
      onClientHello: (result, bytesRead) => {
        try {
          return onClientHello(result, bytesRead);
        } catch (err) {
          reqLog.error({ err }, 'deciding on the TLS server name failed');
          return { proceed: false, status: 500 };
        }
      },
      log: reqLog,
    });
    event.status = result.status;
    event.bytesIn = result.bytesIn;
    event.bytesOut = result.bytesOut;
    record(event, started);
  }

  return {
    async listen() {
      const address = await listener.listen(config.proxyPort, config.proxyHost);
      ownPorts = [address.port, config.adminPort].filter((port) => port > 0);
      return address;
    },
    async close() {
      await listener.close(CLOSE_GRACE_MS, () => {
        for (const socket of tunnels) socket.destroy();
      });
      await forwarder.close();
    },
  };
}
