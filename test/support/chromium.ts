// TEST ONLY. Headless Chromium (Debian's `chromium` package) driven by
// playwright-core, for the browser-facing pages. Nothing here downloads a
// browser: a missing /usr/bin/chromium is an error that says how to install
// it (.ci/run does), never a reason to skip.
import { existsSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { createServer, type AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { chromium, type BrowserContext, type BrowserContextOptions } from 'playwright-core';

export const CHROMIUM_PATH = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';

// Keep Chromium off the network: this machine refuses outside traffic and the tests must not depend on it.
const CHROMIUM_ARGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];

export function requireChromium(): string {
  if (!existsSync(CHROMIUM_PATH)) {
    throw new Error(
      `Chromium is not installed at ${CHROMIUM_PATH}: the browser tests need it. ` +
        'Install it with `apt-get install -y --no-install-recommends chromium` (as .ci/run does), ' +
        'or set CHROMIUM_PATH to a Chromium binary.',
    );
  }
  return CHROMIUM_PATH;
}

export interface TestBrowser {
  context: BrowserContext;
  close(): Promise<void>;
}

/** A fresh headless Chromium with its own profile directory, and one context with `options`. */
export async function launchChromium(options: BrowserContextOptions = {}): Promise<TestBrowser> {
  const executablePath = requireChromium();
  const userDataDir = await mkdtemp(path.join(os.tmpdir(), 'portcullis-chromium-'));
  try {
    const context = await chromium.launchPersistentContext(userDataDir, {
      executablePath,
      headless: true,
      args: CHROMIUM_ARGS,
      timeout: 15_000,
      ...options,
    });
    context.setDefaultTimeout(5_000);
    context.setDefaultNavigationTimeout(10_000);
    return {
      context,
      async close() {
        await context.close().catch(() => undefined);
        await rm(userDataDir, { recursive: true, force: true });
      },
    };
  } catch (err) {
    await rm(userDataDir, { recursive: true, force: true });
    throw err;
  }
}

/** A TCP port on 127.0.0.1 that was free a moment ago (for servers whose own address must be configured up front). */
export function freeLoopbackPort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as AddressInfo;
      server.close(() => resolve(port));
    });
  });
}
