"""One logger for the whole package: stage commands log, they never print."""

from __future__ import annotations

import logging
import os
import sys

LOGGER_NAME = "mlops_template"


def get_logger(name: str = LOGGER_NAME) -> logging.Logger:
    return logging.getLogger(name if name.startswith(LOGGER_NAME) else f"{LOGGER_NAME}.{name}")


def configure(verbose: bool = False) -> None:
    level = (
        logging.DEBUG
        if verbose
        else getattr(logging, os.environ.get("MLOPS_LOG_LEVEL", "INFO").upper(), logging.INFO)
    )
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        logging.Formatter("%(asctime)s %(levelname)-7s %(name)s: %(message)s", "%H:%M:%S")
    )
    root = logging.getLogger(LOGGER_NAME)
    root.handlers[:] = [handler]
    root.setLevel(level)
    root.propagate = False


class Progress:
    """Logs "what: i/n" at most every `every` steps: progress on long loops, no extra deps."""

    def __init__(
        self, what: str, total: int, logger: logging.Logger, every: int | None = None
    ) -> None:
        self.what, self.total, self.logger = what, total, logger
        self.every = every or max(1, total // 10)
        self.done = 0

    def step(self, n: int = 1) -> None:
        self.done += n
        if self.done % self.every == 0 or self.done == self.total:
            self.logger.info("%s: %d/%d", self.what, self.done, self.total)
