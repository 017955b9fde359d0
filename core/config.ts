// Settings come from environment variables only, validated once at start-up.
// A bad value stops start-up with a message naming the variable.
import os from 'node:os';
import path from 'node:path';
import { parseCidr, type Cidr } from './cidr.js';

export type ProxyAuthMode = 'off' | 'optional' | 'required';

export interface Config {
  proxyHost: string;
  proxyPort: number;
  adminHost: string;
  adminPort: number;
  /** Host name clients use to reach the proxy, for the PAC file and block page links. */
  publicHost: string;
  dataDir: string;
  databaseUrl: string | undefined;
  embeddedPgPort: number;
  upstreamProxy: URL | undefined;
  adminPassword: string | undefined;
  schoolName: string;
  schoolTimezone: string;
  /** Client networks allowed to use the proxy. */
  allowedClients: Cidr[];
  /** Destination ports a CONNECT may reach. */
  connectPorts: Set<number>;
  /** Private or loopback destinations that may nevertheless be reached (intranet servers). */
  allowedPrivateDestinations: Cidr[];
  proxyAuth: ProxyAuthMode;
  headerTimeoutMs: number;
  idleTimeoutMs: number;
  upstreamTimeoutMs: number;
  maxHeaderBytes: number;
  blocklistUrl: string | undefined;
  /** Days of access log kept; older daily partitions are dropped whole. */
  logRetentionDays: number;
  logLevel: string;
  /** Where alerts for the DSL are POSTed as JSON; none when unset. */
  alertWebhookUrl: URL | undefined;
  /** Blocked requests by one person within alertRepeatedBlocksWindowMinutes that raise an alert. */
  alertRepeatedBlocks: number;
  alertRepeatedBlocksWindowMinutes: number;
  /** Webhook deliveries tried per alert before it is marked failed. */
  alertWebhookMaxAttempts: number;
  /** Email delivery of alerts; none unless SMTP_URL, ALERT_EMAIL_FROM and ALERT_EMAIL_TO are all set. */
  alertEmail: AlertEmailConfig | undefined;
  /** Email deliveries tried per alert before it is marked failed. */
  alertEmailMaxAttempts: number;
  /** An accidental-access report this soon after the block marks the visit as self-reported. */
  selfReportWindowMinutes: number;
  /** Proxy processes serving PROXY_PORT (node:cluster); 1 runs everything in one process. */
  proxyWorkers: number;
}

export interface AlertEmailConfig {
  /** smtp: (STARTTLS when offered) or smtps: (TLS from the start), with optional user:pass@. */
  smtpUrl: URL;
  from: string;
  to: string[];
}

export class ConfigError extends Error {
  constructor(
    readonly variable: string,
    message: string,
  ) {
    super(`${variable}: ${message}`);
    this.name = 'ConfigError';
  }
}

const PRIVATE_AND_LOOPBACK = '127.0.0.0/8,::1/128,10.0.0.0/8,172.16.0.0/12,192.168.0.0/16,fc00::/7';
const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'];

type Env = Record<string, string | undefined>;

function read(env: Env, name: string): string | undefined {
  const value = env[name];
  return value === undefined || value.trim() === '' ? undefined : value.trim();
}

function port(env: Env, name: string, fallback: number): number {
  const raw = read(env, name);
  if (raw === undefined) return fallback;
  const n = Number(raw);
  if (!/^\d+$/.test(raw) || n < 0 || n > 65535) {
    throw new ConfigError(name, `"${raw}" is not a port number (0-65535)`);
  }
  return n;
}

function positiveInt(env: Env, name: string, fallback: number): number {
  const raw = read(env, name);
  if (raw === undefined) return fallback;
  if (!/^\d+$/.test(raw) || Number(raw) <= 0) {
    throw new ConfigError(name, `"${raw}" is not a positive whole number`);
  }
  return Number(raw);
}

function wholeNumberInRange(env: Env, name: string, fallback: number, min: number, max: number): number {
  const raw = read(env, name);
  if (raw === undefined) return fallback;
  if (!/^\d+$/.test(raw) || Number(raw) < min || Number(raw) > max) {
    throw new ConfigError(name, `"${raw}" is not a whole number from ${min} to ${max}`);
  }
  return Number(raw);
}

