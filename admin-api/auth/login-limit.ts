// Password guessing is slowed per client address and per username: either
// running out answers 429 until its window ends. Every attempt counts, so a
// correct guess does not reset the count.
import type { FastifyInstance, preHandlerAsyncHookHandler } from 'fastify';
import { Problem } from '../problem.js';

export interface LoginRateLimit {
  max: number;
  windowMs: number;
}

export const DEFAULT_LOGIN_RATE_LIMIT: LoginRateLimit = { max: 10, windowMs: 15 * 60 * 1000 };

export function loginRateLimiter(app: FastifyInstance, limit: LoginRateLimit): preHandlerAsyncHookHandler {
  const perAddress = app.createRateLimit({
    max: limit.max,
    timeWindow: limit.windowMs,
    keyGenerator: (request) => `login-ip:${request.ip}`,
  });
  const perUsername = app.createRateLimit({
    max: limit.max,
    timeWindow: limit.windowMs,
    keyGenerator: (request) => `login-user:${String((request.body as { username?: unknown }).username).trim().toLowerCase()}`,
  });
  return async (request, reply) => {
    for (const [check, what] of [
      [perAddress, 'from this address'],
      [perUsername, 'for this username'],
    ] as const) {
      const result = await check(request);
      if (!result.isAllowed && result.isExceeded) {
        reply.header('retry-after', result.ttlInSeconds);
        throw new Problem(429, 'rate-limited', `too many sign-in attempts ${what}; try again in ${result.ttlInSeconds} s`);
      }
    }
  };
}
