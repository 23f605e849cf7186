"""Command-line pieces shared by the converters in ``data_prep/``."""

import argparse
from pathlib import Path

from .corpus import FieldNames
from .media import CHECK_MODES, MediaSettings


def add_field_name_options(parser: argparse.ArgumentParser) -> None:
    defaults = FieldNames()
    group = parser.add_argument_group("input key names (for files that name their fields differently)")
    group.add_argument("--question-key", default=defaults.question, help="default: %(default)s")
    group.add_argument(
        "--answer-key", default=None, help="ground-truth key (default: 'answer', else 'solution' when absent)"
    )
    group.add_argument("--problem-type-key", default=defaults.problem_type, help="default: %(default)s")
    group.add_argument("--data-type-key", default=defaults.data_type, help="default: %(default)s")
    group.add_argument("--options-key", default=defaults.options, help="default: %(default)s")
    group.add_argument("--id-key", default=None, help="row id key (default: 'problem_id', else 'id')")
    group.add_argument(
        "--media-key",
        default=None,
        help="the one key holding a row's media, a path or a list, modality from data_type "
        "(default: 'images'/'videos' lists, else the single 'path' plus 'additional_path')",
    )


def field_names_from_args(args: argparse.Namespace) -> FieldNames:
    defaults = FieldNames()
    return FieldNames(
        question=args.question_key,
        answer=(args.answer_key,) if args.answer_key else defaults.answer,
        problem_type=args.problem_type_key,
        data_type=args.data_type_key,
        options=args.options_key,
        row_id=(args.id_key,) if args.id_key else defaults.row_id,
        media=args.media_key,
    )


def add_media_check_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--check-media",
        choices=CHECK_MODES,
        default="exists",
        help="exists: reject rows whose files are missing; decode: also open images (PIL) and probe videos "
        "(decord) to catch broken files; off: no check (default: %(default)s)",
    )


def add_media_settings_options(parser: argparse.ArgumentParser, defaults: MediaSettings = MediaSettings()) -> None:
    """``--video-fps``, ``--video-max-pixels``, ...: the sampling settings of ``data.*`` (``defaults``: the RL
    recipe's); pass the values your recipe uses."""
    group = parser.add_argument_group("media sampling settings (must match the recipe's data.* keys)")
    for name, default in vars(defaults).items():
        kind = float if name == "video_fps" else int
        group.add_argument(f"--{name.replace('_', '-')}", type=kind, default=default, help="default: %(default)s")


def media_settings_from_args(args: argparse.Namespace) -> MediaSettings:
    return MediaSettings.from_config({name: getattr(args, name) for name in vars(MediaSettings())})


def run_converter(parse_args, convert, argv=None) -> int:
    """A converter's ``main``: parse the arguments, convert, print the report and where the output went."""
    args = parse_args(argv)
    report = convert(args)
    print(report.summary())
    print(f"wrote {Path(args.output).resolve()}")
    return 0


def converter_parser(description: str, examples: list[str]) -> argparse.ArgumentParser:
    """The parser of a ``data_prep/`` script: ``description`` shown as written, then ``examples``, one command
    per line (help output is read in a terminal and copied from: no wrapped or joined commands)."""
    epilog = "examples:\n" + "\n".join(f"  {example}" for example in examples)
    return argparse.ArgumentParser(
        description=description, epilog=epilog, formatter_class=argparse.RawDescriptionHelpFormatter
    )
