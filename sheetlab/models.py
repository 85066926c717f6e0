"""The multimodal convolutional network that matches audio to sheet positions (chapter 4).

Two VGG-style pathways, one per modality, as in the talk's architecture table:

* the **sheet pathway** reads the sheet window (``1 × H × 390``: H = 40 px for one staff,
  112 px for a grand staff);
* the **spectrogram pathway** reads the excerpt (``1 × 136 × 40``: 136 bands, 40 frames);

each is a stack of blocks ``(3×3 conv, BN, ReLU) × 2, 2×2 max-pool`` (optionally after a
stride-2 stem convolution that halves the input), flattened into ``dense, BN, ReLU,
dropout``. The two feature vectors are **concatenated** and pass two more
``dense, BN, ReLU, dropout`` layers and a B-way output layer whose **logits** the loss and the
localisation turn into bucket probabilities (:mod:`sheetlab.targets`).

The sheet pathway never sees the audio: :meth:`AudioSheetNet.sheet_features` depends on the
sheet window only, so a score follower computes it once per window position and reuses it for
every audio frame (chapter 5); :meth:`AudioSheetNet.forward` is
``head(sheet_features(sheet), spec_features(spec))``.

Two named configurations (:func:`config`):

``talk``
    the widths of the 2016 paper: blocks of 64, 128 and 256 channels in both pathways, dense
    layers of 1024 units, drop-out 0.5. About 91 M parameters for one staff and 204 M for a
    grand staff (the flattened sheet features feed a 1024-unit layer): a GPU model, far too
    slow to train on a laptop CPU.
``light``
    sized for a 2-core CPU: a stride-2 stem and blocks of 16, 32 and 64 channels, dense layers
    of 256 (pathways) and 512 (head) units: 1.7 M parameters for one staff and 3.7 M for a
    grand staff, a few hundred training examples per second at batch 100 on two cores (the
    convolutions cost the time; the dense layers cost the parameters). Its drop-out layers are
    kept but set to 0: this small model underfits (training and validation loss stay equal),
    and drop-out of 0.1 or 0.3 only slowed its learning (8 epochs on 100 folk songs: about
    15-19 % instead of 21-25 % of validation onsets within one bucket, with the earlier
    128/256-unit dense layers).
"""

from __future__ import annotations

import io
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.nn.utils.fusion import fuse_conv_bn_eval, fuse_linear_bn_eval

from sheetlab.cache import write_atomically
from sheetlab.dataset import CONTEXT_FRAMES, WINDOW_PX
from sheetlab.engrave import EngraveSettings
from sheetlab.spectrogram import SpectrogramSettings
from sheetlab.targets import N_BUCKETS

_ENGRAVE = EngraveSettings()
SHEET_HEIGHT_PX = {"mono": round(_ENGRAVE.mono_strip_height_ss * _ENGRAVE.strip_staff_space_px),
                   "piano": round(_ENGRAVE.piano_strip_height_ss * _ENGRAVE.strip_staff_space_px)}
"""Height of the sheet window per kind of piece: the default strip heights of
:mod:`sheetlab.engrave` (40 px for one staff, 112 px for a grand staff)."""

SPEC_BANDS = SpectrogramSettings().n_bands
"""Bands of the default log spectrogram (24 per octave from 30 Hz: the talk's 136)."""

WEIGHTS_DIR = Path(__file__).with_name("weights")
"""Where the shipped pretrained weights live (``<kind>-<config>.pt`` with a JSON card)."""

CONFIG_NAMES = ("light", "talk")
"""The named model configurations of :func:`config`."""


class _SizesAsDict:
    """``as_dict`` / ``from_dict`` of the frozen dataclasses that hold a network's sizes."""

    def as_dict(self) -> dict:
        """All fields as plain Python values (JSON-serialisable)."""
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict):
        """The inverse of :meth:`as_dict` (lists back to tuples)."""
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in values.items()})


