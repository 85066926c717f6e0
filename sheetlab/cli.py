"""The ``sheetlab`` command: one subcommand per task (``sheetlab grade FOLDER``, ...).

Each subcommand is added by a function ``_add_<name>(subparsers)`` listed in ``_COMMANDS``; it
sets ``handler``, a function of the parsed arguments that returns the exit code. Handlers
import what they need, so ``sheetlab --help`` stays fast.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from sheetlab import __version__


def _grade(args: argparse.Namespace) -> int:
    """``sheetlab grade``: grade a folder of submitted chapter notebooks."""
    from sheetlab.grading import grade_folder

    folder = Path(args.folder)
    if not folder.is_dir():
        print(f"sheetlab grade: {folder} is not a folder", file=sys.stderr)
        return 2
    csv_path = Path(args.csv) if args.csv else folder / "grades.csv"
    try:
        rows = grade_folder(folder, csv_path=csv_path, timeout_s=args.timeout)
    except ModuleNotFoundError as error:
        print(f"sheetlab grade: {error}", file=sys.stderr)
        return 1
    if not rows:
        return 1
    print(f"grades written to {csv_path}")
    return 0


def _add_grade(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "grade", help="grade a folder of submitted chapter notebooks",
        description="Execute every *.ipynb in FOLDER (SHEETLAB_FAST=1), run the checks of "
                    "its chapter's exercises on the student's functions, print a table of "
                    "scores and write it as CSV.")
    parser.add_argument("folder", metavar="FOLDER", help="folder of submitted .ipynb files")
    parser.add_argument("--csv", metavar="PATH",
                        help="where to write the grades (default: FOLDER/grades.csv)")
    parser.add_argument("--timeout", metavar="S", type=float, default=600.0,
                        help="seconds any one cell may run (default: 600)")
    parser.set_defaults(handler=_grade)


def _selected_pieces(args: argparse.Namespace) -> list:
    """The pieces named by ``--kind``, ``--split``, ``--subset`` and ``--limit``."""
    from sheetlab.corpus import pieces

    kinds = ("mono", "piano") if args.kind == "all" else (args.kind,)
    return [p for kind in kinds
            for p in pieces(kind, args.split, args.limit, subset=args.subset)]


def _data_build(args: argparse.Namespace) -> int:
    """``sheetlab data build``: fill the cache, resuming; failures reported at the end."""
    from sheetlab.databuild import build

    report = build(_selected_pieces(args), workers=args.workers)
    print(report.summary())
    return 1 if report.failed and not (report.built or report.cached) else 0


def _data_info(args: argparse.Namespace) -> int:
    """``sheetlab data info``: the table of what the cache holds per split."""
    from sheetlab.databuild import format_table, info

    print(format_table(info(_selected_pieces(args))))
    return 0


def _add_data(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "data", help="build the data cache (scores, audio, spectrograms, correspondences)",
        description="Engrave, perform and analyse the pieces of the corpus into the cache "
                    "(SHEETLAB_DATA, default ~/.cache/sheetlab), or summarise what it holds.")
    actions = parser.add_subparsers(metavar="ACTION", required=True)
    for name, handler, text in [("build", _data_build, "build missing pieces (resumes)"),
                                ("info", _data_info, "print pieces, pages, note heads, "
                                                     "correspondences and audio hours per split")]:
        action = actions.add_parser(name, help=text, description=text)
        action.add_argument("--kind", choices=("mono", "piano", "all"), default="piano",
                            help="which pieces (default: piano)")
        action.add_argument("--split", choices=("train", "valid", "test"),
                            help="one split only (default: all)")
        _add_subset_option(action)
        action.add_argument("--limit", type=int, help="at most this many pieces per kind")
        if name == "build":
            action.add_argument("--workers", type=int, default=None,
                                help="worker processes (default: one per core)")
        action.set_defaults(handler=handler)


def _add_run_options(parser: argparse.ArgumentParser, out_default: str) -> None:
    """The options every training subcommand shares: piece limits, output, threads, seed,
    workers (``out_default`` describes where ``--out`` writes without it)."""
    parser.add_argument("--train-limit", type=int, default=None,
                        help="at most this many training pieces (default: all of the subset)")
    parser.add_argument("--valid-limit", type=int, default=None,
                        help="at most this many validation pieces (default: all of the subset)")
    parser.add_argument("--out", metavar="PATH", default=None,
                        help=f"checkpoint to write (default: {out_default})")
    parser.add_argument("--threads", type=int, default=None,
                        help="torch threads (default: torch's choice)")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    parser.add_argument("--workers", type=int, default=None,
                        help="processes building missing data (default: one per core)")


def _add_subset_option(parser: argparse.ArgumentParser) -> None:
    """``--subset`` of the subcommands that choose catalogue pieces."""
    parser.add_argument("--subset", choices=("default", "all"), default="default",
                        help="the default CPU-sized subset or the whole catalogue")


def _add_bf16_option(parser: argparse.ArgumentParser) -> None:
    """``--bf16`` of the subcommands that train convolutional pathways."""
    parser.add_argument("--bf16", action="store_true",
                        help="compute the forward pass in bfloat16 (about twice as fast on "
                             "CPUs with AVX-512 BF16 and on GPUs; slower on other CPUs)")


def _train_command(args: argparse.Namespace, subcommand: str = "train") -> str:
    """The ``sheetlab SUBCOMMAND`` command line of parsed arguments, every setting spelled out."""
    import shlex

    parts = ["sheetlab", subcommand]
    for name, value in vars(args).items():
        if name in ("handler", "workers") or value is None or value is False:
            continue
        parts += [f"--{name.replace('_', '-')}"] + ([] if value is True else [str(value)])
    return shlex.join(parts)


def _train(args: argparse.Namespace) -> int:
    """``sheetlab train``: train a model on the corpus, writing checkpoint, card and state."""
    from sheetlab.augment import conditions
    from sheetlab.corpus import composer_split, continuations, pieces
    from sheetlab.dataset import Condition
    from sheetlab.models import config, weights_path
    from sheetlab.training import TrainSettings, card_path, load_pieces, train

    settings = TrainSettings(epochs=args.epochs, batch_size=args.batch_size,
                             optimizer=args.optimizer, lr=args.lr,
                             lr_step_epochs=args.lr_step, seed=args.seed, threads=args.threads,
                             init_from=args.init_from, lag_frames=args.lag_frames,
                             bf16=args.bf16)
    if args.composer:
        if args.kind != "piano":
            print("sheetlab train: --composer needs --kind piano", file=sys.stderr)
            return 2
        try:
            split = composer_split(args.composer, subset=args.subset)
        except ValueError as error:
            print(f"sheetlab train: {error}", file=sys.stderr)
            return 2
        chosen = {"train": split["train"][:args.train_limit],
                  "valid": split["valid"][:args.valid_limit]}
    else:
        chosen = {part: pieces(args.kind, part, limit, subset=args.subset)
                  for part, limit in (("train", args.train_limit), ("valid", args.valid_limit))}
    try:
        augmented = conditions(args.augment)
    except ValueError as error:
        print(f"sheetlab train: --augment: {error}", file=sys.stderr)
        return 2
    try:
        chosen["train"] = [*chosen["train"], *continuations(chosen["train"], args.continuations)]
    except ValueError as error:
        print(f"sheetlab train: --continuations: {error}", file=sys.stderr)
        return 2
    train_data = [piece for condition in [Condition(), *augmented]
                  for piece in load_pieces(chosen["train"], condition=condition,
                                           workers=args.workers)]
    valid_data = load_pieces(chosen["valid"], workers=args.workers)
    out = Path(args.out) if args.out else weights_path(args.kind, args.config)
    try:
        history = train(train_data, valid_data, config(args.config, args.kind), settings, out,
                        resume=args.resume, command=_train_command(args))
    except (FileNotFoundError, ValueError) as error:
        print(f"sheetlab train: {error}", file=sys.stderr)
        return 1
    best = max(history, key=lambda row: row["valid_within_one_bucket"])
    print(f"best epoch {best['epoch']}: {best['valid_within_one_bucket']:.1%} of validation "
          f"onsets within one bucket; model {out}, card {card_path(out)}")
    return 0


def _add_train(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "train", help="train the audio-sheet network (chapter 4) and write its weights",
        description="Build the data of the chosen pieces if needed, train the two-pathway "
                    "network with the talk's recipe (SGD, momentum 0.9, lr 0.1 / 10 every 10 "
                    "epochs, weight decay 1e-4, batch 100), validate every epoch and keep the "
                    "best model, with a JSON card beside it. Interrupted runs continue with "
                    "--resume.")
    parser.add_argument("--kind", choices=("mono", "piano"), required=True,
                        help="one staff (Essen folk songs) or grand staff (piano)")
    parser.add_argument("--config", choices=("light", "talk"), default="light",
                        help="network size (default: light, for a CPU)")
    parser.add_argument("--epochs", type=int, default=30, help="epochs in all (default: 30)")
    parser.add_argument("--batch-size", type=int, default=100,
                        help="examples per mini-batch (default: 100)")
    parser.add_argument("--optimizer", choices=("sgd", "adam"), default="sgd",
                        help="SGD with momentum (the talk, default) or Adam")
    parser.add_argument("--lr", type=float, default=None,
                        help="initial learning rate (default: 0.1 for SGD, 0.001 for Adam)")
    parser.add_argument("--lr-step", type=int, default=10, metavar="EPOCHS",
                        help="divide the learning rate by 10 every this many epochs (default: 10)")
    _add_subset_option(parser)
    parser.add_argument("--composer", metavar="NAME", default=None,
                        help="piano only: the composer split (train and validate on NAME's "
                             "pieces, test on the other composers) instead of the default split")
    parser.add_argument("--init-from", metavar="CHECKPOINT", default=None,
                        help="start from this checkpoint's weights wherever names and shapes "
                             "agree (e.g. the piano model from the mono one) instead of a "
                             "random initialisation")
    parser.add_argument("--lag-frames", type=int, default=0, metavar="FRAMES",
                        help="half of the training excerpts end up to this many frames after "
                             "their onset (default: 0: all at the onset)")
    parser.add_argument("--augment", type=int, default=0, metavar="N",
                        help="also train on the training pieces rendered in the first N "
                             "augmented conditions of sheetlab.augment (other tempi and page "
                             "widths; 0 to 4, default 0); validation stays in the default one")
    parser.add_argument("--continuations", type=int, default=0, metavar="N",
                        help="piano: also train on up to N continuations of each training piece "
                             "longer than the cut (its next 64 measures each; default 0)")
    _add_bf16_option(parser)
    parser.add_argument("--resume", action="store_true",
                        help="continue the interrupted run that writes the same --out")
    _add_run_options(parser, "sheetlab/weights/<kind>-<config>.pt; the card goes beside it as "
                             ".json, the training state to PATH.resume")
    parser.set_defaults(handler=_train)


def _train_retrieval(args: argparse.Namespace) -> int:
    """``sheetlab train-retrieval``: train the audio-sheet retrieval embedding (chapter 9)."""
    from sheetlab.corpus import pieces
    from sheetlab.models import retrieval_config
    from sheetlab.retrieval import RetrievalTrainSettings, pretrained_path, train_retrieval
    from sheetlab.training import card_path, load_pieces

    settings = RetrievalTrainSettings(
        epochs=args.epochs, pairs_per_epoch=args.pairs_per_epoch, batch_size=args.batch_size,
        lr=args.lr, lr_step_epochs=args.lr_step, margin=args.margin,
        valid_pairs=args.valid_pairs, fit_pairs=args.fit_pairs,
        final_fit_pairs=args.final_fit_pairs, seed=args.seed, threads=args.threads,
        bf16=args.bf16)
    chosen = {part: pieces(args.kind, part, limit, subset=args.subset)
              for part, limit in (("train", args.train_limit), ("valid", args.valid_limit))}
    train_data = load_pieces(chosen["train"], workers=args.workers)
    valid_data = load_pieces(chosen["valid"], workers=args.workers)
    out = Path(args.out) if args.out else pretrained_path(not args.no_cca, args.kind)
    command = _train_command(args, "train-retrieval")
    try:
        history = train_retrieval(train_data, valid_data,
                                  retrieval_config(kind=args.kind, cca=not args.no_cca,
                                                   cca_ridge=args.cca_ridge),
                                  settings, out, command=command)
    except (FileNotFoundError, ValueError) as error:
        print(f"sheetlab train-retrieval: {error}", file=sys.stderr)
        return 1
    best = max(history, key=lambda row: row["valid_mrr"])
    print(f"best epoch {best['epoch']}: validation MRR {best['valid_mrr']:.3f} (mean of both "
          f"directions); model {out}, card {card_path(out)}")
    return 0


def _add_train_retrieval(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "train-retrieval", help="train the audio-sheet retrieval embedding (chapter 9)",
        description="Train the two-pathway embedding of sheet snippets and audio excerpts "
                    "with the CCA layer (or, with --no-cca, the linear baseline) and the "
                    "pairwise ranking loss (Adam), validate the two-way MRR every epoch, keep "
                    "the best model with a JSON card beside it and re-estimate its CCA "
                    "statistics on a large training sample.")
    parser.add_argument("--kind", choices=("mono", "piano"), default="piano",
                        help="one staff or grand staff (default: piano)")
    parser.add_argument("--no-cca", action="store_true",
                        help="the baseline: learned linear embedding without the CCA layer")
    parser.add_argument("--epochs", type=int, default=20, help="epochs in all (default: 20)")
    parser.add_argument("--pairs-per-epoch", type=int, default=10_000,
                        help="pairs drawn afresh for each epoch (default: 10000)")
    parser.add_argument("--batch-size", type=int, default=100,
                        help="pairs per mini-batch (default: 100)")
    parser.add_argument("--lr", type=float, default=1e-3,
                        help="Adam's initial learning rate (default: 0.001)")
    parser.add_argument("--lr-step", type=int, default=10, metavar="EPOCHS",
                        help="divide the learning rate by 10 every this many epochs "
                             "(default: 10)")
    parser.add_argument("--margin", type=float, default=0.7,
                        help="margin of the ranking loss (default: 0.7)")
    parser.add_argument("--cca-ridge", type=float, default=0.1,
                        help="ridge added to the CCA layer's covariance matrices "
                             "(default: 0.1)")
    parser.add_argument("--valid-pairs", type=int, default=1000,
                        help="validation pairs (default: 1000)")
    parser.add_argument("--fit-pairs", type=int, default=3000,
                        help="training pairs for the CCA statistics each epoch (default: 3000)")
    parser.add_argument("--final-fit-pairs", type=int, default=20_000,
                        help="training pairs for the kept model's CCA statistics "
                             "(default: 20000)")
    _add_subset_option(parser)
    _add_bf16_option(parser)
    _add_run_options(parser, "sheetlab/weights/<kind>-retrieval-cca.pt, or -linear.pt with "
                             "--no-cca; the card goes beside it as .json")
    parser.set_defaults(handler=_train_retrieval)


def _train_recurrent(args: argparse.Namespace) -> int:
    """``sheetlab train-recurrent``: train the recurrent follower on frozen frame-wise weights."""
    from sheetlab.corpus import pieces
    from sheetlab.models import weights_path
    from sheetlab.recurrent import RecurrentSettings, train_recurrent
    from sheetlab.training import card_path, load_pieces

    base = Path(args.base) if args.base else weights_path(args.kind, "light")
    if not base.exists():
        print(f"sheetlab train-recurrent: {base}: no such base checkpoint", file=sys.stderr)
        return 2
    try:
        settings = RecurrentSettings(hidden_units=args.hidden_units, epochs=args.epochs,
                                     pieces_per_batch=args.pieces_per_batch,
                                     chunk_frames=args.chunk_frames, lr=args.lr,
                                     error_px=args.error_px, onset_share=args.onset_share,
                                     seed=args.seed,
                                     threads=args.threads)
    except ValueError as error:
        print(f"sheetlab train-recurrent: {error}", file=sys.stderr)
        return 2
    chosen = {part: pieces(args.kind, part, limit, subset=args.subset)
              for part, limit in (("train", args.train_limit), ("valid", args.valid_limit))}
    train_data = load_pieces(chosen["train"], workers=args.workers)
    valid_data = load_pieces(chosen["valid"], workers=args.workers)
    out = Path(args.out) if args.out else weights_path(args.kind, "light-gru")
    try:
        history = train_recurrent(base, train_data, valid_data, settings, out,
                                  command=_train_command(args, "train-recurrent"))
    except (FileNotFoundError, ValueError) as error:
        print(f"sheetlab train-recurrent: {error}", file=sys.stderr)
        return 1
    best = max(history, key=lambda row: (row["valid_tracking_ratio"],
                                         row["valid_within_one_bucket"]))
    print(f"best epoch {best['epoch']}: validation tracking ratio "
          f"{best['valid_tracking_ratio']:.3f}, {best['valid_within_one_bucket']:.1%} of onsets "
          f"within one bucket; model {out}, card {card_path(out)}")
    return 0


def _add_train_recurrent(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "train-recurrent", help="train the recurrent follower (chapter 7) and write its weights",
        description="Keep a trained frame-wise network frozen and train a GRU over its fused "
                    "per-frame features with truncated back-propagation through time; validate "
                    "every epoch (localisation and following) and keep the epoch with the best "
                    "validation tracking ratio, with a JSON card beside it.")
    parser.add_argument("--kind", choices=("mono", "piano"), required=True,
                        help="one staff (Essen folk songs) or grand staff (piano)")
    parser.add_argument("--base", metavar="CHECKPOINT", default=None,
                        help="the frame-wise network (default: sheetlab/weights/<kind>-light.pt)")
    parser.add_argument("--epochs", type=int, default=15, help="epochs in all (default: 15)")
    parser.add_argument("--hidden-units", type=int, default=128,
                        help="size of the GRU's state (default: 128)")
    parser.add_argument("--pieces-per-batch", type=int, default=16,
                        help="sequences trained in parallel (default: 16)")
    parser.add_argument("--chunk-frames", type=int, default=64,
                        help="frames per truncated back-propagation step (default: 64)")
    parser.add_argument("--lr", type=float, default=1e-3, help="Adam's learning rate")
    parser.add_argument("--error-px", type=float, default=100.0,
                        help="largest simulated follower error of the training windows, px")
    parser.add_argument("--onset-share", type=float, default=0.9,
                        help="share of the loss from the correspondence frames (default: 0.9)")
    _add_subset_option(parser)
    _add_run_options(parser, "sheetlab/weights/<kind>-light-gru.pt; the card goes beside it as "
                             ".json")
    parser.set_defaults(handler=_train_recurrent)


_COMMANDS = (_add_grade, _add_data, _add_train, _add_train_recurrent, _add_train_retrieval)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``sheetlab`` command, with every subcommand."""
    parser = argparse.ArgumentParser(
        prog="sheetlab", description="Learning audio-sheet music correspondences: the "
                                     "command line of the sheetlab book and library.")
    parser.add_argument("--version", action="version", version=f"sheetlab {__version__}")
    subparsers = parser.add_subparsers(metavar="COMMAND", required=True)
    for add_command in _COMMANDS:
        add_command(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``sheetlab`` command.

    Parameters
    ----------
    argv : sequence of str, optional
        The arguments without the program name; ``sys.argv[1:]`` when None.

    Returns
    -------
    int
        The exit code: 0 on success (usage errors exit with 2 from argparse).
    """
    args = build_parser().parse_args(argv)
    return args.handler(args)


if __name__ == "__main__":
    sys.exit(main())
