"""The errors tunewise raises on purpose.

    TunewiseError           anything tunewise reports to the user
     ├── InputError         a task, data or document file is wrong; the CLI prints one line, exits 2
     └── ModelCallError     a model call failed for good (after retries); recorded per example
"""

from __future__ import annotations

from pathlib import Path


class TunewiseError(Exception):
    """Base class of the errors tunewise raises on purpose."""


class InputError(TunewiseError):
    """Something the user gave us is wrong; says which file and, where it applies, which line."""

    def __init__(self, message: str, *, file: str | Path | None = None, line: int | None = None):
        super().__init__(message)
        self.message = message
        self.file = str(file) if file is not None else None
        self.line = line

    def __str__(self) -> str:
        where = self.file or ""
        if where and self.line is not None:
            where = f"{where}:{self.line}"
        return f"{where}: {self.message}" if where else self.message


class ModelCallError(TunewiseError):
    """A model call that failed after its retries, with what the server told us."""

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        request_id: str | None = None,
        retryable: bool = False,
    ):
        super().__init__(message)
        self.status = status
        self.request_id = request_id
        self.retryable = retryable