@dataclass(frozen=True)
class ModelConfig(_SizesAsDict):
    """Every size of an :class:`AudioSheetNet` (chapter 4).

    Attributes
    ----------
    name : str
        ``"light"``, ``"talk"`` or a name of one's own.
    kind : str
        ``"mono"`` or ``"piano"``: the kind of piece (it sets the sheet height).
    sheet_shape : tuple of int
        ``(H, W)`` of the sheet window in px.
    spec_shape : tuple of int
        ``(n_bands, n_frames)`` of the spectrogram excerpt.
    sheet_channels, spec_channels : tuple of int
        Output channels of each conv block of the pathway (one 2×2 max-pool per block).
    stem_stride : int
        1: no stem; 2: a 3×3, stride-2 conv + BN + ReLU before the blocks, with as many
        channels as the first block.
    pathway_units : int
        Units of the dense layer that ends each pathway.
    head_units : int
        Units of each of the two dense layers after the concatenation.
    dropout : float
        Drop-out probability after every dense layer.
    n_buckets : int
        Outputs ``B`` (buckets of the sheet window).
    """

    name: str
    kind: str
    sheet_shape: tuple[int, int]
    spec_shape: tuple[int, int]
    sheet_channels: tuple[int, ...]
    spec_channels: tuple[int, ...]
    stem_stride: int
    pathway_units: int
    head_units: int
    dropout: float
    n_buckets: int = N_BUCKETS


_SIZES = {
    "talk": dict(sheet_channels=(64, 128, 256), spec_channels=(64, 128, 256), stem_stride=1,
                 pathway_units=1024, head_units=1024, dropout=0.5),
    "light": dict(sheet_channels=(16, 32, 64), spec_channels=(16, 32, 64), stem_stride=2,
                  pathway_units=256, head_units=512, dropout=0.0),
}


def config(name: str = "light", kind: str = "mono", n_buckets: int = N_BUCKETS) -> ModelConfig:
    """A named model configuration for one kind of piece (chapter 4).

    Parameters
    ----------
    name : {"light", "talk"}
        ``light``: for a CPU; ``talk``: the widths of the 2016 paper (module docstring).
    kind : {"mono", "piano"}
        Sets the sheet window's height (40 or 112 px).
    n_buckets : int
        Buckets ``B`` of the output layer.

    Returns
    -------
    ModelConfig
    """
    if name not in _SIZES:
        raise ValueError(f"unknown model config {name!r}; known: {', '.join(CONFIG_NAMES)}")
    if kind not in SHEET_HEIGHT_PX:
        raise ValueError(f"unknown kind {kind!r}; known: {', '.join(SHEET_HEIGHT_PX)}")
    return ModelConfig(name=name, kind=kind, sheet_shape=(SHEET_HEIGHT_PX[kind], WINDOW_PX),
                       spec_shape=(SPEC_BANDS, CONTEXT_FRAMES), n_buckets=n_buckets,
                       **_SIZES[name])


