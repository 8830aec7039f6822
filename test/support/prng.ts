// Tests draw their random inputs from the product's seeded generator, so runs repeat exactly.
export { seededRandom as mulberry32 } from '../../src/util/prng.js';
