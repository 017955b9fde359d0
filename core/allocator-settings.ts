// The C allocator setting Portcullis runs with: `npm start` and the
// Dockerfile set it, the benchmark starts Portcullis with it, and
// `portcullis start` warns when it is missing.
//
// glibc's malloc raises its mmap threshold each time a large block is freed,
// and its trim threshold (the free memory an arena keeps before giving it
// back) to twice that. Once raised, the buffers a busy proxy allocates by the
// thousand (sockets, COPY batches, the list build's stream) come from
// per-thread arenas, and much of what is freed there stays in the process:
// tens of MiB (docs/design-notes.md, "Memory freed is given back"). Setting
// the threshold, even to its default, turns that adjustment off. glibc reads
// it only when the process starts, so it cannot be set from here.
export const ALLOCATOR_ENVIRONMENT: Readonly<Record<string, string>> = Object.freeze({
  MALLOC_MMAP_THRESHOLD_: '131072',
});

/**
 * The allocator settings `env` lacks, as NAME=value; empty off Linux, where
 * glibc's variables mean nothing. Any value set counts: it turns the
 * adjustment off too, and may be the administrator's own choice.
 */
export function missingAllocatorSettings(env: NodeJS.ProcessEnv, platform: NodeJS.Platform = process.platform): string[] {
  if (platform !== 'linux') return [];
  return Object.entries(ALLOCATOR_ENVIRONMENT)
    .filter(([name]) => env[name] === undefined || env[name] === '')
    .map(([name, value]) => `${name}=${value}`);
}

/**
 * Runs `start` with the allocator settings taken out of process.env, for a
 * child process started meanwhile that must not inherit them: the embedded
 * Postgres, which is built and tested with glibc's defaults (the setting is
 * for Node's buffers; docs/design-notes.md). Whatever the variables held is
 * put back once `start` settles.
 */
export async function withoutAllocatorSettings<T>(start: () => Promise<T>): Promise<T> {
  const saved = Object.keys(ALLOCATOR_ENVIRONMENT).map((name) => [name, process.env[name]] as const);
  for (const [name] of saved) delete process.env[name];
  try {
    return await start();
  } finally {
    for (const [name, value] of saved) if (value !== undefined) process.env[name] = value;
  }
}
