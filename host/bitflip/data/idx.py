"""IDX files (MNIST, Fashion-MNIST, KMNIST, EMNIST), plain or gzipped.

Format: big-endian; bytes 0-1 are 0x0000, byte 2 the element type, byte 3 the number of
dimensions n, then n uint32 sizes, then the dense row-major data. Every check happens before
the data is allocated, so a damaged header (a flipped bit in a size) is a clear error and never
a multi-gigabyte allocation or a long read. Element types other than uint8 are returned as
they are; the dataset loaders decide how to turn them into uint8 features and labels.
"""

from __future__ import annotations

import gzip
import math
import struct
import zlib
from pathlib import Path
from typing import BinaryIO

import numpy as np

from ..errors import UsageError

# type byte -> big-endian numpy dtype (the IDX spec's six types)
IDX_DTYPES: dict[int, str] = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}
MAX_NDIM = 4  # images are 3-D, labels 1-D, QMNIST labels 2-D; more means a damaged header
MAX_DATA_BYTES = 1 << 31  # 2 GiB: ~4x EMNIST byclass, far below what a bogus size field can claim
_GZIP_MAGIC = b"\x1f\x8b"


def _header(head: bytes, where: str) -> tuple[np.dtype, tuple[int, ...], int]:
    """(dtype, dims, header length) from the first bytes of the file; raises on anything odd."""
    if len(head) < 4:
        raise UsageError(f"{where}: not an IDX file (only {len(head)} bytes)")
    if head[:2] != b"\0\0":
        raise UsageError(f"{where}: not an IDX file (starts with {head[:4].hex()}, expected 0000 then type and ndim)")
    code, ndim = head[2], head[3]
    if code not in IDX_DTYPES:
        raise UsageError(f"{where}: unknown IDX element type 0x{code:02x} (known: 08 09 0b 0c 0d 0e)")
    if not 1 <= ndim <= MAX_NDIM:
        raise UsageError(f"{where}: IDX header says {ndim} dimensions (bitflip reads 1..{MAX_NDIM})")
    n_head = 4 + 4 * ndim
    if len(head) < n_head:
        raise UsageError(f"{where}: truncated IDX header ({len(head)} of {n_head} bytes)")
    dims = struct.unpack(f">{ndim}I", head[4:n_head])
    return np.dtype(IDX_DTYPES[code]), dims, n_head


def _data_bytes(dtype: np.dtype, dims: tuple[int, ...], where: str) -> int:
    size = dtype.itemsize
    for d in dims:  # python ints: no overflow, and we stop as soon as it is absurd
        size *= d
    # a zero dim hides absurd others: 0 bytes, but numpy cannot even shape such an array
    if size == 0 and math.prod(d for d in dims if d) * dtype.itemsize > MAX_DATA_BYTES:
        raise UsageError(f"{where}: IDX header dims {dims} are not a dataset's shape")
    if size > MAX_DATA_BYTES:
        raise UsageError(f"{where}: IDX header dims {dims} mean {size} data bytes; that is not a dataset file")
    return size


def _read_exact(f: BinaryIO, n: int) -> bytes:
    """Read up to n bytes (short only at end of file)."""
    chunks, left = [], n
    while left > 0:
        b = f.read(min(left, 1 << 24))
        if not b:
            break
        chunks.append(b)
        left -= len(b)
    return b"".join(chunks)


