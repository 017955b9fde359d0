// Blocklist imports (it_admin): upload a UT1 .tar.gz or have the server
// fetch one, then follow the background job; and the lists' status. An
// import is one transaction (blocklists/import.ts): a malformed list fails
// the job, naming the file and line, and leaves the lists as they were.
// Each job is audited when it starts and when it ends.
import { randomBytes } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import { mkdir, rm } from 'node:fs/promises';
import path from 'node:path';
import { pipeline } from 'node:stream/promises';
import multipart from '@fastify/multipart';
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type, type TSchema } from 'typebox';
import { importBlocklists, updateBlocklists } from '../../blocklists/import.js';
import type { Config } from '../../core/config.js';
import type { Pool } from '../../core/db.js';
import type { Logger } from '../../core/logger.js';
import { appendAudit } from '../audit.js';
import { actorOf, principalOf, type Principal } from '../auth/principal.js';
import { BlocklistJobs, type BlocklistJob } from '../blocklist-jobs.js';
import { Category, listCategories } from '../category-catalogue.js';
import { badRequest, notFound, Problem } from '../problem.js';

export const DEFAULT_UPLOAD_LIMIT_BYTES = 200 * 1024 * 1024;

const Nullable = <T extends TSchema>(schema: T) => Type.Union([schema, Type.Null()]);

const CategoryCount = Type.Object({ category: Type.String(), domains: Type.Integer(), urls: Type.Integer() });

const Job = Type.Object({
  id: Type.String({ format: 'uuid' }),
  kind: Type.Enum(['upload', 'fetch']),
  source: Type.String(),
  startedBy: Type.String(),
  state: Type.Enum(['running', 'succeeded', 'failed']),
  startedAt: Type.String({ format: 'date-time' }),
  finishedAt: Nullable(Type.String({ format: 'date-time' })),
  progress: Type.Object({
    phase: Type.Enum(['uploading', 'downloading', 'importing']),
    category: Nullable(Type.String({ description: 'the category being read' })),
    entries: Type.Integer({ description: 'entries read so far' }),
    bytesRead: Nullable(Type.Integer()),
    bytesTotal: Nullable(Type.Integer()),
  }),
  summary: Nullable(
    Type.Object({
      categories: Type.Integer(),
      domains: Type.Integer(),
      urls: Type.Integer(),
      durationMs: Type.Integer(),
      perCategory: Type.Array(CategoryCount),
    }),
  ),
  error: Nullable(
    Type.Object({
      message: Type.String(),
      file: Nullable(Type.String({ description: 'the list file inside the archive, e.g. gambling/domains' })),
      line: Nullable(Type.Integer()),
    }),
  ),
});

const JobParams = Type.Object({ id: Type.String({ format: 'uuid' }) });

const FetchBody = Type.Object(
  {
    url: Type.Optional(
      Type.String({ maxLength: 2048, pattern: '^[Hh][Tt][Tt][Pp][Ss]?://', description: 'an http(s) URL of a UT1 .tar.gz; default BLOCKLIST_URL' }),
    ),
  },
  { additionalProperties: false },
);

const Accepted = Type.Object({ job: Job, location: Type.String({ description: 'where to follow the job' }) });

const ImportRecord = Type.Object({
  source: Type.String(),
  importedAt: Type.String({ format: 'date-time' }),
  categories: Type.Integer(),
  domains: Type.Integer(),
  urls: Type.Integer(),
  durationMs: Type.Integer(),
});

const Status = Type.Object({
  categories: Type.Array(Category),
  lastImports: Type.Array(ImportRecord, { description: 'the ten most recent completed imports, newest first' }),
  runningJob: Nullable(Job),
});

const ARCHIVE_NAME = /\.(tar\.gz|tgz)$/i;

export interface BlocklistRouteOptions {
  pool: Pool;
  /** An import of the full lists is one long transaction: it runs on a pool without the requests' query timeout. */
  importPool: Pool;
  config: Config;
  log: Logger;
  uploadLimitBytes: number;
}

