/**
 * A batch's output and error files, in OpenAI's batch output format, from a closed job's lines (JobClient.results):
 *
 *   {"id": "batch_req_…", "custom_id": "…", "response": {"status_code": 200, "request_id": "<job>:<line>",
 *    "body": <the chat.completion or text_completion object the live endpoint would answer>}, "error": null}
 *   {"id": "batch_req_…", "custom_id": "…", "response": null, "error": {"code": "batch_expired", "message": "…"}}
 *
 * A body is made from the miner's signed result exactly as the live endpoints make theirs (openai.ts); its
 * `webtensor` member names the miner, the request id it signed and the job, whose shard's results hash the
 * ledger holds (docs/jobs.md), instead of a path under /v1/webtensor/results.
 */
import { randomBytes, randomUUID } from 'node:crypto';
import type { JobOutputLine } from '../core/services/job-client.ts';
import { chatCompletion, textCompletion } from './openai.ts';

export interface BatchFiles {
  /** JSONL, one line per answered request, in request order; null when none was answered. */
  output: string | null;
  /** JSONL, one line per request without an answer; null when every request was answered. */
  errors: string | null;
  completed: number;
  failed: number;
}

const requestId = () => `batch_req_${randomBytes(12).toString('hex')}`;

/**
 * The output and error files of a closed job. `kinds[i]` is line i's endpoint ('c' chat, 't' text completion);
 * `cancelled`: the job was cancelled (its refunded lines say so rather than that the window expired).
 */
export function batchFiles(
  jobId: string,
  model: string,
  kinds: string,
  lines: readonly JobOutputLine[],
  cancelled: boolean,
): BatchFiles {
  const output: string[] = [];
  const errors: string[] = [];
  const created = Math.floor(Date.now() / 1000);
  lines.forEach((line, index) => {
    if ('result' in line) {
      const chat = kinds[index] === 'c';
      const meta = { id: `${chat ? 'chatcmpl' : 'cmpl'}-${randomUUID().replaceAll('-', '')}`, created, model };
      const body = {
        ...(chat ? chatCompletion(meta, line.result) : textCompletion(meta, line.result)),
        webtensor: { miner: line.result.miner, request_id: line.result.requestId, job: jobId },
      };
      output.push(
        JSON.stringify({
          id: requestId(),
          custom_id: line.custom_id,
          response: { status_code: 200, request_id: line.result.requestId, body },
          error: null,
        }),
      );
      return;
    }
    const error =
      line.error.code === 'refunded'
        ? cancelled
          ? { code: 'batch_cancelled', message: 'This request was not run: the batch was cancelled (refunded).' }
          : {
              code: 'batch_expired',
              message: 'This request could not be run before the completion window expired (refunded).',
            }
        : { code: 'result_unavailable', message: `The paid answer could not be fetched: ${line.error.message}.` };
    errors.push(JSON.stringify({ id: requestId(), custom_id: line.custom_id, response: null, error }));
  });
  const jsonl = (l: string[]) => (l.length > 0 ? `${l.join('\n')}\n` : null);
  return { output: jsonl(output), errors: jsonl(errors), completed: output.length, failed: errors.length };
}
