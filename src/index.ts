// onnx-compress as a library: the typed API the command line is built on. Load and save models (external data
// included), edit graphs, calibrate, quantize with a scheme or a per-node plan, run recipes of passes, evaluate
// and generate. Every error it throws on purpose is an OnnxCompressError with a stable `code`.

// Errors
export { OnnxCompressError, OptionError, OutputError, isOnnxCompressError, type ErrorCode } from './errors.js';

// Models: load, save, inspect, edit
export { loadModel, OnnxModel, ModelError, type LoadOptions } from './onnx/model.js';
export { saveModel, type SaveOptions, type SaveReport } from './onnx/save.js';
export { modelFolder, type ModelFolder } from './onnx/model-folder.js';
export { describeDecoder, type DecoderSummary } from './onnx/decoder-info.js';
export { summarize as summarizeModel, type ModelSummary } from './onnx/summary.js';
export { GraphEditor, type EditResult, type GraphChange } from './onnx/editor.js';
export { GraphBuilder, modelFrom } from './onnx/builder.js';

// Calibration
export { openCalibrationSet, type CalibrationOptions, type CalibrationSet } from './calibration/data/index.js';
export { collectStatistics, type ActivationStatistics, type ActivationAccumulator, type CollectOptions } from './calibration/collect.js';
export { readStatsFile, writeStatsFile } from './calibration/stats-file.js';
export { compareCalibrationSets, type CompareOptions, type CompareCalibReport } from './calibration/compare.js';

// Quantization: plan -> solve -> rewrite
export { resolveScheme, SCHEME_NAMES, QuantizationError, type QuantParams, type SchemeOptions, type SchemeName } from './quantization/schemes.js';
export { planFromScheme, plannedActivations, planRows, type QuantPlan, type PlannedNode, type NodePlan, type NodeFormat } from './quantization/plan.js';
export { readPlanFile, resolvePlan, planFileFrom, type PlanFile, type PlanEntry } from './quantization/plan-file.js';
export { roundToNearest, type WeightSolver, type SolveRequest } from './quantization/solvers.js';
export { rewriteModel, quantizeModel, type WriterResult, type WriterReport, type NodeReport } from './quantization/writers/index.js';
export { tuneBiases, tunableParameters, type BiasTuningOptions, type BiasTuningReport } from './quantization/bias-tuning.js';
export { activationRanges, type ClipOptions } from './quantization/ranges.js';
export { quantizePass as quantize, type QuantizePassOptions, type QuantizationRunReport } from './quantization/pipeline.js';
export { verifyModel, VerificationError, type VerificationReport } from './quantization/verify.js';

// Structured pruning
export { applyScores, scoreUnits, PRUNE_METHODS, type PruneMethod, type MethodScores, type PruneOutcome } from './pruning/prune.js';
export { allocate, DEFAULT_GAMMA, type Allocation } from './pruning/allocate.js';
export { saliencyScores, objectiveGradients, type SaliencyObjective } from './pruning/saliency.js';
export { selectByKl, parseCandidates, type Candidate, type CandidateResult } from './pruning/kl-select.js';
export { prunePass, type PruneOptions, type PruneReport } from './passes/prune.js';

// Bit allocation: per-layer sensitivity, the integer program, the plan for quantize --plan
export { allocate as allocateBits, allocateFor, PlanLossMeter, markPareto, ALLOCATION_REPORT_FORMAT, type AllocateOptions, type AllocateReport, type AllocationSummary, type AllocatedLayer, type SweepPoint } from './allocation/allocate.js';
export { parseBudget, budgetTotalBytes, type Budget, type ModelSizes } from './allocation/budget.js';
export { parseCandidates as parseBitCandidates, candidateLabel, type CandidateSpec } from './allocation/candidates.js';
export { measureSensitivity, type SensitivityTable, type SensitivityOptions, type LayerSensitivity } from './allocation/sensitivity.js';
export { readSensitivityFile, writeSensitivityFile } from './allocation/sensitivity-file.js';
export { allocationPlanFile } from './allocation/plan-writer.js';
export { solveAllocation, ALLOCATION_SOLVERS, DEFAULT_ALLOCATION_SOLVER } from './allocation/solvers/index.js';
export type { AllocationProblem, AllocationSolution, AllocationSolver } from './allocation/problem.js';
export { allocatePass, type AllocatePassOptions } from './passes/allocate.js';

// Passes and recipes
export { runSteps as compress, runPass, checkOrder, type CompressReport, type RunOptions } from './passes/runner.js';
export { readRecipe, parseRecipe, type Recipe } from './passes/recipe.js';
export { PASSES, PASS_NAMES } from './passes/registry.js';
export type { Pass, PassEnv, PassState, PassKind, Step } from './passes/types.js';

// Evaluation and decoding
export { evaluateModel, type EvalOptions, type EvalReport } from './decoding/evaluate.js';
export { generateText, type GenerateTextOptions, type GenerateReport } from './decoding/generate-text.js';
export { optimizeDecoder, type OptimizeOptions, type OptimizeReport } from './optimize/optimize.js';
export { optimizedMarker, OPTIMIZED_KEY, type OptimizedMarker } from './optimize/marker.js';
export { DecoderSession } from './decoding/decoder-session.js';

// Reports
export { renderReport, writeReportFile, documentFromJson } from './report/index.js';
