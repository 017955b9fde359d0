// Block references: the shape quoted on the block page, and no repeats in a day's worth.
import { describe, expect, it } from 'vitest';
import { BLOCK_REF_PATTERN, newBlockRef } from '../../proxy/block-ref.js';

describe('block references', () => {
  it('are ten Crockford base32 characters, every character in use, none repeated in 20,000', () => {
    const refs = Array.from({ length: 20_000 }, () => newBlockRef());
    for (const ref of refs) expect(ref).toMatch(BLOCK_REF_PATTERN);
    expect(new Set(refs).size).toBe(refs.length);
    expect(new Set(refs.join('')).size).toBe(32);
  });
});
