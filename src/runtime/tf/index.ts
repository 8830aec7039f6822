// The TensorFlow.js executor: run ONNX models and take gradients through them. See interpreter.ts for the
// model object, backend.ts for backend choice, ops/ for the operator set and docs/tf-ops.md for its coverage.
export { activeBackend, BACKEND_CHOICES, type BackendChoice, type BackendName, selectBackend } from './backend.js';
export { NARROWED_TYPES } from './dtypes.js';
export {
  type CompileOptions,
  type Feeds,
  type GradientRequest,
  type GradientResult,
  type Objective,
  type Outputs,
  type TensorInput,
  TfExecutionError,
  TfModel,
} from './interpreter.js';
export { crossEntropy, IGNORE_INDEX, meanSquaredError, weightedSum } from './objectives.js';
export { defaultRegistry, OP_CATEGORIES } from './ops/index.js';
export { op, type OpContext, type OpDef, type OpFn, type OpInputs, type OpOptions, OpRegistry } from './registry.js';
export { type SupportProblem, supportProblems, UnsupportedModelError } from './support.js';
