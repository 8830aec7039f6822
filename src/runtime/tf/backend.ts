// Which TensorFlow.js backend computes: the native 'tensorflow' backend (tfjs-node-gpu, else tfjs-node) when one
// is installed and loads, else 'wasm', else the pure-JS 'cpu' backend. Reports print the choice, since speed
// and, in the last digits, results depend on it.
//
// tfjs-node(-gpu) are optional dependencies that download libtensorflow when installed, so they are imported
// dynamically and any failure (absent, or its native library does not load) just moves on. The wasm backend
// finds its .wasm files next to its own Node bundle in node_modules, so no setWasmPaths is needed there.
import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-cpu';
import '@tensorflow/tfjs-backend-wasm';
import { OnnxCompressError } from '../../errors.js';
import { registerGradients } from './gradients/index.js';
import { registerKernels } from './kernels.js';

export type BackendName = 'tensorflow' | 'wasm' | 'cpu';
export type BackendChoice = BackendName | 'auto';

export const BACKEND_CHOICES: readonly BackendChoice[] = ['auto', 'tensorflow', 'wasm', 'cpu'];

const NATIVE_PACKAGES = ['@tensorflow/tfjs-node-gpu', '@tensorflow/tfjs-node'];

let nativeAttempt: Promise<string | undefined> | undefined;
let selected: BackendName | undefined;

/** Loads the first native package that works; resolves to its name, or undefined when none does. */
function loadNative(): Promise<string | undefined> {
  nativeAttempt ??= (async () => {
    for (const pkg of NATIVE_PACKAGES) {
      try {
        // A variable specifier: the packages are optional, so the compiler must not try to resolve them.
        await import(pkg);
        if (tf.findBackendFactory('tensorflow')) return pkg;
      } catch {
        // Not installed, or libtensorflow failed to load: try the next one.
      }
    }
    return undefined;
  })();
  return nativeAttempt;
}

function prepareProcessWide(): void {
  // tfjs warns on stdout-adjacent channels (console.warn) about missing native bindings and the like; a
  // library must not print, and the choice is reported by the caller instead.
  tf.env().set('PROD', true);
  registerGradients();
  registerKernels();
}

/**
 * Makes `choice` the active tfjs backend ('auto': tensorflow, wasm, cpu, first that initialises) and returns
 * the name of the backend now active. Throws when an explicitly named backend cannot be used.
 */
export async function selectBackend(choice: BackendChoice = 'auto'): Promise<BackendName> {
  prepareProcessWide();
  const candidates: BackendName[] = choice === 'auto' ? ['tensorflow', 'wasm', 'cpu'] : [choice];
  for (const name of candidates) {
    if (name === 'tensorflow' && !(await loadNative())) continue;
    if (await tf.setBackend(name)) {
      await tf.ready();
      selected = name;
      return name;
    }
  }
  if (choice === 'tensorflow') {
    throw new OnnxCompressError('runtime', `the 'tensorflow' backend needs ${NATIVE_PACKAGES.join(' or ')}, and neither is installed or loads`);
  }
  throw new OnnxCompressError('runtime', `the TensorFlow.js backend '${choice}' could not be initialised`);
}

/** The backend selectBackend made active, or undefined before it has run. */
export function activeBackend(): BackendName | undefined {
  return selected;
}

/**
 * Whether selectBackend has prepared tfjs (backend ready, gradients and wasm kernels registered) and nobody
 * switched the backend since.
 */
export function backendSelected(): boolean {
  return selected !== undefined && tf.engine().backendName === selected;
}