def conv_output_size(height: int, width: int, n_blocks: int,
                     stem_stride: int = 1) -> tuple[int, int]:
    """Height and width of a pathway's feature maps after its stem and blocks (chapter 4).

    A 3×3 convolution with padding 1 and stride ``s`` maps ``n`` to ``floor((n - 1) / s) + 1``
    (``n`` for ``s = 1``); each block's 2×2 max-pool maps ``n`` to ``floor(n / 2)``.

    Parameters
    ----------
    height, width : int
        Input size in px (or bands × frames).
    n_blocks : int
        Conv blocks, each ending in a 2×2 max-pool.
    stem_stride : int
        Stride of the stem convolution (1: no stem).

    Returns
    -------
    tuple of int
        ``(height, width)`` of the last block's output.
    """
    sizes = [(n - 1) // stem_stride + 1 for n in (height, width)]
    for _ in range(n_blocks):
        sizes = [n // 2 for n in sizes]
    return sizes[0], sizes[1]


def _conv_bn_relu(in_channels: int, out_channels: int, stride: int = 1) -> list[nn.Module]:
    """A 3×3 convolution (padding 1, no bias: the BN has one), batch norm and ReLU."""
    return [nn.Conv2d(in_channels, out_channels, 3, stride=stride, padding=1, bias=False),
            nn.BatchNorm2d(out_channels), nn.ReLU(inplace=True)]


def _dense_bn_relu(in_features: int, out_features: int, dropout: float) -> list[nn.Module]:
    """A dense layer (no bias), batch norm, ReLU and drop-out."""
    return [nn.Linear(in_features, out_features, bias=False), nn.BatchNorm1d(out_features),
            nn.ReLU(inplace=True), nn.Dropout(dropout)]


def _pathway(input_shape: tuple[int, int], channels: tuple[int, ...], stem_stride: int,
             units: int, dropout: float) -> nn.Sequential:
    """One VGG-style pathway: ``(1, H, W)`` input to ``units`` features."""
    layers: list[nn.Module] = []
    in_channels = 1
    if stem_stride != 1:
        layers += _conv_bn_relu(1, channels[0], stride=stem_stride)
        in_channels = channels[0]
    for out_channels in channels:
        layers += _conv_bn_relu(in_channels, out_channels)
        layers += _conv_bn_relu(out_channels, out_channels)
        layers.append(nn.MaxPool2d(2))
        in_channels = out_channels
    height, width = conv_output_size(*input_shape, len(channels), stem_stride)
    if height < 1 or width < 1:
        raise ValueError(f"input {input_shape} is too small for {len(channels)} blocks")
    layers.append(nn.Flatten())
    layers += _dense_bn_relu(in_channels * height * width, units, dropout)
    return nn.Sequential(*layers)


class AudioSheetNet(nn.Module):
    """The two-pathway network of the talk: sheet window + spectrogram -> bucket logits
    (chapter 4).

    Parameters
    ----------
    config : ModelConfig
        Its sizes (:func:`config`).

    Attributes
    ----------
    config : ModelConfig
    metadata : dict
        What :func:`load_checkpoint` read with the weights (empty for a new model).
    """

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.config = config
        self.metadata: dict = {}
        self.sheet_pathway = _pathway(config.sheet_shape, config.sheet_channels,
                                      config.stem_stride, config.pathway_units, config.dropout)
        self.spec_pathway = _pathway(config.spec_shape, config.spec_channels,
                                     config.stem_stride, config.pathway_units, config.dropout)
        self.head_layers = nn.Sequential(
            *_dense_bn_relu(2 * config.pathway_units, config.head_units, config.dropout),
            *_dense_bn_relu(config.head_units, config.head_units, config.dropout),
            nn.Linear(config.head_units, config.n_buckets))

    def sheet_features(self, sheet: torch.Tensor) -> torch.Tensor:
        """Features of sheet windows, independent of the audio.

        Parameters
        ----------
        sheet : torch.Tensor
            ``(N, 1, H, W) float32`` ink in [0, 1].

        Returns
        -------
        torch.Tensor
            ``(N, pathway_units)``.
        """
        return self.sheet_pathway(sheet)

    def spec_features(self, spec: torch.Tensor) -> torch.Tensor:
        """Features of spectrogram excerpts.

        Parameters
        ----------
        spec : torch.Tensor
            ``(N, 1, n_bands, n_frames) float32`` log spectrogram excerpts.

        Returns
        -------
        torch.Tensor
            ``(N, pathway_units)``.
        """
        return self.spec_pathway(spec)

    def head(self, sheet_feat: torch.Tensor, spec_feat: torch.Tensor) -> torch.Tensor:
        """Concatenate both modalities' features and map them to bucket logits.

        Parameters
        ----------
        sheet_feat, spec_feat : torch.Tensor
            ``(N, pathway_units)`` each, from :meth:`sheet_features` and :meth:`spec_features`.

        Returns
        -------
        torch.Tensor
            ``(N, B)`` logits; their soft-max is the bucket distribution.
        """
        return self.head_layers(torch.cat([sheet_feat, spec_feat], dim=1))

    def forward(self, sheet: torch.Tensor, spec: torch.Tensor) -> torch.Tensor:
        """``head(sheet_features(sheet), spec_features(spec))``: ``(N, B)`` logits."""
        return self.head(self.sheet_features(sheet), self.spec_features(spec))


@dataclass(frozen=True)
class FoldedHead:
    """The merging head of an :class:`AudioSheetNet` in eval mode, as numpy affine maps
    (chapter 5).

    In eval mode every ``dense, BN, ReLU, dropout`` layer is an affine map followed by a ReLU
    (the batch norm's running statistics and scale fold into the dense layer's weights, and
    drop-out is the identity). The first layer acts on the concatenation ``[sheet, spec]``, so
    it splits into a sheet half and a spectrogram half: a score follower computes
    :meth:`sheet_part` once per window and :meth:`spec_part` once per frame, in batches, and per
    frame only adds the two and runs the remaining small layers (:meth:`logits`).

    Attributes
    ----------
    sheet_weight : numpy.ndarray
        ``(U, D) float32``: the first layer's columns for the sheet features.
    spec_weight : numpy.ndarray
        ``(U, D) float32``: its columns for the spectrogram features.
    bias : numpy.ndarray
        ``(U,) float32``: its folded bias.
    layers : tuple of (numpy.ndarray, numpy.ndarray)
        The remaining layers' ``(weight (out, in), bias (out,))``; a ReLU follows every one but
        the last.
    """

    sheet_weight: np.ndarray
    spec_weight: np.ndarray
    bias: np.ndarray
    layers: tuple[tuple[np.ndarray, np.ndarray], ...]

    def sheet_part(self, sheet_feat: np.ndarray) -> np.ndarray:
        """``(N, U)`` first-layer pre-activations from ``(N, D)`` sheet features (bias included)."""
        return sheet_feat @ self.sheet_weight.T + self.bias

    def spec_part(self, spec_feat: np.ndarray) -> np.ndarray:
        """``(N, U)`` first-layer pre-activations from ``(N, D)`` spectrogram features."""
        return spec_feat @ self.spec_weight.T

    def logits(self, sheet_part: np.ndarray, spec_part: np.ndarray) -> np.ndarray:
        """``(..., B)`` logits from the two halves' ``(..., U)`` pre-activations."""
        hidden = np.maximum(sheet_part + spec_part, 0)
        for k, (weight, bias) in enumerate(self.layers):
            hidden = hidden @ weight.T + bias
            if k < len(self.layers) - 1:
                hidden = np.maximum(hidden, 0)
        return hidden


def fold_head(model: AudioSheetNet) -> FoldedHead:
    """The eval-mode head of a model as a :class:`FoldedHead` (chapter 5).

    Parameters
    ----------
    model : AudioSheetNet
        The model; its batch norms' running statistics are used (as in eval mode).

    Returns
    -------
    FoldedHead
        Its :meth:`~FoldedHead.logits` equal ``model.head`` in eval mode up to rounding.
    """
    affine: list[tuple[np.ndarray, np.ndarray]] = []
    for layer in model.head_layers:
        if isinstance(layer, nn.Linear):
            weight = layer.weight.detach().double().cpu().numpy()
            bias = (layer.bias.detach().double().cpu().numpy() if layer.bias is not None
                    else np.zeros(weight.shape[0]))
            affine.append((weight, bias))
        elif isinstance(layer, nn.BatchNorm1d):
            scale = (layer.weight / torch.sqrt(layer.running_var + layer.eps)).detach().double()
            shift = layer.bias.detach().double() - scale * layer.running_mean.double()
            weight, bias = affine[-1]
            scale, shift = scale.cpu().numpy(), shift.cpu().numpy()
            affine[-1] = (weight * scale[:, None], bias * scale + shift)
    (first, first_bias), *rest = [(w.astype(np.float32), b.astype(np.float32))
                                  for w, b in affine]
    units = model.config.pathway_units
    return FoldedHead(first[:, :units], first[:, units:], first_bias, tuple(rest))


def fold_batch_norm(pathway: nn.Sequential) -> nn.Sequential:
    """A copy of an eval-mode pathway with every batch norm folded into the layer before it
    (chapter 5).

    In eval mode a batch norm is a per-channel affine map with its running statistics, so a
    convolution or dense layer followed by one is a single convolution or dense layer with
    scaled weights and a bias (:func:`torch.nn.utils.fusion.fuse_conv_bn_eval`). The copy
    computes the same features up to float rounding with one pass over each layer's output
    fewer: the score followers run it on every window and every frame of a piece.

    Parameters
    ----------
    pathway : torch.nn.Sequential
        A pathway of :class:`AudioSheetNet` (or any sequence in which a batch norm follows
        a convolution or dense layer), in eval mode; it is not changed.

    Returns
    -------
    torch.nn.Sequential
        The folded copy, in eval mode, on the pathway's device and in channels-last order.

    Raises
    ------
    ValueError
        If the pathway is in training mode (its batch norms then use the batch's statistics).
    """
    if pathway.training:
        raise ValueError("fold_batch_norm needs a pathway in eval mode (call .eval() first)")
    layers: list[nn.Module] = []
    for layer in pathway:
        previous = layers[-1] if layers else None
        if isinstance(layer, nn.BatchNorm2d) and isinstance(previous, nn.Conv2d):
            layers[-1] = fuse_conv_bn_eval(previous, layer)
        elif isinstance(layer, nn.BatchNorm1d) and isinstance(previous, nn.Linear):
            layers[-1] = fuse_linear_bn_eval(previous, layer)
        else:
            layers.append(layer)
    return nn.Sequential(*layers).eval().to(memory_format=torch.channels_last)


def count_parameters(model: nn.Module) -> int:
    """Number of trainable parameters (chapter 4)."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def device() -> torch.device:
    """The device to compute on: the GPU when there is one, else the CPU (chapter 4)."""
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def to_device(batch: torch.Tensor, where: torch.device) -> torch.Tensor:
    """A batch of images ``(N, C, H, W)`` on ``where``, in channels-last memory order (chapter 4).

    The trainers keep models in channels-last order (``model.to(memory_format=
    torch.channels_last)``), and so do :func:`load_checkpoint` and the retrieval loader: in
    that order oneDNN's CPU convolutions run about twice as fast for these narrow networks in
    training, and about 1.3 times as fast when following a piece. The inputs follow. The
    values are unchanged.
    """
    return batch.to(where, memory_format=torch.channels_last)


def atomic_save(obj: object, path: str | Path) -> None:
    """``torch.save`` to a temporary file renamed into place: never a partial file (chapter 4).

    Parameters
    ----------
    obj : object
        What to save (tensors, state dicts, plain values).
    path : str or pathlib.Path
        Destination; its directory is created.
    """
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    write_atomically(Path(path), buffer.getvalue())


def save_checkpoint(path: str | Path, model: AudioSheetNet, metadata: dict | None = None) -> None:
    """Write a model's configuration, weights and metadata to a file (chapter 4).

    Parameters
    ----------
    path : str or pathlib.Path
        Destination (``.pt``); its directory is created. Written by :func:`atomic_save`, so a
        reader never sees a partial checkpoint.
    model : AudioSheetNet
        The model.
    metadata : dict, optional
        Plain values (numbers, strings, lists, dicts) stored alongside, e.g. metrics.
    """
    state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    atomic_save({"config": model.config.as_dict(), "state_dict": state,
                 "metadata": metadata or {}}, path)


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> AudioSheetNet:
    """A model from a file written by :func:`save_checkpoint`, in eval mode (chapter 4).

    Parameters
    ----------
    path : str or pathlib.Path
        The checkpoint.
    map_location : str or torch.device
        Where to put the weights.

    Returns
    -------
    AudioSheetNet
        With ``metadata`` set to what was stored, in channels-last order (:func:`to_device`).
    """
    blob = torch.load(Path(path), map_location=map_location, weights_only=True)
    model = AudioSheetNet(ModelConfig.from_dict(blob["config"]))
    model.load_state_dict(blob["state_dict"])
    model.metadata = blob["metadata"]
    return model.to(map_location, memory_format=torch.channels_last).eval()


def transfer_weights(model: AudioSheetNet, source: str | Path) -> list[str]:
    """Initialise a model from another model's checkpoint wherever names and shapes agree
    (chapter 4).

    The convolutions of a pathway do not depend on the input's height, so a grand-staff
    (piano) model can start from a one-staff (mono) model: every convolution, batch norm and
    head layer is copied; the dense layer after the sheet pathway's flattening, whose input
    size depends on the height, keeps its random initialisation.

    Parameters
    ----------
    model : AudioSheetNet
        The model to initialise (changed in place).
    source : str or pathlib.Path
        A checkpoint written by :func:`save_checkpoint`.

    Returns
    -------
    list of str
        The names of the state entries that were copied.
    """
    path = Path(source)
    if not path.exists():
        raise FileNotFoundError(f"{path}: no checkpoint to initialise from")
    theirs = torch.load(path, map_location="cpu", weights_only=True)["state_dict"]
    ours = model.state_dict()
    copied = {k: v for k, v in theirs.items() if k in ours and ours[k].shape == v.shape}
    if not set(copied) & {name for name, _ in model.named_parameters()}:
        raise ValueError(f"{path}: no parameter of this checkpoint fits the model")
    model.load_state_dict({**ours, **copied})
    return sorted(copied)


def weights_path(kind: str, config_name: str = "light") -> Path:
    """Where the shipped weights of a kind and configuration live (chapter 4).

    Returns
    -------
    pathlib.Path
        ``sheetlab/weights/<kind>-<config_name>.pt``.
    """
    return WEIGHTS_DIR / f"{kind}-{config_name}.pt"


def load_pretrained(kind: str, config: str = "light",
                    map_location: str | torch.device = "cpu") -> AudioSheetNet:
    """The shipped pretrained model of a kind of piece, in eval mode (chapter 4).

    Parameters
    ----------
    kind : {"mono", "piano"}
    config : str
        The configuration it was trained with ("light" or "talk"), or the name of another
        shipped file of the kind, such as "light-mozart" (``<kind>-<config>.pt``).
    map_location : str or torch.device
        Where to put the weights.

    Returns
    -------
    AudioSheetNet

    Raises
    ------
    FileNotFoundError
        If the weights file is absent; the message names it and the command that makes it.
    """
    path = weights_path(kind, config)
    if not path.exists():
        raise FileNotFoundError(
            f"{path}: no pretrained {kind}/{config} weights; make them with "
            f"'sheetlab train --kind {kind} --config {config}'")
    return load_checkpoint(path, map_location)


# --------------------------------------------------------------------------- retrieval (chapter 9)

SNIPPET_PX = 160
"""Width of a retrieval sheet snippet in strip px (about 4 s of music at the piano pieces'
median 40 px per second of performance)."""

EXCERPT_FRAMES = 100
"""Frames of a retrieval audio excerpt (3.2 s at 31.25 fps), centred on the snippet's position."""

EMBEDDING_DIM = 32
"""Dimension of the shared audio–sheet space (the talk: a 32-dimensional embedding)."""


@dataclass(frozen=True)
class RetrievalConfig(_SizesAsDict):
    """Every size of a :class:`RetrievalNet` (chapter 9).

    Attributes
    ----------
    name : str
        ``"light"`` or a name of one's own.
    kind : str
        ``"mono"`` or ``"piano"``: the kind of piece (it sets the snippet height).
    sheet_shape : tuple of int
        ``(H, W)`` of the sheet snippet in px.
    spec_shape : tuple of int
        ``(n_bands, n_frames)`` of the audio excerpt.
    sheet_channels, spec_channels : tuple of int
        Output channels of each conv block (one 2×2 max-pool per block).
    stem_stride : int
        1: no stem; 2: a stride-2 stem convolution (as in :class:`ModelConfig`).
    pathway_units : int
        Units of the ``dense, BN, ReLU`` layer of each pathway.
    embedding_dim : int
        Size of the vector each pathway ends in (a linear layer after the dense one).
    dropout : float
        Drop-out after the dense layers.
    cca : bool
        Whether the embedding ends in the CCA projection layer (else: the learned linear
        layers alone, the baseline).
    cca_ridge : float
        Ridge added to the diagonal of both covariance matrices of the CCA layer (absolute;
        the pathways' outputs have variances of about 0.3). 0.1 rather than the 0.001 of the
        CCA layer's authors: with 100 pairs per batch in 32 dimensions the batch covariances
        are noisy, and on the piano pieces (6 epochs of 8,000 pairs) 0.1 reached a validation
        MRR of 0.73 against 0.65 for 0.001.
    """

    name: str
    kind: str
    sheet_shape: tuple[int, int]
    spec_shape: tuple[int, int]
    sheet_channels: tuple[int, ...]
    spec_channels: tuple[int, ...]
    stem_stride: int
    pathway_units: int
    embedding_dim: int = EMBEDDING_DIM
    dropout: float = 0.0
    cca: bool = True
    cca_ridge: float = 0.1


_RETRIEVAL_SIZES = {
    "light": dict(sheet_channels=(16, 32, 64), spec_channels=(16, 32, 64), stem_stride=2,
                  pathway_units=128),
}


def retrieval_config(name: str = "light", kind: str = "piano", *, cca: bool = True,
                     snippet_px: int = SNIPPET_PX, excerpt_frames: int = EXCERPT_FRAMES,
                     cca_ridge: float = 0.1) -> RetrievalConfig:
    """A named configuration of the retrieval network (chapter 9).

    Parameters
    ----------
    name : {"light"}
        The CPU-sized pathways of :func:`config`'s ``light`` (a stride-2 stem, blocks of 16, 32
        and 64 channels), each ending in 128 dense units and a 32-d linear layer.
    kind : {"mono", "piano"}
        Sets the snippet's height (40 or 112 px).
    cca : bool
        With the CCA layer (True) or the linear-embedding baseline (False).
    snippet_px : int
        Snippet width in px.
    excerpt_frames : int
        Excerpt length in frames.
    cca_ridge : float
        Ridge of the CCA layer's covariances.

    Returns
    -------
    RetrievalConfig
    """
    if name not in _RETRIEVAL_SIZES:
        raise ValueError(f"unknown retrieval config {name!r}; known: "
                         f"{', '.join(_RETRIEVAL_SIZES)}")
    if kind not in SHEET_HEIGHT_PX:
        raise ValueError(f"unknown kind {kind!r}; known: {', '.join(SHEET_HEIGHT_PX)}")
    return RetrievalConfig(name=name, kind=kind, sheet_shape=(SHEET_HEIGHT_PX[kind], snippet_px),
                           spec_shape=(SPEC_BANDS, excerpt_frames), cca=cca, cca_ridge=cca_ridge,
                           **_RETRIEVAL_SIZES[name])


class RetrievalNet(nn.Module):
    """The two pathways of the retrieval network, each ending in a ``embedding_dim`` vector
    (chapter 9).

    Each pathway is the VGG-style stack of :class:`AudioSheetNet` (``_pathway``: conv blocks,
    flatten, ``dense, BN, ReLU, dropout``) followed by a linear layer to ``embedding_dim``
    units. Unlike :class:`AudioSheetNet` nothing merges the two: each modality is embedded on
    its own, so every snippet of a collection is embedded once and compared with every audio
    query. The CCA layer and the L2 normalisation come after
    (:class:`sheetlab.retrieval.Embedding`).

    Parameters
    ----------
    config : RetrievalConfig
        Its sizes (:func:`retrieval_config`).
    """

    def __init__(self, config: RetrievalConfig) -> None:
        super().__init__()
        self.config = config
        self.sheet_pathway = nn.Sequential(
            _pathway(config.sheet_shape, config.sheet_channels, config.stem_stride,
                     config.pathway_units, config.dropout),
            nn.Linear(config.pathway_units, config.embedding_dim))
        self.spec_pathway = nn.Sequential(
            _pathway(config.spec_shape, config.spec_channels, config.stem_stride,
                     config.pathway_units, config.dropout),
            nn.Linear(config.pathway_units, config.embedding_dim))

    def sheet_features(self, sheet: torch.Tensor) -> torch.Tensor:
        """``(N, embedding_dim)`` vectors of ``(N, 1, H, W) float32`` snippets (ink in [0, 1])."""
        return self.sheet_pathway(sheet)

    def spec_features(self, spec: torch.Tensor) -> torch.Tensor:
        """``(N, embedding_dim)`` vectors of ``(N, 1, n_bands, n_frames) float32`` excerpts."""
        return self.spec_pathway(spec)

    def forward(self, sheet: torch.Tensor, spec: torch.Tensor
                ) -> tuple[torch.Tensor, torch.Tensor]:
        """Both modalities' vectors: ``(sheet_features(sheet), spec_features(spec))``."""
        return self.sheet_features(sheet), self.spec_features(spec)
