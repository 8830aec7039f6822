// Turns tokens arriving one at a time into text that is safe to print as it comes. A token can end in the middle
// of a UTF-8 character (byte-level models) or change how the previous ones decode (subword merges, leading-space
// rules), so the whole continuation is decoded each time and only the settled new part is handed out.
import type { TextCodec } from './text-codec.js';

export class TextStream {
  private readonly tokens: number[] = [];
  private emitted = 0;

  constructor(private readonly codec: Pick<TextCodec, 'decode'>) {}

  /** Adds a token; returns the text that became final (often '', never a partial character). */
  push(token: number): string {
    this.tokens.push(token);
    const text = this.codec.decode(this.tokens);
    // A trailing replacement character may be a character still arriving: hold it back until the next token.
    const settled = text.endsWith('\uFFFD') ? text.slice(0, text.length - 1) : text;
    return this.take(settled);
  }

  /** Whatever is left once no more tokens will come (a truly broken sequence prints as U+FFFD). */
  flush(): string {
    return this.take(this.codec.decode(this.tokens));
  }

  private take(text: string): string {
    if (text.length <= this.emitted) return '';
    const out = text.slice(this.emitted);
    this.emitted = text.length;
    return out;
  }
}

/**
 * A generator's per-token hook that hands `onText` the text as it settles, and `end` for what is left once the
 * generator returns; no hook (and nothing to end) without `onText`.
 */
export function textHooks(codec: Pick<TextCodec, 'decode'>, onText: ((text: string) => void) | undefined): { hooks: { onToken?: (token: number) => void }; end: () => void } {
  if (!onText) return { hooks: {}, end: () => {} };
  const stream = new TextStream(codec);
  return { hooks: { onToken: (token) => onText(stream.push(token)) }, end: () => onText(stream.flush()) };
}
