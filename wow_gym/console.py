"""What our processes print: third-party chatter stays quiet unless the user asks for it.

`wow-gym -v ...` (or WOW_GYM_VERBOSE=1 in the environment) shows everything; subprocess workers inherit
the environment variable, so they follow the parent's choice.
"""

from __future__ import annotations

import logging
import os

VERBOSE_VARIABLE = "WOW_GYM_VERBOSE"
ROBOSUITE_LOGGER = "robosuite_logs"  # robosuite.utils.log_utils.ROBOSUITE_DEFAULT_LOGGER's name


def verbose() -> bool:
    """Whether the user asked for third-party warnings and progress bars (WOW_GYM_VERBOSE=1)."""
    return os.environ.get(VERBOSE_VARIABLE, "").strip().lower() not in ("", "0", "false", "no")


def set_verbose(on: bool = True) -> None:
    """Turn verbose output on or off for this process and the subprocesses it starts."""
    os.environ[VERBOSE_VARIABLE] = "1" if on else "0"


class _BelowError(logging.Filter):
    """Lets through errors only, unless the user asked for verbose output when the record is made."""

    def filter(self, record: logging.LogRecord) -> bool:
        return record.levelno >= logging.ERROR or verbose()


def quiet_robosuite() -> None:
    """Keep robosuite's warnings (no private macro file, robosuite_models, mink, unused arms) off the console.

    Call before robosuite is imported: its logger prints those at import. robosuite sets its logger's level
    when imported, so a filter on the logger, which it leaves alone, does the silencing.
    """
    logger = logging.getLogger(ROBOSUITE_LOGGER)
    if not any(isinstance(f, _BelowError) for f in logger.filters):
        logger.addFilter(_BelowError())
