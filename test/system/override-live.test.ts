// Issue 5, done when: "an override taking effect on a running proxy within a
// second". The whole program runs in this process (startPortcullis), on a
// fresh database; the override is made over HTTP through the admin API, as
// an IT admin would, and the proxy is polled until its answer changes.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RunningPortcullis } from '../../cli/start.js';
import type { InternetStandIn } from '../support/internet-stand-in.js';
import { requestViaProxy } from '../support/proxy-harness.js';
import { signIn, startWholeProgram, type AdminSession, type WholeProgram } from '../support/whole-program.js';

const ADMIN_PASSWORD = 'override-test-admin-pw';
const GAMBLING_HOST = 'www.888casino.com';

describe('an override made through the admin API on a running Portcullis', () => {
  let program: WholeProgram;
  let running: RunningPortcullis;
  let internet: InternetStandIn;
  let admin: AdminSession['request'];

  beforeAll(async () => {
    program = await startWholeProgram({ adminPassword: ADMIN_PASSWORD, lists: { gambling: ['888casino.com'] } });
    ({ running, internet } = program);
    admin = (await signIn(program.adminBase, 'admin', ADMIN_PASSWORD)).request;
  }, 60_000);

  afterAll(async () => {
    await program?.stop();
  });

  const probe = async () => (await requestViaProxy(running.proxyAddress.port, `http://${GAMBLING_HOST}/`)).status;

  /** Milliseconds from `since` until the proxy answers `status`; fails past 2 s (the assertion is on 1 s). */
  async function delayUntilStatus(status: number, since: number): Promise<number> {
    for (let attempt = 0; attempt < 400; attempt++) {
      if ((await probe()) === status) return performance.now() - since;
      if (performance.now() - since > 2_000) break;
      await new Promise((r) => setTimeout(r, 5));
    }
    throw new Error(`the proxy did not answer ${status} for ${GAMBLING_HOST} within 2 s`);
  }

  async function createAllow(): Promise<{ id: number; started: number }> {
    const started = performance.now();
    const res = await admin('POST', '/api/overrides', {
      action: 'allow',
      kind: 'domain',
      value: '888casino.com',
      reason: 'the maths department is studying the odds',
    });
    expect(res.status).toBe(201);
    const created = (await res.json()) as { id: number; decidedBy: string; active: boolean };
    expect(created).toMatchObject({ decidedBy: 'admin', active: true });
    return { id: created.id, started };
  }

  it('blocks the gambling site, allows it within a second of an allow override, and blocks it again within a second of its expiry', async () => {
    const blocked = await requestViaProxy(running.proxyAddress.port, `http://${GAMBLING_HOST}/`);
    expect(blocked.status).toBe(403);
    expect(blocked.body).toContain('Gambling');
    expect(internet.seen.some((r) => r.target.includes('888casino'))).toBe(false);

    const { id, started } = await createAllow();
    const allowedAfter = await delayUntilStatus(200, started);
    expect(allowedAfter).toBeLessThan(1_000);
    expect(internet.httpRequests.at(-1)).toMatchObject({ host: GAMBLING_HOST, path: '/' });

    const expireStarted = performance.now();
    const expired = await admin('POST', `/api/overrides/${id}/expire`);
    expect(expired.status).toBe(200);
    expect(((await expired.json()) as { active: boolean }).active).toBe(false);
    const blockedAfter = await delayUntilStatus(403, expireStarted);
    expect(blockedAfter).toBeLessThan(1_000);
  });

  it('blocks it again within a second of the override being deleted', async () => {
    expect(await probe()).toBe(403);
    const { id, started } = await createAllow();
    expect(await delayUntilStatus(200, started)).toBeLessThan(1_000);

    const deleteStarted = performance.now();
    const deleted = await admin('DELETE', `/api/overrides/${id}`);
    expect(deleted.status).toBe(204);
    expect(await delayUntilStatus(403, deleteStarted)).toBeLessThan(1_000);
    // Still blocked a little later: the change stuck.
    await new Promise((r) => setTimeout(r, 300));
    expect(await probe()).toBe(403);
  });
});
