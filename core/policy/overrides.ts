// Local overrides compiled for lookup by host suffix.
//
// Which override applies, when several match a request:
//   1. the most specific target: a url override (host + path prefix) beats a
//      domain override; an override for a host beats one for its parent
//      domain (www.example.org beats example.org, as both kinds cover
//      subdomains, like list entries); a longer path prefix beats a shorter;
//   2. at equal target specificity, one for the requester's group beats one
//      for all groups;
//   3. then a block beats an allow, so that two admins disagreeing about the
//      same site fail safe.
// An override past its expires_at is skipped at decision time, so expiry
// needs no reload.
import { normaliseHost } from '../../blocklists/host.js';
import type { OverrideInput } from './input.js';

export interface CompiledOverride {
  readonly id: number;
  readonly action: 'allow' | 'block';
  /** null: every group. */
  readonly groupId: number | null;
  /** Infinity when it never expires. */
  readonly expiresAtMs: number;
  /** For url overrides, the path prefix (starting with "/"); "" for domain overrides. */
  readonly pathPrefix: string;
  /** The readable rule, e.g. `local override #12 by jsmith: allow example.org ("…")`. */
  readonly rule: string;
}

export class OverrideError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'OverrideError';
  }
}

/** After a path prefix, these characters start a new segment or the query; anything else continues a name. */
function isBoundary(path: string, prefixLength: number): boolean {
  if (path.length === prefixLength) return true;
  const c = path.charCodeAt(prefixLength);
  return c === 0x2f /* / */ || c === 0x3f /* ? */ || c === 0x26 /* & */;
}

/**
 * A url override covers the paths that start with its prefix at a boundary:
 * "/history" covers "/history", "/history/tudors" and "/history?page=2",
 * not "/historyofart". A prefix ending in "/" covers everything below it.
 */
export function pathPrefixCovers(prefix: string, path: string): boolean {
  if (!path.startsWith(prefix)) return false;
  return prefix.endsWith('/') || isBoundary(path, prefix.length);
}

/** An IP literal has no parent domains to walk up to (a TLD is never all digits). */
function isIpLiteral(host: string): boolean {
  const last = host.charCodeAt(host.length - 1);
  return host.includes(':') || (last >= 0x30 && last <= 0x39);
}

function bySpecificity(a: CompiledOverride, b: CompiledOverride): number {
  return (
    b.pathPrefix.length - a.pathPrefix.length ||
    Number(b.groupId !== null) - Number(a.groupId !== null) ||
    Number(b.action === 'block') - Number(a.action === 'block') ||
    a.id - b.id
  );
}

function parseTarget(o: OverrideInput): { host: string; pathPrefix: string } {
  const where = `override #${o.id} (${o.kind} "${o.value}")`;
  if (o.kind === 'domain') {
    const host = normaliseHost(o.value);
    if (host === undefined) throw new OverrideError(`${where}: not a valid domain name or IP address`);
    return { host, pathPrefix: '' };
  }
  if (o.kind !== 'url') throw new OverrideError(`${where}: kind must be domain or url`);
  // Stored as host/path; a pasted scheme is tolerated, since it is unambiguous.
  const withoutScheme = o.value.replace(/^https?:\/\//i, '');
  const slash = withoutScheme.indexOf('/');
  if (slash <= 0) {
    throw new OverrideError(`${where}: a url override is host/path (use a domain override for a whole site)`);
  }
  const host = normaliseHost(withoutScheme.slice(0, slash));
  if (host === undefined) throw new OverrideError(`${where}: "${withoutScheme.slice(0, slash)}" is not a valid host`);
  const pathPrefix = withoutScheme.slice(slash);
  if (/[\s#]/.test(pathPrefix)) throw new OverrideError(`${where}: the path may not contain spaces or a #fragment`);
  return { host, pathPrefix };
}

export class OverrideIndex {
  private readonly byDomain = new Map<string, CompiledOverride[]>();
  private readonly byUrlHost = new Map<string, CompiledOverride[]>();
  readonly size: number;

  /** `groupKeyOf` names the group in the rule text and must throw for an unknown group id. */
  constructor(overrides: readonly OverrideInput[], groupKeyOf: (groupId: number) => string) {
    for (const o of overrides) {
      if (o.action !== 'allow' && o.action !== 'block') {
        throw new OverrideError(`override #${o.id}: action must be allow or block, not "${String(o.action)}"`);
      }
      const expiresAtMs = o.expiresAt === null ? Infinity : o.expiresAt.getTime();
      if (Number.isNaN(expiresAtMs)) throw new OverrideError(`override #${o.id}: expires_at is not a valid time`);
      const { host, pathPrefix } = parseTarget(o);
      const scope = o.groupId === null ? '' : ` for ${groupKeyOf(o.groupId)}`;
      const target = o.kind === 'domain' ? host : `${host}${pathPrefix}`;
      const compiled: CompiledOverride = Object.freeze({
        id: o.id,
        action: o.action,
        groupId: o.groupId,
        expiresAtMs,
        pathPrefix,
        rule: `local override #${o.id} by ${o.decidedBy}${scope}: ${o.action} ${target} (${JSON.stringify(o.reason)})`,
      });
      const map = o.kind === 'domain' ? this.byDomain : this.byUrlHost;
      const list = map.get(host);
      if (list) list.push(compiled);
      else map.set(host, [compiled]);
    }
    for (const list of [...this.byDomain.values(), ...this.byUrlHost.values()]) list.sort(bySpecificity);
    this.size = overrides.length;
  }

  /** The override that decides a request by `groupId` for host (+ path when known), at `nowMs`. */
  find(groupId: number, host: string, path: string | undefined, nowMs: number): CompiledOverride | undefined {
    if (path !== undefined && this.byUrlHost.size > 0) {
      const hit = this.walk(this.byUrlHost, groupId, host, path, nowMs);
      if (hit) return hit;
    }
    return this.byDomain.size > 0 ? this.walk(this.byDomain, groupId, host, undefined, nowMs) : undefined;
  }

  /** From the host itself up through its parent domains; the first applicable override wins. */
  private walk(
    map: ReadonlyMap<string, readonly CompiledOverride[]>,
    groupId: number,
    host: string,
    path: string | undefined,
    nowMs: number,
  ): CompiledOverride | undefined {
    let domain = host;
    for (;;) {
      const list = map.get(domain);
      if (list) {
        for (const o of list) {
          if (applies(o, groupId, nowMs) && (path === undefined || pathPrefixCovers(o.pathPrefix, path))) return o;
        }
      }
      const dot = domain.indexOf('.');
      if (dot < 0 || isIpLiteral(host)) return undefined;
      domain = domain.slice(dot + 1);
    }
  }
}

function applies(o: CompiledOverride, groupId: number, nowMs: number): boolean {
  return (o.groupId === null || o.groupId === groupId) && nowMs < o.expiresAtMs;
}
