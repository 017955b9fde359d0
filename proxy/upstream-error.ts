// Plain-words explanations for failures to reach a web server (or the parent
// proxy), and whether they are a 502 (it failed) or a 504 (it did not answer).
export class UpstreamTimeoutError extends Error {
  readonly code = 'EUPSTREAMTIMEOUT';
}

/** The server (or the parent proxy) answered with something that is not valid HTTP. */
export class InvalidResponseError extends Error {}

/** The parent proxy answered a CONNECT with something other than 2xx. */
export class ParentProxyRefusedError extends Error {
  constructor(readonly statusCode: number) {
    super(`the upstream proxy answered ${statusCode}`);
  }
}

export interface UpstreamFailure {
  status: 502 | 504;
  reason: string;
}

export function describeUpstreamFailure(err: unknown, destination: string, viaParent: boolean): UpstreamFailure {
  const server = viaParent ? `The upstream proxy (on the way to ${destination})` : `The web server ${destination}`;
  if (err instanceof UpstreamTimeoutError) {
    return { status: 504, reason: `${server} did not answer in time.` };
  }
  if (err instanceof InvalidResponseError) {
    return { status: 502, reason: `${server} sent a response that is not valid HTTP.` };
  }
  if (err instanceof ParentProxyRefusedError) {
    return {
      status: err.statusCode === 504 ? 504 : 502,
      reason: `The upstream proxy would not connect to ${destination} (it answered ${err.statusCode}).`,
    };
  }
  const code = (err as NodeJS.ErrnoException | undefined)?.code ?? '';
  switch (code) {
    case 'ECONNREFUSED':
      return { status: 502, reason: `${server} refused the connection.` };
    case 'ECONNRESET':
    case 'EPIPE':
      return { status: 502, reason: `${server} closed the connection unexpectedly (connection reset).` };
    case 'ETIMEDOUT':
      return { status: 504, reason: `${server} did not answer in time.` };
    case 'EHOSTUNREACH':
    case 'ENETUNREACH':
      return { status: 502, reason: `${server} cannot be reached: there is no network route to it.` };
    case 'ENOTFOUND':
    case 'EAI_AGAIN':
      return { status: 502, reason: `${server} could not be found (DNS lookup failed).` };
  }
  return { status: 502, reason: `${server} could not be reached (${code || 'unknown error'}).` };
}
