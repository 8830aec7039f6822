// Training decoder language models with the TensorFlow.js interpreter (src/runtime/tf): AdamW with decoupled
// weight decay, global-norm clipping, warmup + cosine schedule, byte-level window sampling and writing trained
// values back into the ONNX model. scripts/train-sample.ts trains the sample models in models/ with it.
export { withWeights, floatInitializers } from './checkpoint.js';
export { BYTE_VOCAB, byteTokens, type NamedDocuments, readJsonlTexts, type TokenBatch, validationBatches, WindowSampler } from './data.js';
export { batchFeeds, type CacheLayout, cacheLayout, logSoftmaxAt, type StepReport, Trainer, type TrainerOptions, trainableWeights } from './loop.js';
export { AdamW, type AdamWOptions, clipGlobalNorm, globalNorm, type Parameter } from './optimizer.js';
export { type CosineSchedule, cosineLearningRate } from './schedule.js';
