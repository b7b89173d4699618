/**
 * Stop strings in a stream. A miner streams text as it decodes it and cuts its final, signed text before the
 * first stop string; a stream must never show a stop string, nor the start of one that may complete. So the
 * stream passes on text up to the first stop string found, holding back the last (longest stop − 1)
 * characters until more text shows they do not begin one; at the end, the rest of the signed text follows.
 */
export class StopHoldback {
  private raw = '';
  private sent = 0;
  private stopped = false;
  private readonly hold: number;

  constructor(private readonly stops: readonly string[]) {
    this.hold = Math.max(0, ...stops.map((s) => s.length - 1));
  }

  /** Add streamed text; returns what may be shown now. */
  push(text: string): string {
    if (this.stopped) return '';
    this.raw += text;
    const hits = this.stops.map((s) => this.raw.indexOf(s)).filter((i) => i >= 0);
    let limit = this.raw.length - this.hold;
    if (hits.length > 0) {
      limit = Math.min(...hits);
      this.stopped = true;
    }
    return this.take(limit);
  }

  /** The final signed text: returns what is left to show (nothing when it disagrees with what was shown). */
  end(final: string): string {
    if (!final.startsWith(this.raw.slice(0, this.sent))) return '';
    return final.slice(this.sent);
  }

  private take(limit: number): string {
    // Never end a piece between the two halves of a surrogate pair (an emoji): clients may decode each piece alone.
    const code = this.raw.charCodeAt(limit - 1);
    if (limit < this.raw.length && code >= 0xd800 && code <= 0xdbff) limit--;
    if (limit <= this.sent) return '';
    const out = this.raw.slice(this.sent, limit);
    this.sent = limit;
    return out;
  }
}
