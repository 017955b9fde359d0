import os from 'node:os';
import { describe, expect, it } from 'vitest';
import { ConfigError, loadConfig } from '../../core/config.js';

function configError(env: Record<string, string>): ConfigError {
  try {
    loadConfig(env);
  } catch (err) {
    if (err instanceof ConfigError) return err;
    throw err;
  }
  throw new Error('expected a ConfigError');
}

describe('loadConfig', () => {
  it('has working defaults for a fresh install', () => {
    const config = loadConfig({});
    expect(config.proxyPort).toBe(3128);
    expect(config.adminPort).toBe(8080);
    expect(config.schoolTimezone).toBe('Europe/London');
    expect(config.connectPorts).toEqual(new Set([443]));
    expect(config.databaseUrl).toBeUndefined();
    expect(config.proxyAuth).toBe('optional');
    expect(config.allowedPrivateDestinations).toEqual([]);
    expect(config.logRetentionDays).toBe(365);
    expect(config.alertWebhookUrl).toBeUndefined();
    expect(config.alertRepeatedBlocks).toBe(10);
    expect(config.selfReportWindowMinutes).toBe(10);
    expect(config.alertEmail).toBeUndefined();
    expect(config.alertEmailMaxAttempts).toBe(8);
    expect(config.allowedClients.map((c) => `${c.address}/${c.prefix}`)).toContain('192.168.0.0/16');
  });

  it('reads every setting it is given', () => {
    const config = loadConfig({
      PROXY_PORT: '8128',
      ADMIN_PORT: '9090',
      UPSTREAM_PROXY: 'http://parent.example:8080',
      CONNECT_PORTS: '443, 8443',
      ALLOWED_CLIENTS: '10.1.0.0/16',
      ALLOWED_PRIVATE_DESTINATIONS: '10.9.0.5',
      SCHOOL_TIMEZONE: 'America/New_York',
      DATABASE_URL: 'postgres://u:p@db:5432/portcullis',
      PROXY_AUTH: 'required',
      ALERT_WEBHOOK_URL: 'https://alerts.example/hook',
      ALERT_REPEATED_BLOCKS: '3',
      ALERT_REPEATED_BLOCKS_WINDOW_MINUTES: '5',
      ALERT_WEBHOOK_MAX_ATTEMPTS: '4',
      SELF_REPORT_WINDOW_MINUTES: '15',
    });
    expect(config.proxyPort).toBe(8128);
    expect(config.adminPort).toBe(9090);
    expect(config.upstreamProxy?.host).toBe('parent.example:8080');
    expect(config.connectPorts).toEqual(new Set([443, 8443]));
    expect(config.allowedClients).toEqual([{ address: '10.1.0.0', prefix: 16, family: 'ipv4' }]);
    expect(config.allowedPrivateDestinations).toEqual([{ address: '10.9.0.5', prefix: 32, family: 'ipv4' }]);
    expect(config.schoolTimezone).toBe('America/New_York');
    expect(config.databaseUrl).toContain('db:5432');
    expect(config.proxyAuth).toBe('required');
    expect(config.alertWebhookUrl?.toString()).toBe('https://alerts.example/hook');
    expect(config.alertRepeatedBlocks).toBe(3);
    expect(config.alertRepeatedBlocksWindowMinutes).toBe(5);
    expect(config.alertWebhookMaxAttempts).toBe(4);
    expect(config.selfReportWindowMinutes).toBe(15);
  });

  it('runs one proxy worker per core less one for Postgres, at least one, unless PROXY_WORKERS says otherwise', () => {
    const expected = Math.max(1, os.availableParallelism() - 1);
    expect(loadConfig({}).proxyWorkers).toBe(expected);
    expect(loadConfig({ PROXY_WORKERS: 'auto' }).proxyWorkers).toBe(expected);
    expect(loadConfig({ PROXY_WORKERS: '3' }).proxyWorkers).toBe(3);
  });

  it.each([
    ['PROXY_PORT', 'abc'],
    ['PROXY_PORT', '70000'],
    ['ADMIN_PORT', '-1'],
    ['SCHOOL_TIMEZONE', 'Mars/Olympus'],
    ['UPSTREAM_PROXY', 'not a url'],
    ['UPSTREAM_PROXY', 'ftp://parent:21'],
    ['DATABASE_URL', 'mysql://x'],
    ['ALLOWED_CLIENTS', '10.0.0.0/33'],
    ['CONNECT_PORTS', '443,http'],
    ['PROXY_AUTH', 'sometimes'],
    ['ADMIN_PASSWORD', 'short'],
    ['HEADER_TIMEOUT_MS', '0'],
    ['LOG_LEVEL', 'loud'],
    ['LOG_RETENTION_DAYS', '0'],
    ['LOG_RETENTION_DAYS', '7.5'],
    ['LOG_RETENTION_DAYS', '3651'],
    ['ALERT_WEBHOOK_URL', 'ftp://alerts.example'],
    ['ALERT_WEBHOOK_URL', 'not a url'],
    ['ALERT_REPEATED_BLOCKS', '1'],
    ['ALERT_REPEATED_BLOCKS_WINDOW_MINUTES', '0'],
    ['ALERT_WEBHOOK_MAX_ATTEMPTS', '51'],
    ['SELF_REPORT_WINDOW_MINUTES', 'ten'],
    ['ALERT_EMAIL_MAX_ATTEMPTS', '0'],
    ['PROXY_WORKERS', '0'],
    ['PROXY_WORKERS', 'many'],
  ])('rejects %s=%s naming the variable', (name, value) => {
    const err = configError({ [name]: value });
    expect(err.variable).toBe(name);
    expect(err.message).toMatch(new RegExp(`^${name}: `));
  });

  describe('alert email', () => {
    const complete = {
      SMTP_URL: 'smtps://alerts%40school.example:p%3Ass@mail.school.example:465',
      ALERT_EMAIL_FROM: 'portcullis@school.example',
      ALERT_EMAIL_TO: 'dsl@school.example, deputy.dsl@school.example',
    };

    it('reads SMTP_URL, ALERT_EMAIL_FROM and ALERT_EMAIL_TO together', () => {
      const config = loadConfig({ ...complete, ALERT_EMAIL_MAX_ATTEMPTS: '3' });
      expect(config.alertEmail?.smtpUrl.protocol).toBe('smtps:');
      expect(config.alertEmail?.smtpUrl.hostname).toBe('mail.school.example');
      expect(decodeURIComponent(config.alertEmail?.smtpUrl.username ?? '')).toBe('alerts@school.example');
      expect(decodeURIComponent(config.alertEmail?.smtpUrl.password ?? '')).toBe('p:ss');
      expect(config.alertEmail?.from).toBe('portcullis@school.example');
      expect(config.alertEmail?.to).toEqual(['dsl@school.example', 'deputy.dsl@school.example']);
      expect(config.alertEmailMaxAttempts).toBe(3);
      const plain = loadConfig({ ...complete, SMTP_URL: 'smtp://10.0.0.25:25', ALERT_EMAIL_TO: 'dsl@school.example' });
      expect(plain.alertEmail?.smtpUrl.port).toBe('25');
      expect(plain.alertEmail?.smtpUrl.username).toBe('');
      expect(plain.alertEmail?.to).toEqual(['dsl@school.example']);
    });

    it.each([
      ['SMTP_URL', ['ALERT_EMAIL_FROM', 'ALERT_EMAIL_TO']],
      ['ALERT_EMAIL_FROM', ['SMTP_URL', 'ALERT_EMAIL_TO']],
      ['ALERT_EMAIL_TO', ['SMTP_URL', 'ALERT_EMAIL_FROM']],
      ['ALERT_EMAIL_FROM', ['SMTP_URL']],
      ['SMTP_URL', ['ALERT_EMAIL_TO']],
      ['SMTP_URL', ['ALERT_EMAIL_FROM']],
    ] as const)('names %s when only %j are set', (missing, given) => {
      const env = Object.fromEntries(given.map((name) => [name, complete[name]]));
      const err = configError(env);
      expect(err.variable).toBe(missing);
      expect(err.message).toMatch(new RegExp(`^${missing}: must be set for email alerts`));
    });

    it.each([
      ['SMTP_URL', 'http://mail.school.example'],
      ['SMTP_URL', 'not a url'],
      ['SMTP_URL', 'smtp://'],
      ['SMTP_URL', 'smtp://mail.school.example/path'],
      ['SMTP_URL', 'smtp://mail.school.example:25?secure=false'],
      ['SMTP_URL', 'smtp://:secret@mail.school.example'],
      ['SMTP_URL', 'smtp://mail.school.example:99999'],
      ['SMTP_URL', 'smtpx://alerts:p%3Ass@mail.school.example'],
      ['SMTP_URL', 'smtp://alerts:p%3Ass@mail.school.example/x'],
      ['ALERT_EMAIL_FROM', 'portcullis'],
      ['ALERT_EMAIL_FROM', 'a@school.example, b@school.example'],
      ['ALERT_EMAIL_FROM', 'Portcullis <portcullis@school.example>'],
      ['ALERT_EMAIL_TO', 'dsl@school.example,'],
      ['ALERT_EMAIL_TO', 'dsl@school.example, nobody'],
      ['ALERT_EMAIL_TO', 'dsl@localhost'],
      ['ALERT_EMAIL_TO', 'dsl@@school.example'],
    ])('rejects %s=%s naming the variable', (name, value) => {
      const err = configError({ ...complete, [name]: value });
      expect(err.variable).toBe(name);
      expect(err.message).toMatch(new RegExp(`^${name}: `));
      // The password is never repeated in a message.
      expect(err.message).not.toContain('p%3Ass');
    });
  });
});
