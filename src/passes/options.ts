// Reading a recipe step's options (JSON) into typed values, each mistake one line naming the step and key.
import { OptionError } from '../errors.js';

export class StepOptions {
  private readonly seen = new Set<string>();

  constructor(
    private readonly raw: Record<string, unknown>,
    readonly where: string,
  ) {}

  fail(why: string): never {
    throw new OptionError(`${this.where}: ${why}`);
  }

  has(key: string): boolean {
    this.seen.add(key);
    return this.raw[key] !== undefined;
  }

  string(key: string): string | undefined {
    this.seen.add(key);
    const v = this.raw[key];
    if (v === undefined) return undefined;
    if (typeof v !== 'string' || v === '') this.fail(`"${key}" must be a non-empty string, got ${JSON.stringify(v)}`);
    return v;
  }

  strings(key: string): string[] | undefined {
    this.seen.add(key);
    const v = this.raw[key];
    if (v === undefined) return undefined;
    const list = typeof v === 'string' ? [v] : v;
    if (!Array.isArray(list) || list.length === 0 || list.some((s) => typeof s !== 'string' || s === '')) {
      this.fail(`"${key}" must be a string or a non-empty list of strings, got ${JSON.stringify(v)}`);
    }
    return list as string[];
  }

  number(key: string, { integer = false, min = -Infinity, max = Infinity } = {}): number | undefined {
    this.seen.add(key);
    const v = this.raw[key];
    if (v === undefined) return undefined;
    if (typeof v !== 'number' || !Number.isFinite(v) || (integer && !Number.isInteger(v)) || v < min || v > max) {
      const range = `${min === -Infinity ? '' : `>= ${min}`}${min !== -Infinity && max !== Infinity ? ' and ' : ''}${max === Infinity ? '' : `<= ${max}`}`;
      this.fail(`"${key}" must be ${integer ? 'a whole number' : 'a number'}${range ? ` ${range}` : ''}, got ${JSON.stringify(v)}`);
    }
    return v;
  }

  boolean(key: string): boolean | undefined {
    this.seen.add(key);
    const v = this.raw[key];
    if (v === undefined) return undefined;
    if (typeof v !== 'boolean') this.fail(`"${key}" must be true or false, got ${JSON.stringify(v)}`);
    return v;
  }

  oneOf<T extends string>(key: string, values: readonly T[]): T | undefined {
    const v = this.string(key);
    if (v === undefined) return undefined;
    if (!values.includes(v as T)) this.fail(`"${key}" must be one of ${values.join(', ')}, got '${v}'`);
    return v as T;
  }

  /** A regular expression given as a string. */
  pattern(key: string): RegExp | undefined {
    const v = this.string(key);
    if (v === undefined) return undefined;
    try {
      return new RegExp(v);
    } catch (e) {
      this.fail(`"${key}" is not a regular expression (${(e as Error).message})`);
    }
  }

  patterns(key: string): RegExp[] | undefined {
    return this.strings(key)?.map((source) => {
      try {
        return new RegExp(source);
      } catch (e) {
        this.fail(`"${key}" '${source}' is not a regular expression (${(e as Error).message})`);
      }
    });
  }

  /** Call last: any key no reader asked for is a mistake (a typo would otherwise be ignored). */
  done(): void {
    const unknown = Object.keys(this.raw).filter((k) => k !== 'pass' && !this.seen.has(k));
    if (unknown.length) this.fail(`unknown option${unknown.length > 1 ? 's' : ''} ${unknown.map((k) => `"${k}"`).join(', ')} (it takes ${[...this.seen].map((k) => `"${k}"`).join(', ')})`);
  }
}
