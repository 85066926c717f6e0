"""Training the multimodal network: the talk's recipe, validation, checkpoints, resume (chapter 4).

The recipe of the talk: mini-batches of 100 examples, stochastic gradient descent with
momentum 0.9, learning rate 0.1 divided by 10 every 10 epochs, weight decay 0.0001; the loss
is the categorical cross-entropy between the network's B-way soft-max and the soft targets of
:mod:`sheetlab.targets`. Adam is offered as an alternative (learning rate 0.001, the same
schedule).

Every epoch is followed by a validation pass on fixed windows of the validation pieces: its
loss, the share of onsets localised within one bucket (less than one bucket width from the
true x, as in :mod:`sheetlab.following`) and the mean absolute error in px. The model with the
best share is kept in ``out_path`` (:func:`sheetlab.models.save_checkpoint`); the full
training state (model, optimiser, scheduler, epoch, history) goes to ``<out_path>.resume``
after every epoch, so an interrupted run resumes where it stopped; a JSON card beside the
checkpoint (``out_path`` with the suffix ``.json``) records the command, the data's hash, the
settings, the learning curves and the final and best metrics.

**Determinism.** The model is initialised after ``torch.manual_seed(seed)``; every epoch then
reseeds torch (drop-out) and the batch order from ``(seed, epoch)`` and draws its windows
with :meth:`sheetlab.dataset.SnippetDataset.set_epoch`. So on the CPU the same settings give
the same numbers, and a resumed run gives exactly the numbers of an uninterrupted one without
storing any random state.
"""

from __future__ import annotations

import hashlib
import json
import shlex
import sys
import time
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader
from tqdm.auto import tqdm

from sheetlab.dataset import Condition, PieceData, SnippetDataset, load_piece
from sheetlab.models import (AudioSheetNet, ModelConfig, atomic_save, count_parameters,
                             device, save_checkpoint, to_device, transfer_weights)
from sheetlab.targets import (SPREAD, bucket_width, cross_entropy, localise, soft_targets,
                              softmax)

OPTIMIZERS = ("sgd", "adam")
"""The optimisers :class:`TrainSettings` accepts."""

_DEFAULT_LR = {"sgd": 0.1, "adam": 0.001}
_RESUMABLE_CHANGES = {"epochs", "threads", "device", "progress"}  # a resumed run may change


@dataclass(frozen=True)
class TrainSettings:
    """How to train (chapter 4); the defaults are the talk's recipe.

    Attributes
    ----------
    epochs : int
        Epochs in all (a resumed run continues up to this number).
    batch_size : int
        Examples per mini-batch.
    optimizer : {"sgd", "adam"}
        SGD with momentum (the talk) or Adam.
    lr : float, optional
        Initial learning rate; default 0.1 for SGD, 0.001 for Adam.
    momentum : float
        SGD momentum.
    weight_decay : float
        L2 weight decay.
    lr_step_epochs : int
        The learning rate is multiplied by ``lr_gamma`` every this many epochs.
    lr_gamma : float
        Factor of each step of the learning rate.
    spread : float
        Soft-target spread in buckets (:func:`sheetlab.targets.soft_targets`).
    seed : int
        Seed of the initialisation, the batch order, drop-out and the windows.
    max_batches : int, optional
        At most this many batches per epoch (for quick runs); None for all.
    threads : int, optional
        ``torch.set_num_threads`` during training; None leaves torch's setting.
    device : str, optional
        ``"cpu"``, ``"cuda"``, ...; None for :func:`sheetlab.models.device`.
    progress : bool
        Show tqdm progress bars.
    init_from : str, optional
        A checkpoint to start from instead of a random initialisation, wherever names and
        shapes agree (:func:`sheetlab.models.transfer_weights`: e.g. the piano model from the
        mono model).
    lag_frames : int
        Half of the training excerpts end up to this many frames after their onset
        (:class:`sheetlab.dataset.SnippetDataset`; 0: all at the onset, as in the talk).
        Validation excerpts always end at the onset.
    bf16 : bool
        Compute the training forward pass in bfloat16 (``torch.autocast``; the weights, the
        loss and the optimiser stay float32). On a CPU with AVX-512 BF16 (or AMX) and on GPUs
        it about doubles the speed (``benchmarks/bench_training.py``); on a CPU without it,
        bfloat16 is emulated and slower. Validation always runs in float32.
    """

    epochs: int = 30
    batch_size: int = 100
    optimizer: str = "sgd"
    lr: float | None = None
    momentum: float = 0.9
    weight_decay: float = 1e-4
    lr_step_epochs: int = 10
    lr_gamma: float = 0.1
    spread: float = SPREAD
    seed: int = 0
    max_batches: int | None = None
    threads: int | None = None
    device: str | None = None
    progress: bool = True
    init_from: str | None = None
    lag_frames: int = 0
    bf16: bool = False

    def __post_init__(self) -> None:
        if self.optimizer not in OPTIMIZERS:
            raise ValueError(f"optimizer must be one of {OPTIMIZERS}, got {self.optimizer!r}")
        if self.epochs < 1 or self.batch_size < 2:
            raise ValueError("epochs must be >= 1 and batch_size >= 2 (batch norm needs two)")

    @property
    def learning_rate(self) -> float:
        """The initial learning rate: ``lr``, or the optimiser's default."""
        return self.lr if self.lr is not None else _DEFAULT_LR[self.optimizer]

    def as_dict(self) -> dict:
        """All settings as plain values, with the resolved learning rate."""
        return {**asdict(self), "lr": self.learning_rate}


