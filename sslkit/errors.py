"""The one error type for mistakes a user can fix (a bad recipe key, a missing shard folder, ...).

Raise :class:`UserError` with one line that says what is wrong, where, and what to do; the CLI boundary
(``sslkit.cli.main``) catches it once, prints ``sslkit <command>: <message>`` and exits 2. A traceback is
shown only with ``--debug`` or ``SSLKIT_DEBUG=1``. Bugs are not UserErrors: they keep their traceback.
Advice in a message must be safe to follow (never "retry with weights_only=False").
"""

from __future__ import annotations

EXIT_USER_ERROR = 2


class UserError(Exception):
    """A mistake in the user's input, reported in one line (what, where, what to do); exit code 2."""


class RefusedInput(UserError, ValueError):
    """A checkpoint, published folder, manifest or recipe that sslkit refuses to read, in one line naming
    the key and the value. Also a ``ValueError``, so callers that caught the loaders' ``ValueError`` still do.
    """


def one_line(err: UserError) -> str:
    """The error's message; for one raised in a DataLoader worker, the original message (torch re-raises
    it in the main process with the worker's whole traceback as its text)."""
    text = str(err)
    if "\nOriginal Traceback" not in text:
        return text
    last = [line for line in text.splitlines() if line.strip()][-1]
    prefix = f"{type(err).__module__}.{type(err).__qualname__}: "
    return last[len(prefix):] if last.startswith(prefix) else last
