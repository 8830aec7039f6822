import { OnnxCompressError } from '../errors.js';

/** A decoder graph whose blocks could not be recognised; the message names the node or value where matching failed. */
export class StructureError extends OnnxCompressError {
  constructor(message: string) {
    super('bad-model', message);
  }
}
