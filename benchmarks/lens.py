"""``rankings()`` data vs an Ecco-style loop, on SmolLM2 (bundled).

60-token prompt + 40 greedy tokens. Ecco ran the LM head and a full-vocabulary argsort per
layer per generated token in Python loops; ecco batches layers x positions through the head in
chunks and counts logits above the target's. Same process, same hidden states. Prints both
times, the speed-up (target >= 5x), how many ranks are identical (the rest must be ties in
probability, which argsort orders arbitrarily), and the peak extra memory
of each (RSS sampled every 2 ms above the level before the call; target <= 200 MB).
Run: ``.venv/bin/python benchmarks/lens.py``.
"""
from __future__ import annotations

import statistics
import threading
import time

import torch

import ecco

PROMPT = (
    "The history of the city begins with a small settlement on the banks of the river, where traders "
    "stopped to rest on their way to the coast. Over the centuries the settlement grew into a market "
    "town, and later into a busy port whose ships carried wool, grain and salt to distant harbours, and"
)


def _rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * 4096 / 2**20


def _measure(fn):
    """(seconds, result, peak extra MB) of one call."""
    base, peak, running = _rss_mb(), [0.0], [True]

    def sample() -> None:
        while running[0]:
            peak[0] = max(peak[0], _rss_mb())
            time.sleep(0.002)

    thread = threading.Thread(target=sample)
    thread.start()
    start = time.perf_counter()
    result = fn()
    seconds = time.perf_counter() - start
    running[0] = False
    thread.join()
    return seconds, result, max(0.0, peak[0] - base)


def ecco_style_ranks(lm, output) -> tuple[torch.Tensor, torch.Tensor]:
    """Ecco 0.1's way: per generated token, per layer, head + softmax + full argsort.

    Also returns the last rank the token could have among tokens of exactly equal probability
    (argsort orders ties arbitrarily)."""
    seq = output.sequences[0]
    hidden = output.hidden_states["decoder"][0]
    model = lm.model
    ranks = torch.zeros((hidden.shape[0] - 1, len(seq) - seq.n_input_tokens), dtype=torch.long)
    tie_end = torch.zeros_like(ranks)
    with torch.no_grad():
        for column, position in enumerate(range(seq.n_input_tokens, len(seq))):
            token = seq.token_ids[position]
            for layer in range(1, hidden.shape[0]):
                state = hidden[layer, position - 1]
                if layer < hidden.shape[0] - 1:
                    state = model.model.norm(state)
                logits = model.lm_head(state)
                probs = torch.softmax(logits, dim=-1)
                order = torch.argsort(probs, descending=True)
                ranks[layer - 1, column] = int((order == token).nonzero()[0, 0]) + 1
                tie_end[layer - 1, column] = int((probs >= probs[token]).sum())
    return ranks, tie_end


def main() -> None:
    torch.set_num_threads(2)
    lm = ecco.from_pretrained("smollm2-135m", verbose=False)
    output = lm.generate(PROMPT, generate=40, min_new_tokens=40)
    seq = output.sequences[0]
    print(f"prompt {seq.n_input_tokens} tokens + {len(seq) - seq.n_input_tokens} generated, "
          f"{output.n_layers['decoder']} layers, vocabulary {lm.model.config.vocab_size}")
    output.rankings(printJson=True)  # warm-up
    ours_runs, loop_runs = [], []
    for _ in range(3):
        ours_runs.append(_measure(lambda: output.rankings(printJson=True)["rankings"]))
        loop_runs.append(_measure(lambda: ecco_style_ranks(lm, output)))
    ours = statistics.median(r[0] for r in ours_runs)
    loop = statistics.median(r[0] for r in loop_runs)
    ours_ranks = torch.as_tensor(ours_runs[0][1])
    loop_ranks, tie_end = loop_runs[0][1]
    differ = int((ours_ranks != loop_ranks).sum())
    # ecco's rank is 1 + the number of strictly larger logits: the best rank among ties.
    consistent = bool(((ours_ranks <= loop_ranks) & (loop_ranks <= tie_end)).all())
    print(f"ecco-style loop : {loop:.3f} s   peak extra {max(r[2] for r in loop_runs):6.1f} MB")
    print(f"ecco rankings() : {ours:.3f} s   peak extra {max(r[2] for r in ours_runs):6.1f} MB (target <= 200 MB)")
    print(f"speed-up        : {loop / ours:.1f}x (target >= 5x)")
    print(f"ranks: {ours_ranks.numel() - differ} of {ours_ranks.numel()} identical; the {differ} others are ties "
          f"in probability that argsort ordered arbitrarily (ecco gives the best rank among ties): {consistent}")


if __name__ == "__main__":
    main()
