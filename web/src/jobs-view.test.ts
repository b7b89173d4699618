import { describe, expect, it } from 'vitest';
import type { JobClient, JobClientState, JobStatus } from '../../core/services/job-client.ts';
import { Store } from '../../core/store.ts';
import { checkRequests, jobHistory, jobRequests, jobView } from './jobs-view.ts';

const MODEL = 'webtensor/tiny-llama';
const line = (id: string, extra: object = {}) =>
  JSON.stringify({ custom_id: id, params: { model: MODEL, prompt: 'Once', maxNewTokens: 4, ...extra } });
const openai = (id: string, body: object, url = '/v1/completions') =>
  JSON.stringify({ custom_id: id, method: 'POST', url, body });

describe('request files on the Jobs page', () => {
  it('passes a job file through as text, so the job client names the line', () => {
    const text = `${line('a')}\n${line('b')}\n`;
    expect(jobRequests(text, MODEL)).toBe(text);
    expect(checkRequests(text, MODEL).map((l) => l.custom_id)).toEqual(['a', 'b']);
    expect(() => checkRequests(`${line('a')}\n\n${line('b')}`, MODEL)).toThrow('line 2: the line is empty');
    expect(() => checkRequests(`${line('a')}\n${line('b', { max_tokens: 3 })}`, MODEL)).toThrow(/^line 2: /);
    expect(() => checkRequests(`${line('a')}\n${line('a')}`, MODEL)).toThrow('line 2: custom_id "a" repeats line 1');
  });

  it('compiles OpenAI /v1/completions batch lines: greedy at temperature 0, seeded otherwise', () => {
    const text = [
      openai('x', { model: MODEL, prompt: 'Hello', max_tokens: 5 }),
      openai('y', { prompt: 'Hi', temperature: 0.7, seed: 9, stop: '.' }),
      openai('z', { prompt: 'Hey', temperature: 0 }),
      line('w'),
    ].join('\n');
    expect(checkRequests(text, MODEL)).toEqual([
      { custom_id: 'x', params: { model: MODEL, prompt: 'Hello', maxNewTokens: 5 } },
      {
        custom_id: 'y',
        params: { model: MODEL, prompt: 'Hi', maxNewTokens: 16, sampling: { seed: 9, temperature: 0.7 }, stop: ['.'] },
      },
      { custom_id: 'z', params: { model: MODEL, prompt: 'Hey', maxNewTokens: 16 } },
      { custom_id: 'w', params: { model: MODEL, prompt: 'Once', maxNewTokens: 4 } },
    ]);
  });

  it('refuses batch lines it cannot compile, naming the line', () => {
    const first = openai('x', { prompt: 'Hello' });
    expect(() => checkRequests(`${first}\n${openai('y', { messages: [] }, '/v1/chat/completions')}`, MODEL)).toThrow(
      'line 2: only /v1/completions batch lines',
    );
    expect(() => checkRequests(`${first}\n${openai('y', { prompt: 'a', n: 2 })}`, MODEL)).toThrow(
      'line 2: body.n is not supported',
    );
    expect(() => checkRequests(openai('y', { model: 'gpt-4', prompt: 'a' }), MODEL)).toThrow(
      "line 1: asks for model gpt-4; the job's model is webtensor/tiny-llama",
    );
  });
});

describe("a job's shards as this tab saw them", () => {
  const job = (statuses: JobStatus['shards'][number]['status'][], forfeited = 0n): JobStatus =>
    ({
      id: 'job1',
      price: 10n,
      deposit: 40n,
      paid: 0n,
      refunded: 0n,
      forfeited,
      shards: statuses.map((status, shard) => ({
        shard,
        first: shard * 2,
        end: shard * 2 + 2,
        status,
        miner: null,
        resultsHash: null,
        until: null,
      })),
    }) as unknown as JobStatus;

  it('counts a failed audit (results, then open) and a lapsed claim (claimed, then open)', () => {
    const state = new Store<JobClientState>({ jobs: [job(['open', 'open'])] });
    const history = jobHistory({ state } as unknown as JobClient);
    state.set({ jobs: [job(['claimed', 'claimed'])] });
    state.set({ jobs: [job(['result', 'claimed'])] });
    state.set({ jobs: [job(['open', 'open'], 40n)] });
    state.set({ jobs: [job(['result', 'claimed'], 40n)] });
    state.set({ jobs: [job(['paid', 'result'], 40n)] });
    const view = jobView(state.get().jobs[0]!, history.get());
    expect(view.forfeited).toBe('40');
    expect(view.shards.map((s) => [s.status, s.failedAudits, s.lapsedClaims])).toEqual([
      ['paid', 1, 0],
      ['result', 0, 1],
    ]);
    expect(JSON.parse(JSON.stringify(view))).toEqual(view); // no bigints left
  });
});
