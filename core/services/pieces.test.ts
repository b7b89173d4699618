/** Streamed text to frames: the first piece at once, then at most one frame per interval, nothing lost or reordered. */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { Pieces } from './miner.ts';

describe('Pieces', () => {
  it('sends the first piece at once and coalesces the ones that follow within the interval', async () => {
    const frames: string[] = [];
    const pieces = new Pieces(async (t) => void frames.push(t), 50);
    pieces.push('Once');
    await Promise.resolve();
    expect(frames).toEqual(['Once']);
    pieces.push(' upon');
    pieces.push(' a');
    expect(frames).toEqual(['Once']);
    await new Promise((r) => setTimeout(r, 80));
    expect(frames).toEqual(['Once', ' upon a']);
    pieces.push(' time');
    await pieces.end();
    expect(frames.join('')).toBe('Once upon a time');
  });

  it('never loses or reorders text, whatever the timing', async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(fc.tuple(fc.string({ maxLength: 5 }), fc.nat(3)), { maxLength: 12 }), async (steps) => {
        const frames: string[] = [];
        const pieces = new Pieces(async (t) => {
          await new Promise((r) => setTimeout(r, 1));
          frames.push(t);
        }, 2);
        for (const [text, pause] of steps) {
          pieces.push(text);
          if (pause) await new Promise((r) => setTimeout(r, pause));
        }
        await pieces.end();
        expect(frames.join('')).toBe(steps.map(([t]) => t).join(''));
        expect(frames.every((f) => f.length > 0)).toBe(true);
      }),
      { numRuns: 30 },
    );
  });
});
