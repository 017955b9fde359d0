// Prometheus text exposition format (version 0.0.4), for the admin API's /metrics.
export interface MetricSample {
  /** e.g. portcullis_access_events_written_total */
  name: string;
  help: string;
  type: 'counter' | 'gauge';
  value: number;
  labels?: Readonly<Record<string, string>>;
}

const METRIC_NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/;
const LABEL_NAME = /^[a-zA-Z_][a-zA-Z0-9_]*$/;

function escapeHelp(text: string): string {
  return text.replace(/\\/g, '\\\\').replace(/\n/g, '\\n');
}

function escapeLabelValue(text: string): string {
  return text.replace(/\\/g, '\\\\').replace(/\n/g, '\\n').replace(/"/g, '\\"');
}

function formatValue(value: number): string {
  if (Number.isNaN(value)) return 'NaN';
  if (value === Infinity) return '+Inf';
  if (value === -Infinity) return '-Inf';
  return String(value);
}

/** Renders samples; samples sharing a name (different labels) share one HELP/TYPE header. Throws on an invalid name. */
export function renderPrometheus(samples: readonly MetricSample[]): string {
  const byName = new Map<string, MetricSample[]>();
  for (const sample of samples) {
    if (!METRIC_NAME.test(sample.name)) throw new Error(`"${sample.name}" is not a valid Prometheus metric name`);
    const group = byName.get(sample.name);
    if (group) group.push(sample);
    else byName.set(sample.name, [sample]);
  }
  let out = '';
  for (const [name, group] of byName) {
    out += `# HELP ${name} ${escapeHelp(group[0].help)}\n# TYPE ${name} ${group[0].type}\n`;
    for (const sample of group) {
      const labels = Object.entries(sample.labels ?? {});
      for (const [label] of labels) {
        if (!LABEL_NAME.test(label)) throw new Error(`"${label}" is not a valid Prometheus label name`);
      }
      const labelText = labels.length ? `{${labels.map(([k, v]) => `${k}="${escapeLabelValue(v)}"`).join(',')}}` : '';
      out += `${name}${labelText} ${formatValue(sample.value)}\n`;
    }
  }
  return out;
}
