// The order of the logging bench's phases (bench/proxy-logging.ts), and what
// its on/off pairs come to.
//
// A pair is two phases back to back, one with logging on and one off; its
// cost is 1 − on/off of their requests per second. Pairs alternate which
// half runs first (on then off, then off then on: an ABBA order), so that
// the machine getting faster or slower across a pair falls on logging on as
// often as on logging off. The figure reported is the median of the pairs'
// costs: on this machine the speed moves from one spell of seconds to the
// next by more than logging costs, and two phases of one pair are closer in
// time than the medians of all on and all off phases are.
import { median } from './common.js';

export interface PlannedPhase {
  label: string;
  logging: boolean;
  /** The pair it belongs to, from 1. */
  pair: number;
}

export function phasePlan(pairs: number): PlannedPhase[] {
  const plan: PlannedPhase[] = [];
  for (let pair = 1; pair <= pairs; pair++) {
    const on = { label: `on ${pair}`, logging: true, pair };
    const off = { label: `off ${pair}`, logging: false, pair };
    plan.push(...(pair % 2 === 1 ? [on, off] : [off, on]));
  }
  return plan;
}

export interface MeasuredPhase {
  logging: boolean;
  pair: number;
  requestsPerSecond: number;
}

/** Each pair's cost of logging, in pair order: 1 − on/off of its requests/s, as a percentage. */
export function pairCostsPercent(phases: readonly MeasuredPhase[]): number[] {
  const pairs = [...new Set(phases.map((p) => p.pair))].sort((a, b) => a - b);
  return pairs.map((pair) => {
    const on = phases.filter((p) => p.pair === pair && p.logging);
    const off = phases.filter((p) => p.pair === pair && !p.logging);
    if (on.length !== 1 || off.length !== 1) throw new Error(`pair ${pair} has ${on.length} phases with logging on and ${off.length} off, not one of each`);
    return (1 - on[0].requestsPerSecond / off[0].requestsPerSecond) * 100;
  });
}

/** The figure the bench reports: the median of the pairs' costs. */
export function loggingCostPercent(phases: readonly MeasuredPhase[]): number {
  return median(pairCostsPercent(phases));
}
