// Text in, text out with speculative decoding: what `onnx-compress speculate` runs, as a library call. The
// prompt is continued by target + draft (streamed as it settles), then by the target alone on the same prompt and
// settings, so the report ends with acceptance and the speed-up against plain decoding.
import { loadModel } from '../onnx/model.js';
import { DecoderSession } from './decoder-session.js';
import { reportedSampling, type Continuation } from './generate-text.js';
import { summarize, targetOnly, warmUp, type SpeculativeMeasurement } from './speculative-measure.js';
import { checkDraftFits, checkGamma, checkPromptFits, speculativeGenerate, type Gamma, type SpeculativeStats } from './speculative.js';
import { promptIds, textCodecFor } from './text-codec.js';
import { textHooks } from './text-stream.js';

export const SPECULATE_REPORT_FORMAT = 'onnx-compress.speculate-report';

export interface SpeculateTextOptions {
  draft: string;
  gamma: Gamma;
  maxNewTokens: number;
  temperature?: number;
  topK?: number;
  topP?: number;
  seed?: number;
  threshold?: number;
  threads?: number;
  onText?: (text: string) => void;
}

export interface SpeculateReport extends Continuation {
  format: typeof SPECULATE_REPORT_FORMAT;
  target: string;
  draft: string;
  stats: SpeculativeStats;
  /** Against the target alone on the same prompt: acceptance, c, predicted and measured speed-up. */
  comparison: SpeculativeMeasurement;
  targetOnlyText: string;
}

export async function speculateText(targetPath: string, prompt: string, options: SpeculateTextOptions): Promise<SpeculateReport> {
  const gamma = checkGamma(options.gamma, '--gamma');
  const { maxNewTokens, temperature = 0, topK = 0, topP = 1, seed, threshold, threads, onText } = options;
  const sampling = { temperature, topK, topP, ...(seed !== undefined ? { seed } : {}) };
  const targetModel = loadModel(targetPath);
  const session = threads !== undefined ? { intraOpThreads: threads } : {};
  const target = await DecoderSession.open({ path: targetPath, model: targetModel }, session);
  try {
    const draft = await DecoderSession.open(options.draft, session);
    try {
      checkDraftFits(target, draft);
      const codec = textCodecFor(targetModel, target.vocab);
      const promptTokens = promptIds(codec, prompt, target.special.bos);
      checkPromptFits(promptTokens, target, draft);
      await warmUp(promptTokens, target, draft);

      const streamed = textHooks(codec, onText);
      const result = await speculativeGenerate(target, draft, [promptTokens], {
        maxNewTokens,
        gamma,
        ...sampling,
        ...(threshold !== undefined ? { threshold } : {}),
        ...streamed.hooks,
      });
      streamed.end();
      const reference = await targetOnly(target, [promptTokens], { maxNewTokens, ...sampling });
      const comparison = summarize(gamma, [result], reference, sampling);
      const { tokens, stopReason, stats } = result;
      return {
        format: SPECULATE_REPORT_FORMAT,
        target: targetPath,
        draft: options.draft,
        prompt,
        promptTokens,
        text: codec.decode(tokens),
        tokens,
        stopReason,
        sampling: reportedSampling(temperature, topK, topP, seed),
        stats,
        comparison,
        targetOnlyText: codec.decode(reference[0].tokens),
      };
    } finally {
      await draft.dispose();
    }
  } finally {
    await target.dispose();
  }
}