function cidrList(env: Env, name: string, fallback: string): Cidr[] {
  const raw = read(env, name) ?? fallback;
  if (raw === 'none') return [];
  return raw
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean)
    .map((item) => {
      const cidr = parseCidr(item);
      if (!cidr) throw new ConfigError(name, `"${item}" is not an IP address or CIDR range`);
      return cidr;
    });
}

function timezone(env: Env, name: string, fallback: string): string {
  const tz = read(env, name) ?? fallback;
  try {
    new Intl.DateTimeFormat('en-GB', { timeZone: tz });
  } catch {
    throw new ConfigError(name, `"${tz}" is not an IANA time zone (for example Europe/London)`);
  }
  return tz;
}

function url(env: Env, name: string, protocols: string[]): URL | undefined {
  const raw = read(env, name);
  if (raw === undefined) return undefined;
  let parsed: URL;
  try {
    parsed = new URL(raw);
  } catch {
    throw new ConfigError(name, `"${raw}" is not a URL`);
  }
  if (!protocols.includes(parsed.protocol)) {
    throw new ConfigError(name, `"${raw}" must use ${protocols.join(' or ')}`);
  }
  return parsed;
}

function oneOf<T extends string>(env: Env, name: string, allowed: readonly T[], fallback: T): T {
  const raw = read(env, name) ?? fallback;
  if (!allowed.includes(raw as T)) {
    throw new ConfigError(name, `"${raw}" must be one of ${allowed.join(', ')}`);
  }
  return raw as T;
}

// A plain addr-spec (no display names): local part, @, a dotted domain.
const EMAIL_ADDRESS = /^[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]+@[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)+$/;

function emailAddresses(env: Env, name: string): string[] | undefined {
  const raw = read(env, name);
  if (raw === undefined) return undefined;
  const addresses = raw.split(',').map((s) => s.trim());
  for (const address of addresses) {
    if (address === '') throw new ConfigError(name, `"${raw}" has an empty address in its list`);
    if (address.length > 254 || !EMAIL_ADDRESS.test(address)) {
      throw new ConfigError(name, `"${address}" is not an email address (name@example.org)`);
    }
  }
  return addresses;
}

function smtpUrl(env: Env, name: string): URL | undefined {
  const raw = read(env, name);
  if (raw === undefined) return undefined;
  let parsed: URL;
  try {
    parsed = new URL(raw);
  } catch {
    throw new ConfigError(name, 'is not a URL (smtp://[user:pass@]host[:port] or smtps://…)');
  }
  // Shown without the user or password.
  const shown = `${parsed.protocol}//${parsed.host}${parsed.pathname}`;
  if (parsed.protocol !== 'smtp:' && parsed.protocol !== 'smtps:') throw new ConfigError(name, `"${shown}" must use smtp: or smtps:`);
  if (parsed.hostname === '') throw new ConfigError(name, `"${shown}" has no host`);
  if ((parsed.pathname !== '' && parsed.pathname !== '/') || parsed.search !== '' || parsed.hash !== '') {
    throw new ConfigError(name, `"${shown}" must be smtp://[user:pass@]host[:port] or smtps://…, with nothing after the port`);
  }
  if (parsed.password !== '' && parsed.username === '') throw new ConfigError(name, `"${shown}" has a password but no user`);
  try {
    decodeURIComponent(parsed.username);
    decodeURIComponent(parsed.password);
  } catch {
    throw new ConfigError(name, 'the user or password is not correctly %-encoded');
  }
  return parsed;
}

function alertEmail(env: Env): AlertEmailConfig | undefined {
  const smtp = smtpUrl(env, 'SMTP_URL');
  const from = emailAddresses(env, 'ALERT_EMAIL_FROM');
  const to = emailAddresses(env, 'ALERT_EMAIL_TO');
  if (smtp === undefined && from === undefined && to === undefined) return undefined;
  if (from !== undefined && from.length !== 1) throw new ConfigError('ALERT_EMAIL_FROM', 'must be a single address');
  const together = 'must be set for email alerts: SMTP_URL, ALERT_EMAIL_FROM and ALERT_EMAIL_TO go together';
  if (smtp === undefined) throw new ConfigError('SMTP_URL', together);
  if (from === undefined) throw new ConfigError('ALERT_EMAIL_FROM', together);
  if (to === undefined) throw new ConfigError('ALERT_EMAIL_TO', together);
  return { smtpUrl: smtp, from: from[0], to };
}

