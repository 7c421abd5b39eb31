"""Quiver's exceptions.

Every error raised by the Rust core is a :class:`Error` carrying the core's
message, which says what happened and what to do. Subclasses also derive
from the matching built-in, so ``except ValueError`` and ``except OSError``
keep working.
"""


class Error(Exception):
    """Any error from Quiver."""


class DimensionMismatch(Error, ValueError):
    """A vector's length, or the dimension given to ``open``, does not match
    the store's dimension."""


class ElementTypeMismatch(Error, TypeError):
    """The store holds another element type than the one asked for."""


class InvalidArgument(Error, ValueError):
    """An argument is out of range or exceeds a named limit; nothing changed."""


class MalformedFile(Error, ValueError):
    """A file being imported is truncated, torn or not what its format says;
    the message names the byte offset (or the table row). Every batch before
    it was stored, nothing of the batch holding it."""


class Locked(Error):
    """Another writer (in this process or another) holds the store open.

    In this process that includes a closed store whose snapshots or arrays
    (from ``get``, ``vectors()``, ...) are still alive: they hold the
    directory's writer lock so that no reopen can rewrite the bytes they
    view. Drop them (``del``) and open again."""


class Corrupted(Error):
    """A file failed a checksum or structural check; the message names the
    file and the byte offset."""


class NotAStore(Error):
    """The path exists but is not a Quiver store (or one of another format
    version)."""


class Poisoned(Error):
    """An earlier I/O failure left durability unknown; every write fails until
    the store is reopened."""


class Closed(Error):
    """The store or reader was closed."""


class IOError(Error, OSError):  # noqa: A001 - namespaced as quiver.IOError
    """An operating-system I/O call failed (disk full, permissions, ...)."""


# Shown as quiver.Locked etc. in tracebacks and help().
for _cls in (
    Error,
    DimensionMismatch,
    ElementTypeMismatch,
    InvalidArgument,
    MalformedFile,
    Locked,
    Corrupted,
    NotAStore,
    Poisoned,
    Closed,
    IOError,
):
    _cls.__module__ = "quiver"
del _cls
