// A deadline to race work against, for the places that must answer in time
// whatever the party they wait on does: the access log's writes to Postgres,
// the proxy's DNS lookups, the admin API's checks of the database.

export interface Deadline {
  /** Rejects with the deadline's error once the time is up; never settles if cancelled first. */
  readonly expired: Promise<never>;
  /** Stops the timer; call it however the race ended. */
  cancel(): void;
}

export function deadlineIn(ms: number, error: () => Error): Deadline {
  let timer: NodeJS.Timeout | undefined;
  const expired = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(error()), ms);
  });
  // A deadline that passes while nothing races it (between two phases of one
  // piece of work) must not be reported as an unhandled rejection.
  expired.catch(() => undefined);
  return { expired, cancel: () => clearTimeout(timer) };
}

/** `work`'s outcome, or the deadline's error if `ms` pass first; `work` itself is not stopped. */
export async function within<T>(work: Promise<T>, ms: number, error: () => Error): Promise<T> {
  const deadline = deadlineIn(ms, error);
  try {
    return await Promise.race([work, deadline.expired]);
  } finally {
    deadline.cancel();
  }
}
