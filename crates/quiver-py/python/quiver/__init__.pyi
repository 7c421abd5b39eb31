"""Quiver: an embedded, mmap-backed vector store with zero-copy NumPy views."""

from ._errors import (
    Closed as Closed,
)
from ._errors import (
    Corrupted as Corrupted,
)
from ._errors import (
    DimensionMismatch as DimensionMismatch,
)
from ._errors import (
    ElementTypeMismatch as ElementTypeMismatch,
)
from ._errors import (
    Error as Error,
)
from ._errors import (
    InvalidArgument as InvalidArgument,
)
from ._errors import (
    IOError as IOError,
)
from ._errors import (
    Locked as Locked,
)
from ._errors import (
    MalformedFile as MalformedFile,
)
from ._errors import (
    NotAStore as NotAStore,
)
from ._errors import (
    Poisoned as Poisoned,
)
from ._quiver import (
    MAX_DIMENSION as MAX_DIMENSION,
)
from ._quiver import (
    NO_ID as NO_ID,
)
from ._quiver import (
    Reader as Reader,
)
from ._quiver import (
    Snapshot as Snapshot,
)
from ._quiver import (
    Store as Store,
)
from ._quiver import (
    open as open,
)
from ._quiver import (
    open_reader as open_reader,
)

__all__ = [
    "MAX_DIMENSION",
    "NO_ID",
    "Closed",
    "Corrupted",
    "DimensionMismatch",
    "ElementTypeMismatch",
    "Error",
    "IOError",
    "InvalidArgument",
    "Locked",
    "MalformedFile",
    "NotAStore",
    "Poisoned",
    "Reader",
    "Snapshot",
    "Store",
    "open",
    "open_reader",
]
