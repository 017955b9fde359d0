// The block page as a person sees it, in headless Chromium: a staff member
// signed in to the proxy browses to a UT1 gambling site on a running
// Portcullis (startPortcullis, a fresh database, the internet stand-in as
// its parent proxy), sees what was blocked, why, for whom and the reference,
// follows "I reached this by accident" (or "I need this for teaching"),
// signs in on the form the admin API serves, and files the report; the
// database then holds it, tied to the access-log row with that reference.
// Chromium browses the admin pages directly and the rest through the proxy;
// everything stays on 127.0.0.1.
import { chmod, mkdtemp, readFile, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import type { Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startPortcullis, type RunningPortcullis } from '../../cli/start.js';
import { loadConfig } from '../../core/config.js';
import { createLogger } from '../../core/logger.js';
import { addUser } from '../../core/users.js';
import { freeLoopbackPort, launchChromium, requireChromium, type TestBrowser } from '../support/chromium.js';
import { createTestDatabase, type TestDatabase } from '../support/database.js';
import { importSmallLists, startInternetStandIn, waitUntil, type InternetStandIn } from '../support/internet-stand-in.js';

const GAMBLING_HOST = 'www.888casino.com';
const STAFF = { username: 'mrs.hughes', password: 'a-long-staff-password' };
const PNG_SIGNATURE = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);

let db: TestDatabase;
let dataDir: string;
let internet: InternetStandIn;
let running: RunningPortcullis;
let browser: TestBrowser;
let adminBase: string;

beforeAll(async () => {
  // First, so that a machine without Chromium fails here with the reason, before anything starts.
  requireChromium();
  db = await createTestDatabase();
  // A UT1-format list of our own, so that startPortcullis does not import the whole bundled one.
  await importSmallLists(db.pool, { gambling: ['888casino.com'] });
  internet = await startInternetStandIn();
  dataDir = await mkdtemp(path.join(os.tmpdir(), 'portcullis-e2e-'));
  await chmod(dataDir, 0o711);
  // The block page's links name the admin API's port, so it is chosen up front rather than 0.
  const adminPort = await freeLoopbackPort();
  const config = loadConfig({
    DATABASE_URL: db.url,
    DATA_DIR: dataDir,
    PROXY_HOST: '127.0.0.1',
    PROXY_PORT: '0',
    ADMIN_HOST: '127.0.0.1',
    ADMIN_PORT: String(adminPort),
    PUBLIC_HOST: '127.0.0.1',
    PROXY_AUTH: 'required',
    ADMIN_PASSWORD: 'e2e-first-admin-password',
    UPSTREAM_PROXY: internet.parentUrl,
    SCHOOL_NAME: 'Castle Hill Academy',
    LOG_LEVEL: 'silent',
  });
  running = await startPortcullis(config, createLogger('silent'));
  adminBase = `http://127.0.0.1:${running.adminAddress.port}`;
  const school = await running.pool.query<{ id: number }>('SELECT id FROM schools ORDER BY id LIMIT 1');
  await addUser(running.pool, { schoolId: school.rows[0].id, username: STAFF.username, groupKey: 'staff', roles: ['staff'], password: STAFF.password });

  browser = await launchChromium({
    // The proxy asks for credentials (407) and Chromium answers with these; the admin API is browsed directly.
    proxy: { server: `http://127.0.0.1:${running.proxyAddress.port}`, bypass: '127.0.0.1', ...STAFF },
    viewport: { width: 900, height: 900 },
  });
}, 60_000);

afterAll(async () => {
  await browser?.close();
  await running?.stop();
  await internet?.close();
  await db?.drop();
  if (dataDir) await rm(dataDir, { recursive: true, force: true });
});

interface BlockSeen {
  page: Page;
  ref: string;
}

/** Browses to the gambling site through the proxy; checks the block page and returns its reference. */
async function browseToBlockedSite(pathAndQuery: string): Promise<BlockSeen> {
  const page = await browser.context.newPage();
  const response = await page.goto(`http://${GAMBLING_HOST}${pathAndQuery}`);
  expect(response?.status()).toBe(403);
  await expect(page.title()).resolves.toBe('Page blocked');
  expect(await page.locator('h1').innerText()).toBe('This page is blocked');
  const details = await definitionList(page);
  expect(details.Blocked).toBe(`http://${GAMBLING_HOST}${pathAndQuery}`);
  expect(details.Category).toBe('Gambling');
  expect(details.Rule).toBe('staff: gambling is blocked');
  expect(details.User).toBe(STAFF.username);
  expect(details.Reference).toMatch(/^[0-9A-Z]{10}$/);
  expect(await page.locator('body').innerText()).toContain('Castle Hill Academy does not allow this page on its network.');
  // Nothing reached "the internet": the proxy answered itself.
  expect(internet.seen.filter((r) => r.target.includes(GAMBLING_HOST))).toEqual([]);
  return { page, ref: details.Reference };
}

/** The page's <dl> as term → description, as displayed. */
async function definitionList(page: Page): Promise<Record<string, string>> {
  const terms = await page.locator('dl > dt').allInnerTexts();
  const descriptions = await page.locator('dl > dd').allInnerTexts();
  expect(terms.length).toBe(descriptions.length);
  return Object.fromEntries(terms.map((t, i) => [t.trim(), descriptions[i].trim()]));
}

