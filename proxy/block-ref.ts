// Reference ids for block pages: short enough to read out over the phone,
// random enough (50 bits) that nobody can guess someone else's.
import { randomFillSync } from 'node:crypto';

// Crockford's base32: no I, L, O or U, so nothing is mistaken for 1, 0 or V.
const ALPHABET = '0123456789ABCDEFGHJKMNPQRSTVWXYZ';
const LENGTH = 10;
// Random bytes are fetched for a few hundred references at a time, not per character.
const POOL_BYTES = LENGTH * 400;
const pool = Buffer.alloc(POOL_BYTES);
let used = POOL_BYTES;

export function newBlockRef(): string {
  if (used === POOL_BYTES) {
    randomFillSync(pool);
    used = 0;
  }
  let ref = '';
  // 256 is a multiple of 32, so the low five bits of a random byte are a uniform character.
  for (let i = 0; i < LENGTH; i++) ref += ALPHABET[pool[used++] & 31];
  return ref;
}

export const BLOCK_REF_PATTERN = /^[0-9A-HJKMNP-TV-Z]{10}$/;
