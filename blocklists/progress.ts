// Progress of a long CLI task on stderr: a bar redrawn in place on a
// terminal; on a pipe or log file, a plain line now and then (a redrawn
// bar would fill a log with carriage returns).

export interface ProgressState {
  /** Work done and its total in the same unit (bytes, say); without a total no bar is drawn. */
  done?: number;
  total?: number;
  /** What is happening, e.g. "123,456 entries, gambling". */
  detail: string;
}

export interface ProgressReporter {
  update(state: ProgressState): void;
  /** Draws the final state and ends the line; later calls do nothing. */
  finish(): void;
}

export interface ProgressOptions {
  /** Prefix of every line, e.g. "importing". */
  label: string;
  /** Plain-line mode: at most one line per interval. Default 5 s. */
  plainIntervalMs?: number;
  now?: () => number;
}

const BAR_WIDTH = 30;
const REDRAW_MS = 100;

export function createProgressReporter(stream: NodeJS.WritableStream, options: ProgressOptions): ProgressReporter {
  const isTty = (stream as { isTTY?: boolean }).isTTY === true;
  const now = options.now ?? Date.now;
  const interval = isTty ? REDRAW_MS : (options.plainIntervalMs ?? 5_000);
  let last: ProgressState | undefined;
  let lastDrawn = -Infinity;
  let drawnSinceUpdate = false;
  let finished = false;

  const draw = (state: ProgressState): void => {
    if (isTty) stream.write(`\r\x1b[K${renderBar(options.label, state)}`);
    else stream.write(`${renderPlain(options.label, state)}\n`);
    lastDrawn = now();
    drawnSinceUpdate = true;
  };

  return {
    update(state) {
      last = state;
      drawnSinceUpdate = false;
      if (now() - lastDrawn >= interval) draw(state);
    },
    finish() {
      if (finished) return;
      finished = true;
      if (last && !drawnSinceUpdate) draw(last);
      if (isTty && last) stream.write('\n');
    },
  };
}

function fractionOf(state: ProgressState): number | undefined {
  if (state.done === undefined || !state.total) return undefined;
  return Math.min(1, Math.max(0, state.done / state.total));
}

export function renderBar(label: string, state: ProgressState): string {
  const fraction = fractionOf(state);
  if (fraction === undefined) return `${label} ${state.detail}`;
  const filled = Math.round(fraction * BAR_WIDTH);
  const bar = '#'.repeat(filled) + '-'.repeat(BAR_WIDTH - filled);
  return `${label} [${bar}] ${percent(fraction)} ${state.detail}`;
}

export function renderPlain(label: string, state: ProgressState): string {
  const fraction = fractionOf(state);
  return fraction === undefined ? `${label}: ${state.detail}` : `${label}: ${percent(fraction)}, ${state.detail}`;
}

function percent(fraction: number): string {
  return `${Math.floor(fraction * 100)
    .toString()
    .padStart(3)}%`;
}