/** On the report page's sign-in form: signs in and waits for the reloaded page (the pre-filled report). */
async function signInOnForm(page: Page): Promise<void> {
  await expect(page.locator('p').first().innerText()).resolves.toContain('Sign in with your school account');
  await page.getByLabel('Username').fill(STAFF.username);
  await page.getByLabel('Password').fill(STAFF.password);
  await Promise.all([page.waitForEvent('load'), page.getByRole('button', { name: 'Sign in' }).click()]);
}

async function accessLogRow(ref: string): Promise<{ id: string; self_reported_at: Date | null }> {
  let row: { id: string; self_reported_at: Date | null } | undefined;
  await waitUntil(
    async () => {
      const { rows } = await running.pool.query('SELECT id::text, self_reported_at FROM access_log WHERE block_ref = $1', [ref]);
      row = rows[0];
      return row !== undefined;
    },
    5_000,
    `the access-log row for block ${ref}`,
  );
  return row!;
}

describe('the block page in a browser', () => {
  it('shows the block, and "I reached this by accident" files a report tied to the access-log row', async () => {
    const { page, ref } = await browseToBlockedSite('/roulette?table=3');

    const screenshotDir = await mkdtemp(path.join(os.tmpdir(), 'portcullis-screenshot-'));
    const screenshot = path.join(screenshotDir, 'block-page.png');
    await page.screenshot({ path: screenshot, fullPage: true });
    const png = await readFile(screenshot);
    expect(png.length).toBeGreaterThan(1_000);
    expect(png.subarray(0, 8).equals(PNG_SIGNATURE)).toBe(true);
    if (process.env.KEEP_SCREENSHOTS === undefined) await rm(screenshotDir, { recursive: true, force: true });
    else console.log(`block page screenshot: ${screenshot}`);

    const row = await accessLogRow(ref);
    expect(row.self_reported_at).toBeNull();

    await Promise.all([page.waitForURL(`${adminBase}/report/accident?ref=${ref}`), page.getByRole('link', { name: 'I reached this by accident' }).click()]);
    await signInOnForm(page);

    // The reloaded page: the report, pre-filled from the block.
    expect(await page.locator('h1').innerText()).toBe('I reached this by accident');
    const details = await definitionList(page);
    expect(details).toMatchObject({ Address: `http://${GAMBLING_HOST}/roulette?table=3`, Category: 'gambling', Reference: ref });
    await page.getByLabel('Anything you want to add (optional)').fill('mistyped the maths site address');
    await page.getByRole('button', { name: 'Report it' }).click();
    await expect(page.getByRole('status').filter({ hasText: /\S/ }).innerText()).resolves.toBe('Thank you. Your report has gone to the safeguarding lead.');

    const { rows } = await running.pool.query(
      `SELECT r.kind, r.block_ref, r.url, r.category, r.description, r.access_log_ids::text[] AS access_log_ids, u.username
       FROM incident_reports r JOIN users u ON u.id = r.reporter_user_id WHERE r.block_ref = $1`,
      [ref],
    );
    expect(rows).toHaveLength(1);
    expect(rows[0]).toMatchObject({ kind: 'accidental_access', username: STAFF.username, url: `http://${GAMBLING_HOST}/roulette?table=3`, category: 'gambling' });
    expect(rows[0].access_log_ids).toContain(row.id);
    expect((await accessLogRow(ref)).self_reported_at).toBeInstanceOf(Date);
    await page.close();
  });

  it('"I need this for teaching" files an unblock request', async () => {
    const { page, ref } = await browseToBlockedSite('/probability');
    await accessLogRow(ref);
    await Promise.all([page.waitForURL(`${adminBase}/report/unblock?ref=${ref}`), page.getByRole('link', { name: 'I need this for teaching' }).click()]);
    // Signed in by the first test, but the session cookie is SameSite=Strict and this navigation
    // came from another site (the block page), so the form asks again; the reload after it carries the cookie.
    await signInOnForm(page);

    expect(await page.locator('h1').innerText()).toBe('I need this for teaching');
    expect((await definitionList(page)).Reference).toBe(ref);
    await page.getByLabel('Why you need it for teaching').fill('a Year 10 probability lesson on the house edge');
    await page.getByRole('button', { name: 'Ask for it to be unblocked' }).click();
    await expect(page.getByRole('status').filter({ hasText: /\S/ }).innerText()).resolves.toBe(
      'Your request has gone to the IT team. You will see their decision under your requests.',
    );

    const { rows } = await running.pool.query(
      `SELECT r.status, r.url, r.target_kind, r.target, r.reason, u.username
       FROM unblock_requests r JOIN users u ON u.id = r.requester_user_id WHERE r.block_ref = $1`,
      [ref],
    );
    expect(rows).toEqual([
      {
        status: 'pending',
        url: `http://${GAMBLING_HOST}/probability`,
        target_kind: 'domain',
        target: GAMBLING_HOST,
        reason: 'a Year 10 probability lesson on the house edge',
        username: STAFF.username,
      },
    ]);
    await page.close();
  });
});
