/** Public surface of the Yuma consensus engine. */
export * from './types.ts';
export { runEpoch, normalizedStake } from './epoch.ts';
export {
  parseCase,
  parseJsonExact,
  runCase,
  toJson,
  toParams,
  toInputs,
  toEpochOutput,
  CaseFormatError,
  U64_MAX,
} from './cases.ts';
export type { YumaCase, CaseOutput, EpochOutput } from './cases.ts';
