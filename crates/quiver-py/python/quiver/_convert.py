"""Input conversion for the Rust core: called only when an argument is not
already a C-contiguous array of the store's dtype (the zero-copy path)."""

from __future__ import annotations

from typing import Any

import numpy as np

_NAMES = {"float32", "float64", "float16", "bfloat16", "uint8", "int8"}


def dtype_name(dtype: Any) -> str:
    """The canonical name of a dtype argument: a string, a NumPy dtype or
    scalar type, or ml_dtypes' bfloat16 (which is not required)."""
    if isinstance(dtype, str) and dtype.lower() in ("bfloat16", "bf16"):
        return "bfloat16"
    try:
        name = np.dtype(dtype).name
    except TypeError as e:
        raise TypeError(f"{dtype!r} is not a dtype: use one of {sorted(_NAMES)}") from e
    if name not in _NAMES:
        raise TypeError(f"dtype {name!r} is not supported: use one of {sorted(_NAMES)}")
    return name


def as_vectors(obj: Any, dtype: str) -> np.ndarray:
    """``obj`` as a C-contiguous array of ``dtype`` (uint16 bit patterns for
    bfloat16), converted once. Refuses conversions NumPy does not count as
    "same kind" (floats into an integer store, strings, objects)."""
    if dtype == "bfloat16":
        return _as_bfloat16_bits(obj)
    arr = np.asarray(obj)
    target = np.dtype(dtype)
    if arr.dtype != target:
        if not np.can_cast(arr.dtype, target, casting="same_kind"):
            raise TypeError(
                f"cannot store {arr.dtype} values in a store of {dtype} without losing their meaning; "
                f"convert them explicitly (e.g. arr.astype(np.{dtype}))"
            )
        arr = arr.astype(target)
    return np.ascontiguousarray(arr)


def _as_bfloat16_bits(obj: Any) -> np.ndarray:
    arr = np.asarray(obj)
    if arr.dtype.name == "bfloat16":  # ml_dtypes
        return np.ascontiguousarray(arr).view(np.uint16)
    if arr.dtype == np.uint16:
        return np.ascontiguousarray(arr)
    if arr.dtype.kind not in "fiu":
        raise TypeError(f"cannot store {arr.dtype} values in a store of bfloat16")
    # Round to nearest even, as the Rust `half` crate does; NaN stays NaN.
    f = np.ascontiguousarray(arr, dtype=np.float32)
    bits = f.view(np.uint32).astype(np.uint64)
    rounded = ((bits + 0x7FFF + ((bits >> 16) & 1)) >> 16).astype(np.uint16)
    nan = np.isnan(f)
    if nan.any():
        rounded[nan] = ((bits[nan] >> 16) | 0x40).astype(np.uint16)
    return rounded


def as_ids(obj: Any) -> np.ndarray:
    """``obj`` as a 1-D C-contiguous uint64 array of ids. Refuses floats,
    strings and negative integers."""
    arr = np.asarray(obj)
    if arr.ndim != 1:
        raise ValueError(f"ids must be one-dimensional, but have shape {arr.shape}")
    if arr.size == 0:
        return np.zeros(0, dtype=np.uint64)
    if arr.dtype.kind not in "iu":
        raise TypeError(f"ids must be integers, not {arr.dtype}")
    if arr.dtype.kind == "i" and (arr < 0).any():
        raise ValueError("ids must be non-negative (any integer in [0, 2**64))")
    return np.ascontiguousarray(arr, dtype=np.uint64)