export const blocklistRoutes: FastifyPluginAsyncTypebox<BlocklistRouteOptions> = async (app, { pool, importPool, config, log, uploadLimitBytes }) => {
  const access = ['it_admin'] as const;
  const jobs = new BlocklistJobs();
  const uploadDir = path.join(config.dataDir, 'uploads');
  // Only these routes take multipart bodies: the parser is registered in this plugin's scope.
  await app.register(multipart, { limits: { fileSize: uploadLimitBytes, files: 1, fields: 0, parts: 1 } });

  const audit = (principal: Principal, action: string, job: BlocklistJob, detail: Record<string, unknown>) =>
    appendAudit(pool, { schoolId: principal.schoolId, actor: actorOf(principal), action, target: `blocklist_import:${job.id}`, detail });

  async function recordOutcome(principal: Principal, job: BlocklistJob): Promise<void> {
    const { state, summary, error } = job;
    const detail = summary ? { state, categories: summary.categories, domains: summary.domains, urls: summary.urls } : { state, error };
    await audit(principal, 'blocklist_import.finish', job, { kind: job.kind, source: job.source, ...detail }).catch((err: unknown) =>
      log.error({ err, jobId: job.id }, 'could not audit the end of a blocklist import'),
    );
    if (error) log.warn({ jobId: job.id, error }, 'blocklist import failed; the lists are unchanged');
  }

  const accepted = (job: BlocklistJob) => ({ job, location: `/api/blocklists/jobs/${job.id}` });

  app.post(
    '/api/blocklists/upload',
    {
      config: { access },
      schema: {
        tags: ['blocklists'],
        summary: 'Import an uploaded UT1 .tar.gz in the background',
        description:
          `multipart/form-data with one file part (a .tar.gz of <category>/domains and <category>/urls files), at most ${uploadLimitBytes} bytes. ` +
          '202 with the job to follow; 409 while another import job runs.',
        consumes: ['multipart/form-data'],
        response: { 202: Accepted },
      },
    },
    async (request, reply) => {
      const principal = principalOf(request);
      const job = jobs.reserve('upload', 'upload', principal.username, 'uploading');
      const file = path.join(uploadDir, `blocklists-upload-${randomBytes(6).toString('hex')}.tar.gz`);
      try {
        const part = await request.file();
        if (!part) throw badRequest('the form holds no file', [{ name: 'body/file', reason: 'is required' }]);
        if (!ARCHIVE_NAME.test(part.filename)) {
          part.file.resume();
          throw new Problem(415, 'unsupported-media-type', `"${part.filename}" is not a .tar.gz archive`);
        }
        job.source = part.filename;
        await mkdir(uploadDir, { recursive: true });
        await pipeline(part.file, createWriteStream(file));
        // The parser stops at the limit and marks the file truncated rather than failing the stream.
        if (part.file.truncated) throw new Problem(413, 'body-too-large', `the archive is larger than the limit of ${uploadLimitBytes} bytes`);
        await audit(principal, 'blocklist_import.start', job, { kind: job.kind, source: job.source });
      } catch (err) {
        jobs.abandon(job);
        await rm(file, { force: true });
        throw err;
      }
      jobs.start(
        job,
        (report) => importBlocklists(importPool, file, { recordAs: `upload: ${job.source}`, onProgress: report.import }).finally(() => rm(file, { force: true })),
        (finished) => recordOutcome(principal, finished),
      );
      return reply.code(202).header('location', `/api/blocklists/jobs/${job.id}`).send(accepted(job));
    },
  );

  app.post(
    '/api/blocklists/fetch',
    {
      config: { access },
      schema: {
        tags: ['blocklists'],
        summary: 'Fetch a UT1 .tar.gz over http(s) and import it in the background',
        description: 'From the url given, or else BLOCKLIST_URL. 202 with the job to follow; 409 while another import job runs.',
        body: FetchBody,
        response: { 202: Accepted },
      },
    },
    async (request, reply) => {
      const principal = principalOf(request);
      const url = request.body.url ?? config.blocklistUrl;
      if (url === undefined) throw badRequest('give a url: BLOCKLIST_URL is not set', [{ name: 'body/url', reason: 'is required' }]);
      if (!URL.canParse(url)) throw badRequest(`"${url}" is not a URL`, [{ name: 'body/url', reason: 'not a URL' }]);
      const job = jobs.reserve('fetch', url, principal.username, 'downloading');
      await audit(principal, 'blocklist_import.start', job, { kind: job.kind, source: url }).catch((err: unknown) => {
        jobs.abandon(job);
        throw err;
      });
      jobs.start(
        job,
        (report) =>
          updateBlocklists(importPool, url, config.dataDir, {
            proxy: config.upstreamProxy,
            maxBytes: uploadLimitBytes,
            onDownloadProgress: report.download,
            onProgress: report.import,
          }),
        (finished) => recordOutcome(principal, finished),
      );
      return reply.code(202).header('location', `/api/blocklists/jobs/${job.id}`).send(accepted(job));
    },
  );

  app.get(
    '/api/blocklists/jobs/:id',
    { config: { access }, schema: { tags: ['blocklists'], summary: 'An import job: state, progress, and its summary or error', params: JobParams, response: { 200: Job } } },
    async (request) => {
      const job = jobs.get(request.params.id);
      if (!job) throw notFound(`no blocklist job ${request.params.id} (jobs are forgotten when the server restarts)`);
      return job;
    },
  );

  app.get(
    '/api/blocklists/status',
    { config: { access }, schema: { tags: ['blocklists'], summary: 'Categories with their entry counts, the last imports and any running job', response: { 200: Status } } },
    async () => {
      const { rows } = await pool.query<{ source: string; imported_at: Date; categories: number; domains: number; urls: number; duration_ms: number }>(
        'SELECT source, imported_at, categories, domains, urls, duration_ms FROM list_imports ORDER BY id DESC LIMIT 10',
      );
      return {
        categories: await listCategories(pool),
        lastImports: rows.map((r) => ({
          source: r.source,
          importedAt: r.imported_at.toISOString(),
          categories: r.categories,
          domains: r.domains,
          urls: r.urls,
          durationMs: r.duration_ms,
        })),
        runningJob: jobs.running ?? null,
      };
    },
  );
};