def read_idx_raw(path: str | Path) -> bytes:
    """The whole uncompressed IDX file as bytes, after checking header and exact size."""
    p = Path(path)
    where = str(p)
    try:
        with open(p, "rb") as raw:
            gz = raw.read(2) == _GZIP_MAGIC  # by content, not name: a gunzipped file may keep its .gz name
            isize = _gzip_isize(raw) if gz else 0
            raw.seek(0)
            f: BinaryIO = gzip.GzipFile(fileobj=raw, mode="rb") if gz else raw  # type: ignore[assignment]
            head = _read_exact(f, 4)
            if len(head) == 4 and head[:2] == b"\0\0":
                head += _read_exact(f, 4 * head[3])
            dtype, dims, n_head = _header(head, where)
            want = _data_bytes(dtype, dims, where)
            if not gz:
                have = p.stat().st_size - n_head
                if have != want:
                    raise UsageError(_size_msg(where, dims, want, have))
            elif isize != (n_head + want) & 0xFFFFFFFF:
                raise UsageError(
                    f"{where}: truncated or damaged: its gzip trailer says {isize} bytes uncompressed, "
                    f"the IDX header (dims {dims}) needs {n_head + want}"
                )
            # one byte more than expected tells "too long" from "exact", and for gzip reaches the end
            # of the stream, where it checks the CRC
            body = _read_exact(f, want + 1)
            if len(body) != want:
                raise UsageError(_size_msg(where, dims, want, len(body) if len(body) <= want else None))
    except UsageError:
        raise
    except IsADirectoryError:
        raise UsageError(f"{where}: is a directory, expected an IDX file") from None
    except FileNotFoundError:
        raise UsageError(f"{where}: no such file") from None
    except (gzip.BadGzipFile, EOFError, zlib.error) as e:
        raise UsageError(f"{where}: damaged gzip data ({_one_line(e)})") from None
    except OSError as e:
        raise UsageError(f"{where}: cannot read ({_one_line(e)})") from None
    return head + body


def _gzip_isize(raw: BinaryIO) -> int:
    """The gzip trailer's ISIZE (uncompressed size mod 2^32). Checking it against the IDX header
    lets a damaged or truncated file fail before anything is decompressed; gzip tools write a
    single member, so ISIZE is the whole file's size."""
    end = raw.seek(0, 2)
    if end < 18:  # 10-byte header + 8-byte trailer
        raise UsageError(f"{raw.name}: damaged gzip data (only {end} bytes)")
    raw.seek(end - 4)
    return int(struct.unpack("<I", raw.read(4))[0])


def _size_msg(where: str, dims: tuple[int, ...], want: int, have: int | None) -> str:
    if have is None:
        return f"{where}: longer than its IDX header says (dims {dims} need {want} data bytes)"
    what = "truncated" if have < want else "longer than its IDX header says"
    return f"{where}: {what}: dims {dims} need {want} data bytes, the file has {have}"


def parse_idx(buf: bytes, where: str = "<bytes>") -> np.ndarray:
    """Uncompressed IDX bytes -> array of shape dims in native byte order (read-only if uint8)."""
    dtype, dims, n_head = _header(buf[: 4 + 4 * MAX_NDIM], where)
    want = _data_bytes(dtype, dims, where)
    if len(buf) - n_head != want:
        raise UsageError(_size_msg(where, dims, want, len(buf) - n_head))
    arr = np.frombuffer(buf, dtype=dtype, offset=n_head).reshape(dims)
    # uint8 needs no swap: keep the zero-copy view; wider types become native-endian copies
    return arr if dtype.itemsize == 1 else arr.astype(dtype.newbyteorder("="))


def read_idx(path: str | Path) -> np.ndarray:
    """Read an IDX file (plain or gzipped) into a native-endian array of its stored shape."""
    return parse_idx(read_idx_raw(path), str(path))


def idx_bytes(arr: np.ndarray) -> bytes:
    """Encode an array as IDX bytes (the inverse of parse_idx; used by tests and exports)."""
    a = np.asarray(arr)
    codes = {np.dtype(v).newbyteorder("="): k for k, v in IDX_DTYPES.items()}
    code = codes.get(a.dtype.newbyteorder("="))
    if code is None or not 1 <= a.ndim <= MAX_NDIM:
        raise ValueError(f"IDX cannot store dtype {a.dtype} with {a.ndim} dims")
    head = bytes((0, 0, code, a.ndim)) + struct.pack(f">{a.ndim}I", *a.shape)
    return head + np.ascontiguousarray(a, dtype=IDX_DTYPES[code]).tobytes()


def write_idx(path: str | Path, arr: np.ndarray) -> None:
    """Write an IDX file; gzipped when the name ends in .gz (mtime 0: reproducible bytes)."""
    data = idx_bytes(arr)
    p = Path(path)
    if p.suffix == ".gz":
        with open(p, "wb") as raw, gzip.GzipFile(fileobj=raw, mode="wb", mtime=0) as f:
            f.write(data)
    else:
        p.write_bytes(data)


def _one_line(e: BaseException) -> str:
    return " ".join(str(e).split())[:200] or type(e).__name__
