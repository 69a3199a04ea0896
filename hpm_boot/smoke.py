"""Placeholder for the `smoke` command; being written."""

from __future__ import annotations

import argparse
from collections.abc import Mapping

from hpm_boot.errors import UsageError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    pass


def main(args: argparse.Namespace, env: Mapping[str, str]) -> int:
    raise UsageError("this command is not available yet")