def resume_path(out_path: str | Path) -> Path:
    """Where the training state of a run that writes ``out_path`` is kept (chapter 4)."""
    out_path = Path(out_path)
    return out_path.with_name(out_path.name + ".resume")


def card_path(out_path: str | Path) -> Path:
    """The JSON card beside a checkpoint: ``out_path`` with the suffix ``.json``."""
    return Path(out_path).with_suffix(".json")


def load_pieces(pieces: Sequence, condition: Condition = Condition(), *,
                workers: int | None = None, progress: bool = True) -> list[PieceData]:
    """The cached data of corpus pieces, building the missing ones first (chapter 4).

    Parameters
    ----------
    pieces : sequence of sheetlab.corpus.Piece
        Catalogue pieces (:func:`sheetlab.corpus.pieces`).
    condition : Condition
        Rendering condition.
    workers : int, optional
        Worker processes of :func:`sheetlab.databuild.build` (default: every core).
    progress : bool
        Show the build's progress bar.

    Returns
    -------
    list of PieceData
        In the order of ``pieces``, without those that failed to build (reported on stderr).
    """
    from sheetlab.corpus import score
    from sheetlab.databuild import build

    report = build(pieces, condition, workers=workers, progress=progress)
    failed = {piece_id for piece_id, _ in report.failed}
    if failed:
        print(report.summary(), file=sys.stderr)
    return [load_piece(score(p), condition, build=False) for p in pieces if p.id not in failed]


def data_hash(train_pieces: Sequence[PieceData], valid_pieces: Sequence[PieceData]) -> str:
    """A hash of the sorted cache keys of the training and validation pieces (chapter 4).

    Returns
    -------
    str
        64 hexadecimal digits (SHA-256); equal hashes mean identical data.
    """
    blob = json.dumps({"train": sorted(p.key for p in train_pieces),
                       "valid": sorted(p.key for p in valid_pieces)})
    return hashlib.sha256(blob.encode()).hexdigest()


def make_optimizer(model: torch.nn.Module, settings: TrainSettings
                   ) -> tuple[torch.optim.Optimizer, torch.optim.lr_scheduler.StepLR]:
    """The optimiser and the step learning-rate schedule of ``settings`` (chapter 4).

    Returns
    -------
    optimizer : torch.optim.Optimizer
        SGD with momentum or Adam, with weight decay.
    scheduler : torch.optim.lr_scheduler.StepLR
        Multiplies the learning rate by ``lr_gamma`` every ``lr_step_epochs`` epochs
        (call ``step()`` once per epoch).
    """
    if settings.optimizer == "sgd":
        optimizer = torch.optim.SGD(model.parameters(), lr=settings.learning_rate,
                                    momentum=settings.momentum,
                                    weight_decay=settings.weight_decay)
    else:
        optimizer = torch.optim.Adam(model.parameters(), lr=settings.learning_rate,
                                     weight_decay=settings.weight_decay)
    scheduler = torch.optim.lr_scheduler.StepLR(optimizer, settings.lr_step_epochs,
                                                settings.lr_gamma)
    return optimizer, scheduler


