// Progress of a long command on stderr, kept off stdout so reports (and --json) stay clean. On a terminal: one
// line redrawn in place, at most ten times a second. Elsewhere (CI logs, pipes): a plain line now and then, so a
// log shows the run is alive without filling up. Commands create none under --json.
export interface ProgressOptions {
  /** What is being done, e.g. 'calibrating'. */
  label: string;
  /** Units of work in all; 0 or less when unknown. */
  total: number;
  /** Name of a unit, e.g. 'samples'. */
  unit: string;
  stream?: NodeJS.WriteStream;
  /** Least time between plain lines when the stream is not a terminal; default 10 s. */
  plainIntervalMs?: number;
}

const REDRAW_MS = 100;
const BAR_WIDTH = 24;

export class Progress {
  private readonly stream: NodeJS.WriteStream;
  private readonly tty: boolean;
  private readonly started = Date.now();
  private lastWrite = 0;
  private done = 0;
  private note = '';
  private drawn = { done: -1, note: '' };

  constructor(private readonly options: ProgressOptions) {
    this.stream = options.stream ?? process.stderr;
    this.tty = this.stream.isTTY === true;
    this.lastWrite = this.tty ? 0 : this.started; // a plain line only once there is progress to report
  }

  /** Records progress; draws only when the last drawing is old enough. `note` is shown after the count. */
  update(done: number, note = ''): void {
    this.done = done;
    this.note = note;
    const now = Date.now();
    if (now - this.lastWrite < (this.tty ? REDRAW_MS : this.options.plainIntervalMs ?? 10_000)) return;
    this.lastWrite = now;
    this.draw();
  }

  /** Draws the final state (unless a plain line already shows it) and ends the line. */
  finish(note = this.note): void {
    if (this.tty || this.done !== this.drawn.done || note !== this.drawn.note) {
      this.note = note;
      this.draw();
    }
    if (this.tty) this.stream.write('\n');
  }

  /** The run failed: clear a terminal's progress line and print nothing more, so the error stays one line. */
  abandon(): void {
    if (this.tty && this.drawn.done >= 0) this.stream.write('\r\x1b[K');
  }

  private draw(): void {
    this.drawn = { done: this.done, note: this.note };
    const { label, total, unit } = this.options;
    const known = total > 0;
    const fraction = known ? Math.min(1, this.done / total) : 0;
    const count = known ? `${this.done}/${total} ${unit}` : `${this.done} ${unit}`;
    const parts = [count, ...(this.note ? [this.note] : []), ...(known && this.done > 0 && fraction < 1 ? [`ETA ${this.eta(fraction)}`] : [])];
    if (this.tty) {
      const bar = known ? `[${'#'.repeat(Math.round(fraction * BAR_WIDTH)).padEnd(BAR_WIDTH, '.')}] ` : '';
      const line = `${label} ${bar}${parts.join(', ')}`;
      const width = this.stream.columns ?? 80;
      this.stream.write(`\r\x1b[K${line.slice(0, Math.max(0, width - 1))}`);
    } else {
      this.stream.write(`${label}: ${parts.join(', ')}${known ? ` (${Math.floor(fraction * 100)}%)` : ''}\n`);
    }
  }

  private eta(fraction: number): string {
    const seconds = Math.round(((Date.now() - this.started) / 1000) * (1 / fraction - 1));
    const m = Math.floor(seconds / 60);
    return m > 0 ? `${m}m${String(seconds % 60).padStart(2, '0')}s` : `${seconds}s`;
  }
}
