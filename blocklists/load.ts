// Streams every list entry out of Postgres for the matcher build. COPY TO
// STDOUT is parsed chunk by chunk, so millions of rows never sit in memory
// as one result set.
import { StringDecoder } from 'node:string_decoder';
import { to as copyTo } from 'pg-copy-streams';
import type { Pool } from '../core/db.js';

export type ListEntryKind = 'domain' | 'url';
export type AddListEntry = (kind: ListEntryKind, value: string, categoryId: number) => void;

/** Calls `add` once for every row of list_entries; returns how many of each kind there were. */
export async function loadListEntries(pool: Pool, add: AddListEntry): Promise<{ domains: number; urls: number }> {
  const counts = { domains: 0, urls: 0 };
  const client = await pool.connect();
  let broken: Error | undefined;
  try {
    const stream = client.query(copyTo('COPY list_entries (category_id, kind, value) TO STDOUT'));
    const decoder = new StringDecoder('utf8');
    let partial = '';
    const row = (line: string): void => {
      const firstTab = line.indexOf('\t');
      const secondTab = line.indexOf('\t', firstTab + 1);
      const categoryId = Number(line.slice(0, firstTab));
      const kind = line.slice(firstTab + 1, secondTab) as ListEntryKind;
      const value = unescapeCopyText(line.slice(secondTab + 1));
      if (kind === 'domain') counts.domains++;
      else counts.urls++;
      add(kind, value, categoryId);
    };
    try {
      for await (const chunk of stream) {
        const text = partial + decoder.write(chunk as Buffer);
        let start = 0;
        for (let newline = text.indexOf('\n'); newline !== -1; newline = text.indexOf('\n', start)) {
          row(text.slice(start, newline));
          start = newline + 1;
        }
        partial = text.slice(start);
      }
    } catch (err) {
      // An exception from `add` leaves the COPY half read: that connection cannot be reused.
      broken = err as Error;
      throw err;
    }
    return counts;
  } finally {
    client.release(broken);
  }
}

const COPY_ESCAPES: Record<string, string> = { b: '\b', f: '\f', n: '\n', r: '\r', t: '\t', v: '\v', '\\': '\\' };

/** Reverses COPY text-format escaping (Postgres escapes backslash and control characters on output). */
function unescapeCopyText(field: string): string {
  if (!field.includes('\\')) return field;
  return field.replace(/\\(.)/g, (_, c: string) => COPY_ESCAPES[c] ?? c);
}
