"""The errors tunewise raises on purpose.

    TunewiseError           anything tunewise reports to the user
     ├── InputError         a task, data or document file is wrong; the CLI prints one line, exits 2
     └── ModelCallError     a model call failed for good (after retries): recorded as that example's error,
                            unless it `stops_run`; one that escapes (it stopped the run, or came from work a run
                            cannot go without) makes the CLI print one line and exit 3
"""

from __future__ import annotations

from pathlib import Path

# Every character str.splitlines() breaks a line at, written as its escape: an error is told in one line, also
# when it quotes a value holding line breaks (a YAML block scalar, a server's multi-line message).
_BREAKS = "\n\r\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029"
_LINE_BREAKS = str.maketrans({c: c.encode("unicode_escape").decode() for c in _BREAKS})


def one_line(text: str) -> str:
    """`text` with its line breaks escaped (`\\n`), so it prints as one line."""
    return text.translate(_LINE_BREAKS)


class TunewiseError(Exception):
    """Base class of the errors tunewise raises on purpose; their message is always one line."""

    def __init__(self, message: str):
        super().__init__(one_line(message))


class InputError(TunewiseError):
    """Something the user gave us is wrong; says which file and, where it applies, which line."""

    def __init__(self, message: str, *, file: str | Path | None = None, line: int | None = None):
        super().__init__(message)
        self.message = one_line(message)
        self.file = one_line(str(file)) if file is not None else None
        self.line = line

    def __str__(self) -> str:
        where = self.file or ""
        if where and self.line is not None:
            where = f"{where}:{self.line}"
        return f"{where}: {self.message}" if where else self.message


class ModelCallError(TunewiseError):
    """A model call that failed after its retries, with what the server told us.

    `stops_run`: the failure is the endpoint's, not this call's — a key it refuses (401), no access (403), no
    such model or path (404), no server to connect to — so every other call would fail alike: a run stops at
    the first one (resumable) instead of recording it as the error of every example.
    """

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        request_id: str | None = None,
        retryable: bool = False,
        stops_run: bool = False,
    ):
        super().__init__(message)
        self.status = status
        self.request_id = request_id
        self.retryable = retryable
        self.stops_run = stops_run
