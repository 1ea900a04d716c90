"""EmoOmniEval: score the agent the way the paper does (judge metrics) plus objective figures (docs/eval.md)."""
