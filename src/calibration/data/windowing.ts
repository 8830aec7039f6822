// Cuts a stream of documents into fixed-length token windows without holding the stream in memory.
//
// The documents are concatenated into one token stream, each followed by the end-of-sequence id when the model
// has one (so a window that spans two documents shows the model where one ends). Window k covers stream
// positions [k * step, k * step + length): step = length gives consecutive non-overlapping chunks, a smaller
// step overlapping sliding windows. The tail shorter than a window is dropped, never padded, so every window is
// real text and all samples have one shape.

export interface WindowPlan {
  /** Tokens per window (the sequence length fed to the model). */
  length: number;
  /** Distance between window starts: `length` for chunking, the stride for sliding windows. */
  step: number;
}

/** How many whole windows a stream of `totalTokens` holds. */
export function windowCount(totalTokens: number, plan: WindowPlan): number {
  return totalTokens < plan.length ? 0 : Math.floor((totalTokens - plan.length) / plan.step) + 1;
}

/** The token stream: each document's ids, then the end-of-sequence id when there is one. */
export async function* withBoundaries(documents: AsyncIterable<number[]>, eosId: number | undefined): AsyncGenerator<number[]> {
  const boundary = eosId === undefined ? undefined : [eosId];
  for await (const ids of documents) {
    yield ids;
    if (boundary) yield boundary;
  }
}

export interface Window {
  index: number;
  tokens: number[];
}

/**
 * The windows whose indices are in `selected` (ascending), in that order. Keeps only the tokens from the next
 * selected window's start onwards, so memory is one window plus one document; stops reading at the last one.
 */
export async function* selectedWindows(stream: AsyncIterable<number[]>, plan: WindowPlan, selected: readonly number[]): AsyncGenerator<Window> {
  if (selected.length === 0) return;
  let next = 0;
  let buffer: number[] = [];
  let bufferStart = 0; // stream position of buffer[0]
  let streamPos = 0; // stream position of the chunk being read
  for await (const chunk of stream) {
    const keepFrom = selected[next] * plan.step;
    for (let i = Math.max(0, keepFrom - streamPos); i < chunk.length; i++) {
      if (buffer.length === 0) bufferStart = streamPos + i;
      buffer.push(chunk[i]);
    }
    streamPos += chunk.length;
    while (next < selected.length) {
      const start = selected[next] * plan.step;
      if (start + plan.length > streamPos) break;
      const from = start - bufferStart;
      yield { index: selected[next], tokens: buffer.slice(from, from + plan.length) };
      next++;
    }
    if (next === selected.length) return;
    const dropped = selected[next] * plan.step - bufferStart;
    if (dropped > 0) {
      buffer = buffer.slice(Math.min(dropped, buffer.length));
      bufferStart += dropped;
    }
  }
}
