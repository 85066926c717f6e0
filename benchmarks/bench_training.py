"""Training throughput of the two named configurations on this CPU (chapter 4).

One training step (:func:`sheetlab.training.train_step`: forward, cross-entropy against the
soft targets, backward and an SGD step with the talk's recipe: momentum 0.9, weight decay 1e-4)
on a mini-batch of 100 real examples (sheet windows and spectrogram excerpts of a few default
pieces), with 2 torch threads, the model in channels-last order as the trainer keeps it, in
float32 and in bfloat16 autocast (``--bf16``). Samples per second = 100 / median step time,
after one warm-up step; data loading is excluded (the examples are stacked once).
"""

from __future__ import annotations

import time

import numpy as np
import torch

from sheetlab import corpus
from sheetlab.dataset import SnippetDataset
from sheetlab.models import AudioSheetNet, config, count_parameters
from sheetlab.targets import soft_targets
from sheetlab.training import TrainSettings, bf16_is_fast, load_pieces, make_optimizer, train_step

THREADS = 2
BATCH = 100
STEPS = {"light": 7, "talk": 3}  # timed steps per model (the talk model takes many seconds)


def _batch(kind: str) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """One mini-batch of real examples of a kind of piece, with its soft targets."""
    data = load_pieces(corpus.pieces(kind, "train", limit=4), progress=False)
    examples = SnippetDataset(data, seed=0)
    index = np.random.default_rng(0).choice(len(examples), BATCH, replace=False)
    sheet, spec, x = (torch.stack(t) for t in zip(*(examples[int(i)] for i in index)))
    return sheet, spec, torch.from_numpy(soft_targets(x.numpy())).float()


def _samples_per_s(name: str, kind: str, batch, bf16: bool) -> tuple[float, int]:
    """Median training throughput of a fresh model, and its parameter count."""
    torch.manual_seed(0)
    model = AudioSheetNet(config(name, kind)).to(memory_format=torch.channels_last).train()
    optimizer, _ = make_optimizer(model, TrainSettings())
    times = []
    for step in range(STEPS[name] + 1):
        start = time.perf_counter()
        train_step(model, optimizer, *batch, bf16=bf16)
        if step:  # the first step is a warm-up
            times.append(time.perf_counter() - start)
    return BATCH / float(np.median(times)), count_parameters(model)


def run() -> dict:
    threads = torch.get_num_threads()
    torch.set_num_threads(THREADS)
    rows = []
    try:
        for kind in ("mono", "piano"):
            batch = _batch(kind)
            for name in ("light", "talk"):
                for precision in ("float32", "bfloat16"):
                    rate, params = _samples_per_s(name, kind, batch, precision == "bfloat16")
                    rows.append({"config": name, "kind": kind, "precision": precision,
                                 "parameters_M": params / 1e6, "samples_per_s": rate,
                                 "epoch_of_10k_examples_min": 10_000 / rate / 60})
    finally:
        torch.set_num_threads(threads)
    rate = {(r["config"], r["kind"], r["precision"]): r["samples_per_s"] for r in rows}
    light, talk = ({kind: rate[name, kind, "float32"] for kind in ("mono", "piano")}
                   for name in ("light", "talk"))
    gain = {(name, kind): rate[name, kind, "bfloat16"] / rate[name, kind, "float32"]
            for name in ("light", "talk") for kind in ("mono", "piano")}
    return {
        "title": "Training throughput (SGD step, batch 100)",
        "rows": rows,
        "notes": f"{THREADS} torch threads, median of {STEPS['light']} (light) / {STEPS['talk']} "
                 f"(talk) steps after a warm-up, data loading excluded. light / talk speed: "
                 f"{light['mono'] / talk['mono']:.0f}x (mono), "
                 f"{light['piano'] / talk['piano']:.0f}x (piano). bfloat16 / float32 speed: "
                 + ", ".join(f"{g:.1f}x ({name} {kind})" for (name, kind), g in gain.items())
                 + f"; this CPU {'has' if bf16_is_fast('cpu') else 'lacks'} bfloat16 "
                 "instructions (AVX-512 BF16 or AMX), without which bfloat16 is emulated.",
    }
