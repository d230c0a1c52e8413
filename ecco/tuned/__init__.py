"""The trained (tuned) lens: per-layer affine translators in front of the model's head
(:mod:`~ecco.tuned.lens`), trained on hidden states from a corpus run or a streamed source
(:mod:`~ecco.tuned.data`, :mod:`~ecco.tuned.train`) and evaluated against the logit lens on
held-out text (:mod:`~ecco.tuned.evaluate`). ``ecco.train_lens`` and ``ecco.evaluate_lens``
are the entry points."""
