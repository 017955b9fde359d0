// Blocklist imports run by the admin API in the background, one at a time
// per process, each with its progress and outcome kept for GET
// .../jobs/:id. Jobs live in memory: a restart forgets them (the import
// itself is one transaction, so a job cut short leaves the lists as they
// were), and list_imports keeps the record of every import that completed.
// Two admin processes importing at once queue on the importer's own lock.
import { randomUUID } from 'node:crypto';
import type { ImportProgress, ImportSummary } from '../blocklists/import.js';
import { ListFormatError } from '../blocklists/ut1-reader.js';
import { conflict } from './problem.js';

export type JobPhase = 'uploading' | 'downloading' | 'importing';

export interface BlocklistJob {
  id: string;
  kind: 'upload' | 'fetch';
  /** The uploaded file's name or the URL fetched. */
  source: string;
  startedBy: string;
  state: 'running' | 'succeeded' | 'failed';
  startedAt: string;
  finishedAt: string | null;
  progress: {
    phase: JobPhase;
    category: string | null;
    entries: number;
    bytesRead: number | null;
    bytesTotal: number | null;
  };
  summary: ImportSummary | null;
  /** For a malformed list, the file inside the archive and the line. */
  error: { message: string; file: string | null; line: number | null } | null;
}

export interface JobReporter {
  phase(phase: JobPhase): void;
  download(bytesRead: number, bytesTotal: number | undefined): void;
  import(progress: ImportProgress): void;
}

// Finished jobs kept for their status pages; older ones are forgotten.
const KEEP_FINISHED = 20;

export class BlocklistJobs {
  private readonly jobs = new Map<string, BlocklistJob>();
  private runningJob: BlocklistJob | undefined;

  get(id: string): BlocklistJob | undefined {
    return this.jobs.get(id);
  }

  get running(): BlocklistJob | undefined {
    return this.runningJob;
  }

  /** Claims the one job slot (409 when another job is running); the job is 'running' from here. */
  reserve(kind: BlocklistJob['kind'], source: string, startedBy: string, phase: JobPhase): BlocklistJob {
    if (this.runningJob) throw conflict(`blocklist job ${this.runningJob.id} is still running; try again when it has finished`);
    const job: BlocklistJob = {
      id: randomUUID(),
      kind,
      source,
      startedBy,
      state: 'running',
      startedAt: new Date().toISOString(),
      finishedAt: null,
      progress: { phase, category: null, entries: 0, bytesRead: null, bytesTotal: null },
      summary: null,
      error: null,
    };
    this.runningJob = job;
    this.jobs.set(job.id, job);
    return job;
  }

  /** Gives the slot back for a job that never started its import (its upload failed). */
  abandon(job: BlocklistJob): void {
    this.jobs.delete(job.id);
    if (this.runningJob === job) this.runningJob = undefined;
  }

  /** Runs `work` in the background; `finished` records the outcome (it must handle its own errors) before the job shows as finished. */
  start(job: BlocklistJob, work: (report: JobReporter) => Promise<ImportSummary>, finished: (job: BlocklistJob) => Promise<void>): void {
    const progress = job.progress;
    const reporter: JobReporter = {
      phase: (phase) => {
        progress.phase = phase;
      },
      download: (bytesRead, bytesTotal) => {
        progress.bytesRead = bytesRead;
        progress.bytesTotal = bytesTotal ?? null;
      },
      import: (p) => {
        progress.phase = 'importing';
        progress.category = p.category;
        progress.entries = p.entries;
        progress.bytesRead = p.bytesRead ?? progress.bytesRead;
        progress.bytesTotal = p.bytesTotal ?? progress.bytesTotal;
      },
    };
    const settle = async (outcome: Pick<BlocklistJob, 'state' | 'summary' | 'error'>): Promise<void> => {
      const settled: BlocklistJob = { ...job, ...outcome, finishedAt: new Date().toISOString() };
      // The outcome is recorded (audited) before anyone polling the job can see it finished.
      try {
        await finished(settled);
      } finally {
        Object.assign(job, settled);
        this.runningJob = undefined;
        this.forgetOldJobs();
      }
    };
    void work(reporter).then(
      (summary) => settle({ state: 'succeeded', summary, error: null }),
      (err: unknown) => {
        const message = err instanceof Error ? err.message : String(err);
        const error = err instanceof ListFormatError ? { message, file: err.file, line: err.line ?? null } : { message, file: null, line: null };
        return settle({ state: 'failed', summary: null, error });
      },
    );
  }

  private forgetOldJobs(): void {
    const finished = [...this.jobs.values()].filter((j) => j.state !== 'running');
    for (const job of finished.slice(0, Math.max(0, finished.length - KEEP_FINISHED))) this.jobs.delete(job.id);
  }
}
