"""Typed errors and the exit codes that are part of edgeopt's interface.

Library code raises these; only the CLI turns them into a one-line message and an exit code.
0 ok, 1 a check failed (regression, budget missed, verification shortfall, conversion failure),
2 bad usage or input, 3 environment problem (tool missing, board unreachable).
"""

from __future__ import annotations

EXIT_OK = 0
EXIT_CHECK_FAILED = 1
EXIT_BAD_INPUT = 2
EXIT_ENVIRONMENT = 3


class EdgeoptError(Exception):
    """Base class: a message fit for one line on stderr, and the exit code to use."""

    exit_code = EXIT_BAD_INPUT

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        # One line, always: multi-line causes (converter logs) are folded.
        return " ".join(self.message.split())


class InputError(EdgeoptError):
    """The user gave something unusable: a missing file, an invalid recipe, a bad dataset."""

    exit_code = EXIT_BAD_INPUT


class RecipeError(InputError):
    """The recipe does not validate; the message names the field path."""


class OutputExistsError(InputError):
    """The output folder exists and --overwrite was not given."""


class CheckFailed(EdgeoptError):
    """A check did not pass: regression, missed budget, verification shortfall, failed conversion."""

    exit_code = EXIT_CHECK_FAILED


class ConversionError(CheckFailed):
    """A converter (the TFLite converter, or the LiteRT quantizer) refused the model."""


class Diverged(CheckFailed):
    """Training diverged (the loss became NaN or infinite): the run stops at once."""


class EnvironmentProblem(EdgeoptError):
    """Something outside the input is missing or broken: a tool, a runtime, a board."""

    exit_code = EXIT_ENVIRONMENT
