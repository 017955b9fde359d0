// Decides whether the proxy may open a connection to a destination, so that
// it cannot be used to reach the school's own network, the proxy itself or
// other non-public addresses. Names are resolved here and the caller connects
// to the address that was checked, leaving no gap for DNS rebinding.
import dns from 'node:dns/promises';
import net from 'node:net';
import os from 'node:os';
import { normaliseHost } from '../blocklists/host.js';
import { CidrSet, parseCidr, type Cidr } from '../core/cidr.js';
import { within } from '../core/deadline.js';

/** A name's addresses; a resolver that already holds the answer (a cache) may give it at once. */
export type Resolve = (host: string) => string[] | Promise<string[]>;

export type GuardVerdict =
  /** `address` is what to connect to; undefined when the parent proxy resolves the name. */
  | { ok: true; address: string | undefined }
  | { ok: false; status: 403 | 502 | 504; reason: string };

export interface DestinationGuardOptions {
  allowedPrivateDestinations: readonly Cidr[];
  /** True when an upstream proxy resolves names: only IP literals and local names can be checked. */
  parentResolvesNames: boolean;
  resolve: Resolve;
  resolveTimeoutMs: number;
  /** The proxy's own ports (listener and admin), refused on any local address whatever else is allowed. */
  ownPorts: () => readonly number[];
}

// Not reachable on the public internet. Beyond the usual private ranges: 0.0.0.0/8 ("this network",
// which Linux connects to locally), 100.64.0.0/10 (carrier-grade NAT), 240.0.0.0/4 (reserved and
// broadcast) and ::/96 (unspecified, loopback and the deprecated IPv4-compatible addresses).
const NON_PUBLIC = [
  '0.0.0.0/8', '10.0.0.0/8', '100.64.0.0/10', '127.0.0.0/8', '169.254.0.0/16', '172.16.0.0/12',
  '192.168.0.0/16', '224.0.0.0/4', '240.0.0.0/4',
  '::/96', 'fe80::/10', 'fc00::/7', 'ff00::/8',
].map((text) => parseCidr(text) as Cidr);

const LOCAL = ['0.0.0.0/8', '127.0.0.0/8', '::/96'].map((text) => parseCidr(text) as Cidr);

function isLocalName(host: string): boolean {
  return host === 'localhost' || host.endsWith('.localhost');
}

class DnsTimeoutError extends Error {
  readonly code = 'EDNSTIMEOUT';
}

/** The operating system's resolver, every address in its order. */
export const systemResolve: Resolve = async (host) =>
  (await dns.lookup(host, { all: true, verbatim: true })).map((entry) => entry.address);

export function createDestinationGuard(options: DestinationGuardOptions): { check(host: string, port: number): Promise<GuardVerdict> } {
  const nonPublic = new CidrSet(NON_PUBLIC);
  const local = new CidrSet(LOCAL);
  const allowedPrivate = new CidrSet(options.allowedPrivateDestinations);

  function isOwnAddress(address: string): boolean {
    if (local.has(address)) return true;
    return Object.values(os.networkInterfaces()).some((interfaces) =>
      (interfaces ?? []).some((entry) => normaliseHost(entry.address) === address),
    );
  }

  /** Why `address` may not be reached on `port`, or undefined when it may. */
  function refusal(address: string, port: number): string | undefined {
    if (options.ownPorts().includes(port) && isOwnAddress(address)) return 'it is the proxy itself';
    if (nonPublic.has(address) && !allowedPrivate.has(address)) return 'it is a private or local network address';
    return undefined;
  }

  /** The answer at once when the resolver holds it (no timer to set), else the lookup within the time allowed. */
  async function resolveWithin(host: string): Promise<string[]> {
    const answer = options.resolve(host);
    if (Array.isArray(answer)) return answer;
    return within(answer, options.resolveTimeoutMs, () => new DnsTimeoutError(`no answer for ${host}`));
  }

  async function check(host: string, port: number): Promise<GuardVerdict> {
    const forbidden = (why: string): GuardVerdict => ({ ok: false, status: 403, reason: `${host} cannot be reached through the proxy: ${why}.` });
    if (isLocalName(host)) return forbidden('it names this computer');
    if (net.isIP(host) !== 0) {
      const why = refusal(host, port);
      return why === undefined ? { ok: true, address: host } : forbidden(why);
    }
    if (options.parentResolvesNames) return { ok: true, address: undefined };

    let addresses: string[];
    try {
      addresses = await resolveWithin(host);
    } catch (err) {
      if (err instanceof DnsTimeoutError) {
        return { ok: false, status: 504, reason: `The name ${host} could not be looked up: the DNS server did not answer in time.` };
      }
      const temporary = (err as NodeJS.ErrnoException).code === 'EAI_AGAIN';
      return {
        ok: false,
        status: 502,
        reason: temporary
          ? `The name ${host} could not be looked up: the DNS server could not be reached.`
          : `The name ${host} does not exist (DNS lookup failed).`,
      };
    }
    // Canonical spelling, so that "::ffff:10.0.0.1" is checked as the IPv4 address it is.
    const candidates = addresses.map((a) => normaliseHost(a)).filter((a): a is string => a !== undefined && net.isIP(a) !== 0);
    if (candidates.length === 0) return { ok: false, status: 502, reason: `The name ${host} could not be found (DNS returned no addresses).` };
    const usable = candidates.find((address) => refusal(address, port) === undefined);
    if (usable !== undefined) return { ok: true, address: usable };
    return forbidden(refusal(candidates[0], port) as string);
  }

  return { check };
}
