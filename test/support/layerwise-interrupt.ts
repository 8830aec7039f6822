// A layer-wise quantize run that says when its first block is solved and goes on to the next: test/layerwise
// signals it there to see that an interrupt between layers writes nothing. Arguments: MODEL OUT; prints
// {"block": NAME} after the first block.
import { installProcessCleanup } from '../../src/cli/main.js';
import { quantizePass } from '../../src/quantization/pipeline.js';

const [model, out] = process.argv.slice(2);
installProcessCleanup();
let told = false;
await quantizePass(model, 'w4', {
  out,
  calibration: { data: 'prose', options: { samples: 8, sequenceLength: 64 } },
  method: 'gptq',
  onProgress: (stage, done) => {
    if (told || stage === 'calibration' || done < 1) return;
    told = true;
    process.stdout.write(`${JSON.stringify({ block: done })}\n`);
  },
});
process.stdout.write('{"finished": true}\n');
