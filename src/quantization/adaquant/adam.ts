// Adam (Kingma & Ba) on tfjs variables with a learning rate the caller sets per step: tf.train.adam fixes its
// rate at construction, and AdaQuant anneals the rate so the straight-through iterate settles on a rounding
// instead of oscillating between neighbouring codes at the end of the run.
import * as tf from '@tensorflow/tfjs-core';

export class Adam {
  private readonly m: tf.Variable;
  private readonly v: tf.Variable;
  private t = 0;

  constructor(
    readonly variable: tf.Variable,
    readonly rate: number,
    private readonly beta1 = 0.9,
    private readonly beta2 = 0.999,
    private readonly epsilon = 1e-8,
  ) {
    this.m = tf.variable(tf.zerosLike(variable), false);
    this.v = tf.variable(tf.zerosLike(variable), false);
  }

  /** One step along `grad` with the rate scaled by `factor` (the schedule's value for this step). */
  step(grad: tf.Tensor, factor: number): void {
    this.t++;
    const { beta1, beta2, epsilon, t } = this;
    tf.tidy(() => {
      this.m.assign(tf.add(tf.mul(this.m, beta1), tf.mul(grad, 1 - beta1)));
      this.v.assign(tf.add(tf.mul(this.v, beta2), tf.mul(tf.square(grad), 1 - beta2)));
      const update = tf.div(tf.div(this.m, 1 - beta1 ** t), tf.add(tf.sqrt(tf.div(this.v, 1 - beta2 ** t)), epsilon));
      this.variable.assign(tf.sub(this.variable, tf.mul(update, this.rate * factor)));
    });
  }

  dispose(): void {
    this.m.dispose();
    this.v.dispose();
  }
}