/** One proxy process per core, less one left for Postgres writing the access log; at least one. */
function defaultProxyWorkers(): number {
  return Math.max(1, os.availableParallelism() - 1);
}

export function loadConfig(env: Env = process.env): Config {
  const connectPortsRaw = read(env, 'CONNECT_PORTS') ?? '443';
  const connectPorts = new Set(
    connectPortsRaw.split(',').map((p) => {
      const n = Number(p.trim());
      if (!/^\d+$/.test(p.trim()) || n < 1 || n > 65535) {
        throw new ConfigError('CONNECT_PORTS', `"${p.trim()}" is not a port number`);
      }
      return n;
    }),
  );
  const adminPassword = read(env, 'ADMIN_PASSWORD');
  if (adminPassword !== undefined && adminPassword.length < 12) {
    throw new ConfigError('ADMIN_PASSWORD', 'must be at least 12 characters');
  }
  const databaseUrl = url(env, 'DATABASE_URL', ['postgres:', 'postgresql:']);
  return {
    proxyHost: read(env, 'PROXY_HOST') ?? '0.0.0.0',
    proxyPort: port(env, 'PROXY_PORT', 3128),
    adminHost: read(env, 'ADMIN_HOST') ?? '0.0.0.0',
    adminPort: port(env, 'ADMIN_PORT', 8080),
    publicHost: read(env, 'PUBLIC_HOST') ?? '127.0.0.1',
    dataDir: path.resolve(read(env, 'DATA_DIR') ?? './var'),
    databaseUrl: databaseUrl?.toString(),
    embeddedPgPort: port(env, 'EMBEDDED_PG_PORT', 54329),
    upstreamProxy: url(env, 'UPSTREAM_PROXY', ['http:']),
    adminPassword,
    schoolName: read(env, 'SCHOOL_NAME') ?? 'Our School',
    schoolTimezone: timezone(env, 'SCHOOL_TIMEZONE', 'Europe/London'),
    allowedClients: cidrList(env, 'ALLOWED_CLIENTS', PRIVATE_AND_LOOPBACK),
    connectPorts,
    allowedPrivateDestinations: cidrList(env, 'ALLOWED_PRIVATE_DESTINATIONS', 'none'),
    proxyAuth: oneOf(env, 'PROXY_AUTH', ['off', 'optional', 'required'] as const, 'optional'),
    headerTimeoutMs: positiveInt(env, 'HEADER_TIMEOUT_MS', 10_000),
    idleTimeoutMs: positiveInt(env, 'IDLE_TIMEOUT_MS', 120_000),
    upstreamTimeoutMs: positiveInt(env, 'UPSTREAM_TIMEOUT_MS', 30_000),
    maxHeaderBytes: positiveInt(env, 'MAX_HEADER_BYTES', 32 * 1024),
    blocklistUrl: url(env, 'BLOCKLIST_URL', ['http:', 'https:'])?.toString(),
    logRetentionDays: wholeNumberInRange(env, 'LOG_RETENTION_DAYS', 365, 1, 3650),
    logLevel: oneOf(env, 'LOG_LEVEL', LOG_LEVELS, 'info'),
    alertWebhookUrl: url(env, 'ALERT_WEBHOOK_URL', ['http:', 'https:']),
    alertRepeatedBlocks: wholeNumberInRange(env, 'ALERT_REPEATED_BLOCKS', 10, 2, 10_000),
    alertRepeatedBlocksWindowMinutes: wholeNumberInRange(env, 'ALERT_REPEATED_BLOCKS_WINDOW_MINUTES', 10, 1, 1440),
    alertWebhookMaxAttempts: wholeNumberInRange(env, 'ALERT_WEBHOOK_MAX_ATTEMPTS', 8, 1, 50),
    alertEmail: alertEmail(env),
    alertEmailMaxAttempts: wholeNumberInRange(env, 'ALERT_EMAIL_MAX_ATTEMPTS', 8, 1, 50),
    selfReportWindowMinutes: wholeNumberInRange(env, 'SELF_REPORT_WINDOW_MINUTES', 10, 1, 1440),
    proxyWorkers: read(env, 'PROXY_WORKERS') === 'auto' ? defaultProxyWorkers() : wholeNumberInRange(env, 'PROXY_WORKERS', defaultProxyWorkers(), 1, 64),
  };
}