@torch.no_grad()
def predict(model: AudioSheetNet, dataset: SnippetDataset, batch_size: int = 100,
            progress: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """The model's logits for every example of a dataset, in eval mode (chapter 4).

    Parameters
    ----------
    model : AudioSheetNet
        The model (left in eval mode).
    dataset : SnippetDataset
        The examples, at its current epoch's windows.
    batch_size : int
        Examples per forward pass.
    progress : bool
        Show a progress bar.

    Returns
    -------
    logits : numpy.ndarray
        ``(N, B) float32``.
    target_x : numpy.ndarray
        ``(N,) float32`` the true x inside each window, in px.
    """
    model.eval()
    where = next(model.parameters()).device
    logits, target_x = [], []
    for sheet, spec, x in tqdm(DataLoader(dataset, batch_size), desc="validating",
                               leave=False, disable=not progress):
        logits.append(model(to_device(sheet, where), to_device(spec, where)).cpu().numpy())
        target_x.append(x.numpy())
    return np.concatenate(logits), np.concatenate(target_x)


def evaluate(model: AudioSheetNet, dataset: SnippetDataset, spread: float = SPREAD,
             batch_size: int = 100, progress: bool = False) -> dict[str, float]:
    """Validation metrics of a model on a dataset (chapter 4).

    Parameters
    ----------
    model : AudioSheetNet
        The model.
    dataset : SnippetDataset
        Examples whose windows are as wide as the model's sheet input.
    spread : float
        Soft-target spread of the loss, in buckets.
    batch_size : int
        Examples per forward pass.
    progress : bool
        Show a progress bar.

    Returns
    -------
    dict
        ``loss`` (mean cross-entropy against the soft targets, nats), ``within_one_bucket``
        (share of examples whose localised x is less than one bucket width from the true x)
        and ``mae_px`` (mean absolute error of the localised x, px).
    """
    logits, x = predict(model, dataset, batch_size, progress)
    n_buckets, width = logits.shape[1], model.config.sheet_shape[1]
    error_px = np.abs(localise(softmax(logits), width) - x)
    return {"loss": float(cross_entropy(logits, soft_targets(x, n_buckets, width, spread)).mean()),
            "within_one_bucket": float(np.mean(error_px < bucket_width(n_buckets, width))),
            "mae_px": float(np.mean(error_px))}


def bf16_is_fast(where: torch.device | str | None = None) -> bool:
    """Whether bfloat16 autocast speeds training up on a device (chapter 4).

    True on a GPU and on a CPU with the AVX-512 BF16 or AMX instructions; elsewhere bfloat16
    arithmetic is emulated and slower than float32.

    Parameters
    ----------
    where : torch.device or str, optional
        The device; default :func:`sheetlab.models.device`.
    """
    where = torch.device(where) if where is not None else device()
    if where.type != "cpu":
        return True
    checks = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")
    return any(getattr(torch.cpu, name, lambda: False)() for name in checks)


def train_step(model: AudioSheetNet, optimizer: torch.optim.Optimizer, sheet: torch.Tensor,
               spec: torch.Tensor, targets: torch.Tensor, bf16: bool = False) -> float:
    """One optimisation step on one mini-batch (chapter 4).

    Parameters
    ----------
    model : AudioSheetNet
        The model, in training mode (channels-last, as :func:`train` keeps it, runs fastest).
    optimizer : torch.optim.Optimizer
        From :func:`make_optimizer`.
    sheet, spec : torch.Tensor
        ``(N, 1, H, W) float32`` sheet windows and ``(N, 1, F, T)`` spectrogram excerpts.
    targets : torch.Tensor
        ``(N, B)`` target distributions over the buckets (rows sum to 1).
    bf16 : bool
        Compute the forward pass in bfloat16 autocast (see :class:`TrainSettings`).

    Returns
    -------
    float
        The mini-batch's cross-entropy before the step (nats).
    """
    where = next(model.parameters()).device
    with torch.autocast(where.type, torch.bfloat16, enabled=bf16):
        logits = model(to_device(sheet, where), to_device(spec, where))
    loss = F.cross_entropy(logits.float(), targets.to(where, torch.float32))
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
    return loss.item()


def epoch_seed(seed: int, epoch: int) -> int:
    """A seed for one epoch of a run, from the run's seed and the epoch (chapters 4 and 7)."""
    return int(np.random.SeedSequence([seed, epoch]).generate_state(1)[0])


def train_epoch(model: AudioSheetNet, dataset: SnippetDataset, optimizer: torch.optim.Optimizer,
                settings: TrainSettings, epoch: int) -> float:
    """One epoch of mini-batch training, reproducible from ``(settings.seed, epoch)`` (chapter 4).

    Parameters
    ----------
    model : AudioSheetNet
        The model (put in training mode).
    dataset : SnippetDataset
        The training examples (its epoch is set to ``epoch``).
    optimizer : torch.optim.Optimizer
        From :func:`make_optimizer`.
    settings : TrainSettings
        Batch size, spread, seed, batch limit, progress bar.
    epoch : int
        The epoch's number (1 for the first).

    Returns
    -------
    float
        Mean training loss over the epoch's batches (nats).
    """
    dataset.set_epoch(epoch)
    seed = epoch_seed(settings.seed, epoch)
    torch.manual_seed(seed)
    loader = DataLoader(dataset, settings.batch_size, shuffle=True,
                        generator=torch.Generator().manual_seed(seed),
                        drop_last=len(dataset) > settings.batch_size)
    n_batches = min(len(loader), settings.max_batches or len(loader))
    n_buckets, width = model.config.n_buckets, model.config.sheet_shape[1]
    model.train()
    losses = []
    bar = tqdm(loader, total=n_batches, desc=f"epoch {epoch}", leave=False,
               disable=not settings.progress)
    for sheet, spec, x in bar:
        targets = torch.from_numpy(soft_targets(x.numpy(), n_buckets, width, settings.spread))
        losses.append(train_step(model, optimizer, sheet, spec, targets, settings.bf16))
        bar.set_postfix(loss=f"{losses[-1]:.3f}")
        if len(losses) == n_batches:
            break
    bar.close()
    return float(np.mean(losses))


def check_pieces(pieces: Sequence[PieceData], config, name: str) -> None:
    """Refuse pieces a network cannot read (chapters 4, 7 and 9).

    Parameters
    ----------
    pieces : sequence of PieceData
        The pieces.
    config : ModelConfig or RetrievalConfig
        The network's sizes: its ``sheet_shape[0]`` must be the strips' height.
    name : str
        What the pieces are for ("training", "validation"), for the message.

    Raises
    ------
    ValueError
        If there is no piece, or naming the first piece whose strip height does not fit.
    """
    if not pieces:
        raise ValueError(f"no {name} pieces")
    for piece in pieces:
        if piece.strip.shape[0] != config.sheet_shape[0]:
            raise ValueError(f"{name} piece {piece.piece_id}: strip height {piece.strip.shape[0]}"
                             f" px, but the {config.kind} model reads {config.sheet_shape[0]} px")


def _restore(path: Path, model: AudioSheetNet, optimizer, scheduler, config: ModelConfig,
             settings: TrainSettings, digest: str) -> dict:
    """Load a run's training state into model, optimiser and scheduler; return the rest."""
    if not path.exists():
        raise FileNotFoundError(f"{path}: no training state to resume from")
    state = torch.load(path, map_location=next(model.parameters()).device, weights_only=True)
    if state["config"] != config.as_dict():
        raise ValueError(f"{path}: the state is of another model configuration")
    if state["data_hash"] != digest:
        raise ValueError(f"{path}: the state was trained on other data (data hash differs)")
    defaults = TrainSettings().as_dict()  # a state saved before a setting existed ran with its default
    changed = sorted(k for k, v in settings.as_dict().items()
                     if k not in _RESUMABLE_CHANGES and state["settings"].get(k, defaults[k]) != v)
    if changed:
        raise ValueError(f"{path}: cannot resume with changed settings: {', '.join(changed)}")
    model.load_state_dict(state["model"])
    optimizer.load_state_dict(state["optimizer"])
    scheduler.load_state_dict(state["scheduler"])
    return {k: state[k] for k in ("history", "best", "elapsed_s")}


def train(train_pieces: Sequence[PieceData], valid_pieces: Sequence[PieceData],
          model_config: ModelConfig, settings: TrainSettings, out_path: str | Path, *,
          resume: bool = False, command: str | None = None) -> list[dict]:
    """Train a model, validating every epoch and keeping the best one (chapter 4).

    Parameters
    ----------
    train_pieces, valid_pieces : sequence of PieceData
        Training and validation pieces (:func:`load_pieces`), of the config's kind.
    model_config : ModelConfig
        The network (:func:`sheetlab.models.config`).
    settings : TrainSettings
        The recipe.
    out_path : str or pathlib.Path
        Checkpoint of the best model; the card goes to :func:`card_path`, the training state
        to :func:`resume_path`.
    resume : bool
        Continue the run whose state is at :func:`resume_path` (same model, data and
        settings; ``epochs`` may be raised) up to ``settings.epochs``.
    command : str, optional
        The command line for the card (default: this process's ``sys.argv``).

    Returns
    -------
    list of dict
        The learning curves, one dict per epoch: ``epoch``, ``lr``, ``train_loss``,
        ``valid_loss``, ``valid_within_one_bucket``, ``valid_mae_px``.
    """
    threads_before = torch.get_num_threads()
    if settings.threads:
        torch.set_num_threads(settings.threads)
    try:
        return _train(train_pieces, valid_pieces, model_config, settings, Path(out_path),
                      resume, command or shlex.join(sys.argv))
    finally:
        torch.set_num_threads(threads_before)


def _train(train_pieces, valid_pieces, config: ModelConfig, settings: TrainSettings,
           out_path: Path, resume: bool, command: str) -> list[dict]:
    """:func:`train` with its arguments checked and threads set."""
    check_pieces(train_pieces, config, "training")
    check_pieces(valid_pieces, config, "validation")
    where = torch.device(settings.device) if settings.device else device()
    torch.manual_seed(settings.seed)
    model = AudioSheetNet(config)
    transferred = transfer_weights(model, settings.init_from) if settings.init_from else []
    model = model.to(where, memory_format=torch.channels_last)
    optimizer, scheduler = make_optimizer(model, settings)
    width = config.sheet_shape[1]
    train_set = SnippetDataset(train_pieces, width_px=width, seed=settings.seed,
                               lag_frames=settings.lag_frames)
    valid_set = SnippetDataset(valid_pieces, width_px=width, seed=settings.seed + 1)
    digest = data_hash(train_pieces, valid_pieces)
    run = {"history": [], "best": None, "elapsed_s": 0.0}
    if resume:
        run = _restore(resume_path(out_path), model, optimizer, scheduler, config, settings,
                       digest)
    card = {"command": command, "data_hash": digest, "n_train_pieces": len(train_pieces),
            "n_valid_pieces": len(valid_pieces), "n_train_examples": len(train_set),
            "n_valid_examples": len(valid_set), "model": config.as_dict(),
            "parameters": count_parameters(model), "settings": settings.as_dict(),
            "device": str(where), "threads": torch.get_num_threads(),
            "init_from": settings.init_from and {
                "sha256": hashlib.sha256(Path(settings.init_from).read_bytes()).hexdigest(),
                "entries_copied": len(transferred)},
            "torch": torch.__version__}
    for epoch in range(len(run["history"]) + 1, settings.epochs + 1):
        start = time.perf_counter()
        lr = optimizer.param_groups[0]["lr"]
        train_loss = train_epoch(model, train_set, optimizer, settings, epoch)
        valid = evaluate(model, valid_set, settings.spread, settings.batch_size,
                         settings.progress)
        scheduler.step()
        row = {"epoch": epoch, "lr": lr, "train_loss": train_loss,
               **{f"valid_{k}": v for k, v in valid.items()}}
        run["history"].append(row)
        best = run["best"]
        if best is None or row["valid_within_one_bucket"] > best["valid_within_one_bucket"]:
            run["best"] = row
            save_checkpoint(out_path, model, {"best": row, "data_hash": digest,
                                              "settings": settings.as_dict()})
        run["elapsed_s"] += time.perf_counter() - start
        atomic_save({"model": model.state_dict(), "optimizer": optimizer.state_dict(),
                     "scheduler": scheduler.state_dict(), "config": config.as_dict(),
                     "settings": settings.as_dict(), "data_hash": digest, **run},
                    resume_path(out_path))
        write_card(card_path(out_path), card, run)
        if settings.progress:
            tqdm.write(_format_row(row))
    return run["history"]


def _format_row(row: dict) -> str:
    """One line per epoch for the terminal."""
    return (f"epoch {row['epoch']:3d}  lr {row['lr']:.0e}  train loss {row['train_loss']:.3f}  "
            f"valid loss {row['valid_loss']:.3f}  within one bucket "
            f"{row['valid_within_one_bucket']:.1%}  |error| {row['valid_mae_px']:.1f} px")


def write_card(path: Path, card: dict, run: dict) -> None:
    """Write the JSON card of a run: its description, curves and metrics so far (chapters 4
    and 7).

    Parameters
    ----------
    path : pathlib.Path
        The card (:func:`card_path` of the checkpoint); replaced atomically.
    card : dict
        What describes the run: command, data hash, model, settings.
    run : dict
        ``history`` (one dict per epoch), ``best`` (the kept epoch's dict) and ``elapsed_s``.
    """
    history = run["history"]
    full = {**card, "epochs_done": len(history), "best": run["best"],
            "final": history[-1] if history else None,
            "training_time_s": round(run["elapsed_s"], 1),
            "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "history": history}
    tmp = path.with_name(f".partial-{path.name}")
    tmp.write_text(json.dumps(full, indent=1) + "\n")
    tmp.replace(path)
