// Reference ids for block pages: short enough to read out over the phone,
// random enough (50 bits) that nobody can guess someone else's.
import { randomInt } from 'node:crypto';

// Crockford's base32: no I, L, O or U, so nothing is mistaken for 1, 0 or V.
const ALPHABET = '0123456789ABCDEFGHJKMNPQRSTVWXYZ';
const LENGTH = 10;

export function newBlockRef(): string {
  let ref = '';
  for (let i = 0; i < LENGTH; i++) ref += ALPHABET[randomInt(ALPHABET.length)];
  return ref;
}

export const BLOCK_REF_PATTERN = /^[0-9A-HJKMNP-TV-Z]{10}$/;
