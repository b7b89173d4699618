/**
 * StopHoldback, for any text, any split of it into streamed pieces and any stop strings (fast-check): a stream
 * never shows a stop string nor text past the first one, and with the miner's signed final text it ends exactly
 * on that text.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { StopHoldback } from './stop-holdback.ts';

/** A small alphabet, so that random text often holds a stop string or the start of one (and a surrogate pair). */
const char = fc.constantFrom('a', 'b', 'c', ' ', '\n', '<', '/', '>', '😀');
const stopArb = fc.string({ unit: char, minLength: 1, maxLength: 32 });
const stopsArb = fc.array(stopArb, { minLength: 0, maxLength: 4 });

/** Text made of random runs and, sometimes, whole stop strings. */
const textArb = (stops: readonly string[]) =>
  fc
    .array(
      stops.length > 0
        ? fc.oneof(fc.string({ unit: char, maxLength: 12 }), fc.constantFrom(...stops))
        : fc.string({ unit: char, maxLength: 12 }),
      { maxLength: 12 },
    )
    .map((parts) => parts.join(''));

/** `text` split into pieces at random cut points (empty pieces included). */
const splitArb = (text: string) =>
  fc.array(fc.nat({ max: text.length }), { maxLength: 16 }).map((cuts) => {
    const at = [0, ...cuts.sort((a, b) => a - b), text.length];
    return at.slice(1).map((end, k) => text.slice(at[k], end));
  });

const caseArb = stopsArb.chain((stops) =>
  textArb(stops).chain((text) => splitArb(text).map((pieces) => ({ stops, text, pieces }))),
);

/** Where `text` is cut: before the earliest occurrence of any stop string (its length when none occurs). */
const cutAt = (text: string, stops: readonly string[]) =>
  Math.min(text.length, ...stops.map((s) => text.indexOf(s)).filter((i) => i >= 0));

/**
 * What an honest miner generates and signs from these pieces (its decoded tokens): it checks for the stop
 * strings after every piece and stops after the first piece that completes one, then cuts its text before the
 * earliest stop string in it (shared/inference/generate.ts).
 */
function honestMiner(pieces: readonly string[], stops: readonly string[]) {
  let generated = '';
  for (const piece of pieces) {
    generated += piece;
    if (stops.some((s) => generated.includes(s))) break;
  }
  return { generated, final: generated.slice(0, cutAt(generated, stops)) };
}

describe('StopHoldback', () => {
  it('never shows a stop string, and shows only a prefix of the text cut before the first one', () => {
    fc.assert(
      fc.property(caseArb, ({ stops, text, pieces }) => {
        const { final } = honestMiner(pieces, stops);
        const holdback = new StopHoldback(stops);
        let shown = '';
        // Every piece, even those after the miner would have stopped: nothing past the first stop may show.
        for (const piece of pieces) {
          shown += holdback.push(piece);
          for (const s of stops) expect(shown).not.toContain(s);
          expect(final.startsWith(shown)).toBe(true);
          expect(text.startsWith(shown)).toBe(true);
        }
      }),
      { numRuns: 1000 },
    );
  });

  it('ends exactly on the signed final text', () => {
    fc.assert(
      fc.property(caseArb, ({ stops, pieces }) => {
        const { final } = honestMiner(pieces, stops);
        const holdback = new StopHoldback(stops);
        let shown = '';
        for (const piece of pieces) shown += holdback.push(piece);
        expect(shown + holdback.end(final)).toBe(final);
      }),
      { numRuns: 1000 },
    );
  });

  it('ends exactly on the final text when the stream had no stop string', () => {
    fc.assert(
      fc.property(
        stopsArb.chain((stops) =>
          fc
            .string({ unit: char, maxLength: 80 })
            .filter((text) => stops.every((s) => !text.includes(s)))
            .chain((text) => splitArb(text).map((pieces) => ({ stops, text, pieces }))),
        ),
        ({ stops, text, pieces }) => {
          const holdback = new StopHoldback(stops);
          let shown = '';
          for (const piece of pieces) shown += holdback.push(piece);
          // At most the longest stop string minus one character is held back (one more to keep an emoji whole).
          expect(text.length - shown.length).toBeLessThanOrEqual(Math.max(0, ...stops.map((s) => s.length - 1)) + 1);
          expect(shown + holdback.end(text)).toBe(text);
        },
      ),
      { numRuns: 500 },
    );
  });

  it('passes every piece on at once when there are no stop strings', () => {
    fc.assert(
      fc.property(
        fc.array(fc.string({ maxLength: 20 }), { maxLength: 20 }),
        fc.string({ maxLength: 20 }),
        (pieces, rest) => {
          const holdback = new StopHoldback([]);
          for (const piece of pieces) expect(holdback.push(piece)).toBe(piece);
          expect(holdback.end(pieces.join('') + rest)).toBe(rest);
        },
      ),
      { numRuns: 200 },
    );
  });

  it('never shows a stop string split across two pieces, nor its start', () => {
    const holdback = new StopHoldback(['<|end|>']);
    const first = holdback.push('Hello <|e');
    expect(first).toBe('Hel');
    expect(first + holdback.push('nd|> and more')).toBe('Hello ');
    expect(holdback.push(' and more')).toBe('');
    expect(holdback.end('Hello ')).toBe('');
  });

  it('holds back the last (longest stop string - 1) characters until the end', () => {
    const holdback = new StopHoldback(['STOP', 'X']);
    expect(holdback.push('abcdefST')).toBe('abcde');
    expect(holdback.push('x')).toBe('f');
    expect(holdback.end('abcdefSTxyz')).toBe('STxyz');
  });

  it('cuts before the earliest of several stop strings found in one piece', () => {
    const holdback = new StopHoldback(['\n\n', 'User:']);
    expect(holdback.push('Sure. User: hi\n\nmore')).toBe('Sure. ');
    expect(holdback.end('Sure. ')).toBe('');
  });

  it('ends on the final text when only text held back disagrees with it', () => {
    const holdback = new StopHoldback(['##']);
    expect(holdback.push('Hello wor')).toBe('Hello wo');
    expect(holdback.end('Hello wo!ld')).toBe('!ld');
  });

  it('returns nothing at the end when the final text disagrees with what was shown', () => {
    const holdback = new StopHoldback(['##']);
    expect(holdback.push('Hello world')).toBe('Hello worl');
    expect(holdback.end('Goodbye world')).toBe('');
    const shorter = new StopHoldback([]);
    expect(shorter.push('Hello world')).toBe('Hello world');
    expect(shorter.end('Hello')).toBe('');
  });

  it('never ends a piece between the two halves of an emoji', () => {
    const h = new StopHoldback(['ab']);
    expect(h.push('x😀')).toBe('x');
    expect(h.push('y')).toBe('😀');
    expect(h.end('x😀y')).toBe('y');
  });
});
