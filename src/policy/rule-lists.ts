/**
 * Rule lists as the typed-array index tables store them: a list code is a rule order (>= 0) for a
 * one-rule list, or `-(i + 2)` for `lists[i]`, a list of two or more rules. The evaluator takes
 * lists (`number[]`), so a one-rule code is handed over in a scratch one-element list.
 */

// One per output position, shared by every index: a decision's indexes write distinct positions
// of the same output, and each list is consumed before the next decision writes its position again.
const singletons: number[][] = [];

/** Stores the rule list of `code` (a rule order, or a negative list code) at `out[n]`. */
export function storeRuleList(code: number, lists: readonly number[][], out: number[][], n: number): void {
  if (code < 0) {
    out[n] = lists[-code - 2] as number[];
    return;
  }
  let single = singletons[n];
  if (single === undefined) {
    single = [0];
    singletons[n] = single;
  }
  single[0] = code;
  out[n] = single;
}
