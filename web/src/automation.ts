/**
 * `window.webtensor`: the documented automation API for tests and tooling (docs/automation.md).
 * It only exposes what the node really does; nothing here is a test double.
 */
import type { CaseOutput } from '../../shared/yuma/index.ts';
import type { SyntheticSpec } from '../../shared/yuma/synthetic.ts';
import { yumaWorker } from './yuma-client.ts';

export interface WebtensorAutomation {
  version: string;
  yuma: {
    /** Run one Yuma case (vectors.json format) in the consensus Web Worker. */
    runCase(data: unknown, opts?: { replay?: boolean }): Promise<CaseOutput>;
    timeCase(data: unknown, repeat: number): Promise<{ meanMs: number; output: CaseOutput }>;
    /** Benchmark: exact engine vs float64 port on a seeded synthetic epoch built inside the worker. */
    benchEpoch(spec: SyntheticSpec, repeats: number): Promise<{ exactMs: number; floatMs: number }>;
  };
}

declare global {
  interface Window {
    webtensor: WebtensorAutomation;
  }
}

export function installAutomation(): void {
  window.webtensor = {
    version: '0.1.0',
    yuma: {
      runCase: (data, opts) => yumaWorker().runCase(data, opts),
      timeCase: (data, repeat) => yumaWorker().timeCase(data, repeat),
      benchEpoch: (spec, repeats) => yumaWorker().benchEpoch(spec, repeats),
    },
  };
}
