/**
 * Progress bars on a terminal for what takes a while in a headless node: loading (checking) a model and the
 * registration proof of work. Drawn on stderr only when it is a terminal, so the JSON log lines on stdout stay
 * machine-readable and a supervisor's log sees no control characters.
 */
import { MultiBar, Presets, type SingleBar } from 'cli-progress';
import type { MinerState } from '../services/miner.ts';
import type { RegistrationState } from '../services/registration.ts';
import type { ReadableStore } from '../store.ts';

export interface ProgressSources {
  miner?: ReadableStore<MinerState> | null;
  registration?: ReadableStore<RegistrationState | null> | null;
}

/** Draw bars for `sources` on `stream` if it is a terminal; returns a function that removes them. */
export function showProgress(sources: ProgressSources, stream: NodeJS.WriteStream = process.stderr): () => void {
  if (!stream.isTTY) return () => {};
  const bars = new MultiBar(
    { stream, clearOnComplete: true, hideCursor: true, format: ' {label} [{bar}] {percentage}% {detail}' },
    Presets.shades_classic,
  );
  const stops: (() => void)[] = [];
  let model: SingleBar | null = null;
  if (sources.miner)
    stops.push(
      sources.miner.subscribe((s) => {
        const busy = s.phase === 'downloading' || s.phase === 'verifying' || s.phase === 'loading';
        if (busy) {
          const total = Math.max(1, s.progress.total);
          const detail = `${s.phase} ${s.model ?? ''} (${(s.progress.loaded / 2 ** 20).toFixed(1)} of ${(total / 2 ** 20).toFixed(1)} MiB)`;
          model ??= bars.create(total, 0, { label: 'model', detail });
          model.setTotal(total);
          model.update(Math.min(s.progress.loaded, total), { label: 'model', detail });
        } else if (model) {
          model.stop();
          bars.remove(model);
          model = null;
        }
      }),
    );
  let work: SingleBar | null = null;
  if (sources.registration)
    stops.push(
      sources.registration.subscribe((s) => {
        if (s?.phase === 'hashing') {
          // `expected` is the mean number of hashes: the bar can reach its end before a nonce is found.
          const detail = `proof of work, subnet ${s.netuid}: ${s.hashes.toLocaleString()} of ~${s.expected.toLocaleString()} hashes`;
          work ??= bars.create(s.expected, 0, { label: 'register', detail });
          work.update(Math.min(s.hashes, s.expected), { label: 'register', detail });
        } else if (work) {
          work.stop();
          bars.remove(work);
          work = null;
        }
      }),
    );
  return () => {
    for (const stop of stops) stop();
    bars.stop();
  };
}
