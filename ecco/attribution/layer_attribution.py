"""Layer attribution: integrated gradients and gradient x activation at a block's output (being built)."""
