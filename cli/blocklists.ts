// portcullis blocklists import <path> | update [url] | status
import { DownloadError } from '../blocklists/download.js';
import { importBlocklists, updateBlocklists, type ImportProgress, type ImportSummary } from '../blocklists/import.js';
import { createProgressReporter, type ProgressReporter } from '../blocklists/progress.js';
import { ListFormatError, ListSourceError } from '../blocklists/ut1-reader.js';
import type { CliContext, Command } from './context.js';

const USAGE = `Usage: portcullis blocklists <command>

  import <path>   load UT1-format lists from a folder or a .tar.gz file
  update [url]    download a .tar.gz of UT1-format lists (default: BLOCKLIST_URL) and load it
  status          categories with their entry counts, and the last import
`;

export const blocklistsCommand: Command = async (args, ctx) => {
  const [sub, ...rest] = args;
  if (sub === 'import' && rest.length === 1) return runImport(rest[0], ctx);
  if (sub === 'update' && rest.length <= 1) return runUpdate(rest[0], ctx);
  if (sub === 'status' && rest.length === 0) return runStatus(ctx);
  ctx.stderr.write(USAGE);
  return 2;
};

async function runImport(source: string, ctx: CliContext): Promise<number> {
  const progress = createProgressReporter(ctx.stderr, { label: 'importing' });
  return reportOutcome(ctx, progress, () =>
    importBlocklists(ctx.pool, source, { onProgress: (p) => progress.update(importState(p)) }),
  );
}

async function runUpdate(urlArgument: string | undefined, ctx: CliContext): Promise<number> {
  const url = urlArgument ?? ctx.config.blocklistUrl;
  if (!url) {
    ctx.stderr.write('portcullis blocklists update: no URL given and BLOCKLIST_URL is not set\n');
    return 2;
  }
  const download = createProgressReporter(ctx.stderr, { label: 'downloading' });
  let importing: ProgressReporter | undefined;
  return reportOutcome(ctx, download, () =>
    updateBlocklists(ctx.pool, url, ctx.config.dataDir, {
      proxy: ctx.config.upstreamProxy,
      onDownloadProgress: (done, total) => download.update({ done, total, detail: `${formatBytes(done)}` }),
      onProgress: (p) => {
        if (!importing) {
          download.finish();
          importing = createProgressReporter(ctx.stderr, { label: 'importing' });
        }
        importing.update(importState(p));
      },
    }).finally(() => importing?.finish()),
  );
}

async function reportOutcome(
  ctx: CliContext,
  progress: ProgressReporter,
  work: () => Promise<ImportSummary>,
): Promise<number> {
  let summary: ImportSummary;
  try {
    summary = await work();
  } catch (err) {
    if (err instanceof ListFormatError || err instanceof ListSourceError || err instanceof DownloadError) {
      progress.finish();
      ctx.stderr.write(`portcullis blocklists: ${err.message}\nNothing was imported; the lists in service are unchanged.\n`);
      return 1;
    }
    throw err;
  }
  progress.finish();
  ctx.stdout.write(formatSummary(summary));
  return 0;
}

function importState(p: ImportProgress) {
  return { done: p.bytesRead, total: p.bytesTotal, detail: `${count(p.entries)} entries, ${p.category}` };
}

export function formatSummary(summary: ImportSummary): string {
  const rows = summary.perCategory.map((c) => [c.category, count(c.domains), count(c.urls)]);
  const total = `${count(summary.categories)} categories, ${count(summary.domains)} domains, ${count(summary.urls)} URLs in ${(summary.durationMs / 1000).toFixed(1)} s`;
  return `${table(['category', 'domains', 'urls'], rows, 1)}imported ${total}\n`;
}

interface StatusRow {
  key: string;
  severity: string;
  usage: string;
  illegal: boolean;
  domains: number;
  urls: number;
  local: number;
}

async function runStatus(ctx: CliContext): Promise<number> {
  const { rows } = await ctx.pool.query<StatusRow>(
    `SELECT c.key, c.severity, c.usage, c.illegal,
            count(e.value) FILTER (WHERE e.kind = 'domain')::int AS domains,
            count(e.value) FILTER (WHERE e.kind = 'url')::int AS urls,
            count(e.value) FILTER (WHERE e.source = 'local')::int AS local
     FROM categories c LEFT JOIN list_entries e ON e.category_id = c.id
     GROUP BY c.id ORDER BY c.key`,
  );
  ctx.stdout.write(
    table(
      ['category', 'severity', 'usage', 'domains', 'urls', 'local'],
      rows.map((r) => [
        r.illegal ? `${r.key} (illegal)` : r.key,
        r.severity,
        r.usage,
        count(r.domains),
        count(r.urls),
        count(r.local),
      ]),
      3,
    ),
  );
  const last = await ctx.pool.query<{
    source: string;
    imported_at: Date;
    categories: number;
    domains: number;
    urls: number;
    duration_ms: number;
  }>('SELECT source, imported_at, categories, domains, urls, duration_ms FROM list_imports ORDER BY id DESC LIMIT 1');
  const imp = last.rows[0];
  ctx.stdout.write(
    imp
      ? `last import: ${imp.imported_at.toISOString()} from ${imp.source}: ${count(imp.categories)} categories, ${count(imp.domains)} domains, ${count(imp.urls)} URLs (${(imp.duration_ms / 1000).toFixed(1)} s)\n`
      : 'last import: never\n',
  );
  return 0;
}

/** Text columns left-aligned, the numeric columns (from `firstNumeric` on) right-aligned. */
function table(header: string[], rows: string[][], firstNumeric: number): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i].length)));
  const line = (cells: string[]) =>
    cells.map((cell, i) => (i < firstNumeric ? cell.padEnd(widths[i]) : cell.padStart(widths[i]))).join('  ');
  return [header, ...rows].map((r) => `${line(r).trimEnd()}\n`).join('');
}

function count(n: number): string {
  return n.toLocaleString('en-GB');
}

function formatBytes(bytes: number): string {
  return bytes < 1024 * 1024 ? `${(bytes / 1024).toFixed(0)} KiB` : `${(bytes / 1024 / 1024).toFixed(1)} MiB`;
}
