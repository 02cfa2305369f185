"""What every bench subcommand shares: one-line user errors with exit code 2."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import NoReturn

from bench.core.errors import UserError, read_text, writable_folder  # noqa: F401 (the commands' names)


class DefaultsFormatter(argparse.HelpFormatter):
    """Every option's help ends with its default, help text or not (argparse's own formatter skips
    options without help)."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        if (action.option_strings and action.default not in (None, False, argparse.SUPPRESS)
                and "%(default)" not in text):
            text += (" " if text else "") + "(default: %(default)s)"
        return text


class Parser(argparse.ArgumentParser):
    """argparse, but a bad argument is one line on stderr and exit code 2, no usage dump; --help shows
    each option's default."""

    def __init__(self, *args, **kwargs) -> None:
        kwargs.setdefault("formatter_class", DefaultsFormatter)
        super().__init__(*args, **kwargs)

    def add_argument(self, *args, **kwargs):
        # argparse prints nothing for an option without help, its default included: give it one.
        if (kwargs.get("help") is None and args and str(args[0]).startswith("-")
                and kwargs.get("default") not in (None, False)):
            kwargs["help"] = "(default: %(default)s)"
        return super().add_argument(*args, **kwargs)

    def error(self, message: str) -> NoReturn:
        print(f"error: {self.prog}: {message}", file=sys.stderr)
        raise SystemExit(2)


def fail(message: str) -> NoReturn:
    print(f"error: {message}", file=sys.stderr)
    raise SystemExit(2)


def path_arg(text: str) -> Path:
    """An argparse type: a path that is not empty (Path("") is the current folder: `--out ""` would
    write there)."""
    if not text.strip():
        raise argparse.ArgumentTypeError("an empty path; name a file or folder (. for the current one)")
    return Path(text)


def positive_int_list(text: str) -> list[int]:
    try:
        values = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}") from None
    if not values or any(v <= 0 for v in values):
        raise argparse.ArgumentTypeError(f"expected positive integers, got {text!r}")
    return values


def bounded_int_list(low: int, high: int):
    """An argparse type: comma-separated integers, each in [low, high]."""
    def parse(text: str) -> list[int]:
        values = positive_int_list(text)
        if any(not low <= v <= high for v in values):
            raise argparse.ArgumentTypeError(f"each must be between {low:g} and {high:g}, got {text}")
        return values
    return parse


def bounded_floats(low: float, high: float):
    """An argparse type: a number in [low, high], or comma-separated numbers (one per hidden layer), each
    in it; one number is a float, several a list."""
    one = bounded_float(low, high)

    def parse(text: str) -> float | list[float]:
        parts = text.split(",")
        if any(not part.strip() for part in parts):
            raise argparse.ArgumentTypeError(f"expected numbers separated by commas, got {text!r}")
        values = []
        for part in parts:
            try:
                values.append(one(part.strip()))
            except argparse.ArgumentTypeError as exc:
                raise argparse.ArgumentTypeError(f"each {exc}" if len(parts) > 1 else str(exc)) from None
        return values[0] if len(values) == 1 else values
    return parse


def bounded_int(low: int, high: int):
    """An argparse type: an integer in [low, high]."""
    return _bounded(int, "an integer", low, high)


def bounded_float(low: float, high: float):
    """An argparse type: a number in [low, high] (NaN is not)."""
    return _bounded(float, "a number", low, high)


def _bounded(convert, what: str, low, high):
    def parse(text: str):
        try:
            value = convert(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}") from None
        if not low <= value <= high:  # written so that NaN fails
            raise argparse.ArgumentTypeError(f"must be between {low:g} and {high:g}, got {text}")
        return value

    return parse
