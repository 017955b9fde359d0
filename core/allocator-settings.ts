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
 * The same settings as glibc tunables, which glibc also reads, from
 * GLIBC_TUNABLES=name=value:name=value (an administrator may prefer them).
 */
const TUNABLE_OF: Readonly<Record<string, string>> = Object.freeze({
  MALLOC_MMAP_THRESHOLD_: 'glibc.malloc.mmap_threshold',
});

/** GLIBC_TUNABLES's entries in order, each as written and as its name and value. */
function tunablesIn(env: NodeJS.ProcessEnv): Array<{ entry: string; name: string; value: string }> {
  return (env.GLIBC_TUNABLES ?? '')
    .split(':')
    .filter((entry) => entry !== '')
    .map((entry) => {
      const equals = entry.indexOf('=');
      return equals === -1 ? { entry, name: entry, value: '' } : { entry, name: entry.slice(0, equals), value: entry.slice(equals + 1) };
    });
}

/**
 * The allocator settings `env` lacks, as NAME=value; empty off Linux, where
 * glibc's variables mean nothing. Any value set counts, as the variable or as
 * its tunable in GLIBC_TUNABLES: it turns the adjustment off too, and may be
 * the administrator's own choice.
 */
export function missingAllocatorSettings(env: NodeJS.ProcessEnv, platform: NodeJS.Platform = process.platform): string[] {
  if (platform !== 'linux') return [];
  const tunables = new Map(tunablesIn(env).map(({ name, value }) => [name, value]));
  return Object.entries(ALLOCATOR_ENVIRONMENT)
    .filter(([name]) => !env[name] && !tunables.get(TUNABLE_OF[name]))
    .map(([name, value]) => `${name}=${value}`);
}

/**
 * Runs `start` with the allocator settings taken out of process.env (the
 * variables, and their tunables from GLIBC_TUNABLES, whose other entries
 * stay), for a child process started meanwhile that must not inherit them:
 * the embedded Postgres, which is built and tested with glibc's defaults
 * (the setting is for Node's buffers; docs/design-notes.md). Whatever the
 * variables held is put back once `start` settles.
 */
export async function withoutAllocatorSettings<T>(start: () => Promise<T>): Promise<T> {
  const saved = [...Object.keys(ALLOCATOR_ENVIRONMENT), 'GLIBC_TUNABLES'].map((name) => [name, process.env[name]] as const);
  for (const name of Object.keys(ALLOCATOR_ENVIRONMENT)) delete process.env[name];
  const ours = new Set(Object.values(TUNABLE_OF));
  const others = tunablesIn(process.env).filter(({ name }) => !ours.has(name));
  if (others.length > 0) process.env.GLIBC_TUNABLES = others.map(({ entry }) => entry).join(':');
  else delete process.env.GLIBC_TUNABLES;
  try {
    return await start();
  } finally {
    for (const [name, value] of saved) {
      if (value === undefined) delete process.env[name];
      else process.env[name] = value;
    }
  }
}
