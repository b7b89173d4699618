/**
 * Typed errors. Every error webtensor raises on purpose carries a stable `code` (a string union defined in
 * `names.ts` or beside the records) and a sentence that says what was wrong and where. Callers branch on the
 * code, people read the message.
 */
import type { InferenceErrorCode, NodeErrorCode } from './names.ts';

export class WebtensorError<Code extends string = string> extends Error {
  constructor(
    readonly code: Code,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

/** A node could not do what was asked: bad configuration, no relay, no network, a role already taken... */
export class NodeError extends WebtensorError<NodeErrorCode> {
  override name = 'NodeError';
}

/**
 * A model could not be loaded or run. Thrown inside the inference worker; across Comlink only `name` and
 * `message` survive, so the message alone must say what went wrong and what to do.
 */
export class InferenceError extends WebtensorError<InferenceErrorCode> {
  override name = 'InferenceError';
}
