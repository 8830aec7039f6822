// A JSON Lines calibration set for a decoder language model: documents -> token ids -> one token stream ->
// fixed-length windows -> a seeded selection of windows -> batches of decoder feeds.
//
// Opening reads the file once to check every record and count the stream's tokens (so bad data fails before
// a long run, and the number of windows is known for the draw); each pass of batches() reads it again,
// holding one document and one window at a time.
import type { OnnxModel } from '../../onnx/model.js';
import { modelFolder } from '../../onnx/model-folder.js';
import type { Feeds } from '../../runtime/session.js';
import type { CalibrationOptions, CalibrationSet } from './calibration-set.js';
import { decoderFeeder, IDS_INPUT, type DecoderFeeder } from './decoder-feeds.js';
import { CalibrationDataError } from './errors.js';
import { readJsonlDocuments } from './jsonl.js';
import { selectIndices } from './selection.js';
import { chooseTokenizer, type TextTokenizer } from './tokenizers.js';
import { selectedWindows, windowCount, withBoundaries, type WindowPlan } from './windowing.js';

/** Sequence length when neither the caller nor the model fixes one (AWQ's choice), capped by max positions. */
export const DEFAULT_SEQUENCE_LENGTH = 512;

interface Vocabulary {
  /** Number of ids the model embeds, when known. */
  size: number | null;
  /** The model, for messages. */
  model: string;
}

interface DocumentCounts {
  records: number;
  textRecords: number;
}

export async function openTokenSet(file: string, model: OnnxModel, options: CalibrationOptions): Promise<CalibrationSet> {
  // Described once per model by its folder (config.json over the graph), shared with every other caller.
  const summary = modelFolder(model).decoder;
  const feeder = decoderFeeder(model, summary);
  const vocabulary: Vocabulary = { size: summary?.vocab ?? null, model: model.source };
  const plan = windowPlan(model, feeder, summary?.maxPositions ?? null, options);
  const batchSize = options.batchSize ?? 1;
  if (feeder.fixedBatch !== undefined && feeder.fixedBatch !== batchSize) {
    throw new CalibrationDataError(
      `${model.source}: input '${IDS_INPUT}' has a fixed batch of ${feeder.fixedBatch}; set batchSize to ${feeder.fixedBatch}, not ${batchSize}`,
    );
  }
  const { tokenizer, eosId } = chooseTokenizer(model, vocabulary.size);
  if (eosId !== undefined) checkId(eosId, vocabulary, `${model.source}: the end-of-sequence id`);
  const stream = (counts?: DocumentCounts) => withBoundaries(tokenisedDocuments(file, tokenizer, vocabulary, counts), eosId);

  const counts: DocumentCounts = { records: 0, textRecords: 0 };
  let totalTokens = 0;
  for await (const ids of stream(counts)) totalTokens += ids.length;
  if (counts.records === 0) throw new CalibrationDataError(`${file}: empty set (no records)`);
  const windows = windowCount(totalTokens, plan);
  if (windows === 0) {
    throw new CalibrationDataError(`${file}: the set has ${totalTokens} tokens, fewer than one window of ${plan.length}; lower sequenceLength`);
  }
  const selected = selectIndices(windows, options.samples, options.seed ?? 0);

  return {
    source: file,
    kind: counts.textRecords > 0 ? 'text' : 'tokens',
    sampleCount: selected.length,
    tokenCount: selected.length * plan.length,
    async *batches(): AsyncGenerator<Feeds> {
      let group: number[][] = [];
      let produced = 0;
      for await (const window of selectedWindows(stream(), plan, selected)) {
        group.push(window.tokens);
        produced++;
        if (group.length === batchSize) {
          yield feeder.feeds(group);
          group = [];
        }
      }
      if (group.length > 0) yield feeder.feeds(group);
      if (produced !== selected.length) throw new CalibrationDataError(`${file}: the file changed since the set was opened`);
    },
  };
}

/** Window length and step from the options, checked against what the model allows. */
function windowPlan(model: OnnxModel, feeder: DecoderFeeder, maxPositions: number | null, options: CalibrationOptions): WindowPlan {
  const length = options.sequenceLength ?? feeder.fixedSequence ?? Math.min(DEFAULT_SEQUENCE_LENGTH, maxPositions ?? Infinity);
  if (feeder.fixedSequence !== undefined && length !== feeder.fixedSequence) {
    throw new CalibrationDataError(
      `${model.source}: input '${IDS_INPUT}' has a fixed sequence length of ${feeder.fixedSequence}; sequenceLength ${length} does not fit it`,
    );
  }
  if (maxPositions !== null && length > maxPositions) {
    throw new CalibrationDataError(`${model.source}: sequences of ${length} tokens are longer than the model allows (${maxPositions} positions)`);
  }
  const windowing = options.windowing ?? (options.stride !== undefined ? 'sliding' : 'chunk');
  if (windowing === 'chunk') {
    if (options.stride !== undefined && options.stride !== length) {
      throw new CalibrationDataError(`calibration option stride applies to sliding windows; set windowing to 'sliding' to use stride ${options.stride}`);
    }
    return { length, step: length };
  }
  return { length, step: options.stride ?? Math.max(1, Math.floor(length / 2)) };
}

/** Each record's ids: input_ids as they are, text through the model's tokenizer; every id checked. */
async function* tokenisedDocuments(
  file: string,
  tokenizer: TextTokenizer | undefined,
  vocabulary: Vocabulary,
  counts?: DocumentCounts,
): AsyncGenerator<number[]> {
  for await (const doc of readJsonlDocuments(file)) {
    const where = `${file}:${doc.line}`;
    let ids: number[];
    if (doc.ids !== undefined) {
      ids = checkIds(doc.ids, vocabulary, (i) => `${where}: input_ids[${i}]`);
    } else {
      if (!tokenizer) {
        throw new CalibrationDataError(
          `${where}: a "text" record, but ${vocabulary.model} has no tokenizer (no tokenizer.json beside it or one folder up, and no byte-level vocabulary); give "input_ids" instead`,
        );
      }
      ids = checkIds(tokenizer.encode(doc.text), vocabulary, (i) => `${where}: token ${i} of the text (tokenizer: ${tokenizer.description})`);
      if (counts) counts.textRecords++;
    }
    if (counts) counts.records++;
    yield ids;
  }
}

/** The ids, checked to be integers inside the model's vocabulary; `where(i)` names id i in the message. */
function checkIds(ids: readonly unknown[], vocabulary: Vocabulary, where: (i: number) => string): number[] {
  const limit = vocabulary.size ?? Number.MAX_SAFE_INTEGER;
  for (let i = 0; i < ids.length; i++) {
    const id = ids[i];
    // The common case is one comparison per id; messages are only built for a bad one.
    if (typeof id === 'number' && Number.isInteger(id) && id >= 0 && id < limit) continue;
    checkId(id, vocabulary, where(i));
  }
  return ids as number[];
}

function checkId(id: unknown, vocabulary: Vocabulary, what: string): number {
  if (typeof id !== 'number' || !Number.isSafeInteger(id)) {
    throw new CalibrationDataError(`${what} is not a token id (${JSON.stringify(id) ?? String(id)})`);
  }
  if (id < 0 || (vocabulary.size !== null && id >= vocabulary.size)) {
    const range = vocabulary.size !== null ? ` (0..${vocabulary.size - 1})` : '';
    throw new CalibrationDataError(`${what}: token id ${id} is outside the vocabulary of ${vocabulary.model}${range}`);
  }
  return id;
}
