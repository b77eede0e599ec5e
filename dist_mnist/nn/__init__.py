"""Pure NumPy neural-network math: the MLP and the DL4J updaters. No Spark here.

model.py     the MLP: Xavier init, forward pass, fused softmax/NLL loss and backprop
updaters.py  DL4J 0.x Nesterov and SGD updaters with L2, on keyed parameter dicts
fused.py     the same updates as one numba pass over each array (the same bits)
steps.py     a shard's minibatches: gradient sums, k local steps
flat.py      keyed arrays <-> one contiguous float32 vector (what a round ships)
sparse.py    layer 0 from each example's non-zero inputs (numba; chosen per batch by density)
"""
