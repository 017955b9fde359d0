// The bench origin (bench/origin-process.ts: a fixed 1 KiB page, a count of
// requests served) in a process of its own, so that it does not share an
// event loop with the load generator's helpers.
import { fork, type ChildProcess } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { CountingOrigin } from './verify.js';

export interface OriginStats {
  served: number;
  connections: number;
  cpuSeconds: number;
}

export interface OriginProcess extends CountingOrigin {
  pid: number;
  stats(): Promise<OriginStats>;
  stop(): Promise<void>;
}

/** dist-bench/bench/peers/origin.js → dist-bench/bench/origin-process.js */
const ORIGIN_SCRIPT = path.join(path.dirname(fileURLToPath(import.meta.url)), '..', 'origin-process.js');

function nextMessage<T>(child: ChildProcess, type: string): Promise<T> {
  return new Promise((resolve, reject) => {
    const onMessage = (message: { type: string }) => {
      if (message.type !== type) return;
      child.off('message', onMessage);
      child.off('exit', onExit);
      resolve(message as T);
    };
    const onExit = (code: number | null) => reject(new Error(`the bench origin exited (${code}) while the bench waited for '${type}'`));
    child.on('message', onMessage);
    child.once('exit', onExit);
  });
}

export async function startOriginProcess(): Promise<OriginProcess> {
  const child = fork(ORIGIN_SCRIPT, [], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
  const { port } = await nextMessage<{ port: number }>(child, 'ready');
  // Answers come in the order asked, one 'stats' at a time.
  let queue: Promise<unknown> = Promise.resolve();
  const stats = (): Promise<OriginStats> => {
    const next = queue.then(() => {
      const reply = nextMessage<OriginStats>(child, 'stats');
      child.send({ type: 'stats' });
      return reply;
    });
    queue = next.catch(() => undefined);
    return next;
  };
  return {
    port,
    pid: child.pid!,
    stats,
    served: async () => (await stats()).served,
    async stop() {
      if (child.exitCode !== null || child.signalCode !== null) return;
      const exited = new Promise((resolve) => child.once('exit', resolve));
      child.send({ type: 'stop' });
      const timer = setTimeout(() => child.kill('SIGKILL'), 5_000);
      await exited;
      clearTimeout(timer);
    },
  };
}
