// A peer proxy as a child process group: started detached (so it leads a
// process group of its own that holds everything it forks), its output in
// a log file in its temp folder, ready once its port accepts connections,
// and stopped by signalling the whole group and checking that nothing of it
// is left.
import { spawn, type ChildProcess } from 'node:child_process';
import { closeSync, openSync, readFileSync } from 'node:fs';
import { canConnect } from '../common.js';
import { isLiveProcess, processGroupMembers, processTree } from './proc.js';

export interface PeerProcess {
  readonly pid: number;
  readonly logFile: string;
  /** The last lines the peer wrote, for error messages. */
  logTail(lines?: number): string;
  /** Resolves once the port accepts a TCP connection; rejects if the process exits first or the time runs out. */
  waitForPort(port: number, timeoutMs: number): Promise<void>;
  /** SIGTERM to the group, SIGKILL after `graceMs`; throws if any process of the group is still alive after that. */
  stop(graceMs?: number): Promise<void>;
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

export function spawnPeerProcess(name: string, command: string, args: readonly string[], logFile: string, env?: NodeJS.ProcessEnv): PeerProcess {
  const log = openSync(logFile, 'a');
  let child: ChildProcess;
  try {
    child = spawn(command, args, { detached: true, stdio: ['ignore', log, log], env: env ?? process.env });
  } finally {
    closeSync(log);
  }
  let exited: string | undefined;
  child.on('exit', (code, signal) => (exited = `exited with ${signal ?? `code ${code}`}`));
  const spawnFailure = new Promise<never>((_, reject) => child.once('error', reject));
  spawnFailure.catch(() => undefined); // reported by waitForPort
  if (child.pid === undefined) throw new Error(`${name}: could not start ${command}`);
  const pid = child.pid;

  const logTail = (lines = 20): string => {
    try {
      return readFileSync(logFile, 'utf8').trimEnd().split('\n').slice(-lines).join('\n');
    } catch {
      return '(no log)';
    }
  };

  return {
    pid,
    logFile,
    logTail,
    async waitForPort(port, timeoutMs) {
      const deadline = Date.now() + timeoutMs;
      for (;;) {
        if (exited) throw new Error(`${name} ${exited} before listening on ${port}; its log ends:\n${logTail()}`);
        if (await Promise.race([canConnect(port), spawnFailure])) return;
        if (Date.now() > deadline) throw new Error(`${name} did not listen on 127.0.0.1:${port} within ${timeoutMs} ms; its log ends:\n${logTail()}`);
        await sleep(50);
      }
    },
    async stop(graceMs = 5_000) {
      // A descendant that made a session of its own would escape the group signal: collect those first.
      const strays = processTree(pid);
      const signalAll = (signal: NodeJS.Signals): void => {
        try {
          process.kill(-pid, signal);
        } catch {
          // the group is already empty
        }
        for (const p of strays) {
          try {
            process.kill(p, signal);
          } catch {
            // already gone
          }
        }
      };
      const alive = () => [...new Set([...processGroupMembers(pid), ...strays.filter(isLiveProcess)])];
      signalAll('SIGTERM');
      const deadline = Date.now() + graceMs;
      while (alive().length > 0 && Date.now() < deadline) await sleep(50);
      if (alive().length > 0) {
        signalAll('SIGKILL');
        await sleep(200);
      }
      const left = alive();
      if (left.length > 0) throw new Error(`${name}: processes ${left.join(', ')} still alive after SIGKILL`);
    },
  };
}

/** Waits for a peer's port; a peer that never listens is stopped (its whole group) before the error is passed on. */
export async function listeningOrStopped(child: PeerProcess, port: number, timeoutMs: number): Promise<void> {
  try {
    await child.waitForPort(port, timeoutMs);
  } catch (err) {
    await child.stop();
    throw err;
  }
}
