// Access event ids: time-ordered UUIDs (version 7, RFC 9562).
//
// The first 48 bits are the Unix time in milliseconds, the rest random, so
// ids made later sort later. access_log's unique (id, time) index then grows
// at its right edge, as the time index does, instead of taking each insert at
// a random page of a day's index: for a day of a busy school's requests that
// index outgrows memory, and random inserts turn into random reads.
import { randomFillSync } from 'node:crypto';

const VARIANT = ['8', '9', 'a', 'b'];
/** Random hex digits per id: 3 after the version, 3 after the variant, 12 in the last group. */
const HEX_PER_ID = 18;
/** Random bytes are fetched and turned into hex for a few hundred ids at a time, not per id. */
const IDS_PER_REFILL = 512;

let randomHex = '';
let variants = Buffer.alloc(0);
let next = IDS_PER_REFILL;
let lastMs = -1;
let timePart = '';

/** A new time-ordered UUID for an access event made at `nowMs` (default: now). */
export function newEventId(nowMs: number = Date.now()): string {
  if (next === IDS_PER_REFILL) {
    randomHex = randomFillSync(Buffer.allocUnsafe((IDS_PER_REFILL * HEX_PER_ID) / 2)).toString('hex');
    variants = randomFillSync(Buffer.allocUnsafe(IDS_PER_REFILL));
    next = 0;
  }
  if (nowMs !== lastMs) {
    const time = nowMs.toString(16).padStart(12, '0');
    timePart = `${time.slice(0, 8)}-${time.slice(8, 12)}-7`;
    lastMs = nowMs;
  }
  const at = next * HEX_PER_ID;
  const variant = VARIANT[variants[next] & 3];
  next++;
  // Joined from an array so the id is one flat string, not a tree of pieces.
  return [timePart, randomHex.slice(at, at + 3), '-', variant, randomHex.slice(at + 3, at + 6), '-', randomHex.slice(at + 6, at + 18)].join('');
}
