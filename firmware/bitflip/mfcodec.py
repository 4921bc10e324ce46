# The model file's codes and its section codecs (everything but the framing): one module for
# the board (bitflip.mfcodec) and the host (bitflip.device.mfcodec), in the common subset of
# CPython and MicroPython like modelfile.py, which frames these sections into a file and has
# the layout table. Each section has an encoder (dict -> bytes) and a parser (bytes -> dict).
import struct

try:
    import ujson as json
except ImportError:
    import json  # type: ignore[no-redef]  # the same module under another name

LT_DENSE = 1  # bit-plane dense layer (layers.Dense); new layer kinds get new codes
LAYER_TYPES = {LT_DENSE: "dense"}

ST_DESKEW = 1
ST_CROP = 2
ST_POOL = 3
STEP_CODES = {"deskew": ST_DESKEW, "crop": ST_CROP, "pool": ST_POOL}
STEP_NAMES = {ST_DESKEW: "deskew", ST_CROP: "crop", ST_POOL: "pool"}

SC_NONE = 0  # whole numbers 0..255, used as they are
SC_UNIT = 1  # floats in [0, 1]: floor(255 * x + 0.5)
SC_MINMAX_INT = 2  # per feature: floor(255 * (x - low) / span + 0.5) clipped to 0..255, integers
SC_MINMAX_FLOAT = 3  # the same with float low and span
SCALE_NAMES = {SC_NONE: "none", SC_UNIT: "unit", SC_MINMAX_INT: "minmax", SC_MINMAX_FLOAT: "minmax"}

_STRUCT_ERROR = getattr(struct, "error", ValueError)  # MicroPython's struct raises ValueError


def _bad(msg):
    return ValueError("bad model file: " + msg)


def _pad(n):
    return (4 - (n & 3)) & 3


# --- sections -------------------------------------------------------------------------------
def _json(obj):
    return json.dumps(obj).encode()


def _layers(layers):
    out = [struct.pack("<HH", len(layers), 0)]
    for ly in layers:
        extra = ly.get("params", b"")
        out.append(struct.pack("<BBHII", ly["type"], ly["kind"], 12 + len(extra), ly["n_in"], ly["n_out"]))
        out.append(extra)
    return b"".join(out)


def _encoding(enc):
    steps = enc["steps"]
    levels = enc["levels"]
    out = [struct.pack("<IHBB", enc["features"], enc["max_value"], len(steps), len(levels))]
    for name, arg in steps:
        out.append(struct.pack("<BBH", STEP_CODES[name], 0, arg))
    for t in levels:
        out.append(struct.pack("<H", t))
    keep = enc.get("keep", ())
    if keep:
        out.append(struct.pack("<I", len(keep)))
        out.append(struct.pack("<%dH" % len(keep), *keep))
    return b"".join(out)


def _scaling(sc):
    kind = sc["kind"]
    lo = sc.get("low", ())
    span = sc.get("span", ())
    out = [struct.pack("<BBBBI", kind, 0, 0, 0, len(lo))]
    fmt = "<ii" if kind == SC_MINMAX_INT else "<dd"
    for i in range(len(lo)):
        out.append(struct.pack(fmt, lo[i], span[i]))
    return b"".join(out)


def _labels(labels):
    out = [struct.pack("<H", len(labels))]
    for name in labels:
        b = str(name).encode()
        if len(b) > 255:
            raise ValueError("class label longer than 255 bytes: %r" % name)
        out.append(struct.pack("<B", len(b)))
        out.append(b)
    return b"".join(out)


def _state(st):
    fill = bytes(st["fill"])
    pos = st.get("pos", ())
    out = [struct.pack("<IHH", st["step"], len(fill), len(pos)), fill, bytes(_pad(len(fill)))]
    for p in pos:
        out.append(struct.pack("<HH", p, 0))
    return b"".join(out)


def sections(info):
    """[(tag, payload bytes)] of every section but PLNS, in file order."""
    return [
        (b"META", _json(info.get("meta", {}))),
        (b"CONF", _json(info["cfg"])),
        (b"LAYR", _layers(info["layers"])),
        (b"ENCD", _encoding(info["encoding"])),
        (b"SCAL", _scaling(info["scaling"])),
        (b"LABL", _labels(info["labels"])),
        (b"STAT", _state(info["state"])),
    ]


def _u(fmt, b, off=0):
    try:
        return struct.unpack_from(fmt, b, off)
    except (ValueError, _STRUCT_ERROR):
        raise _bad("a section is too short")


def _parse_json(b):
    try:
        obj = json.loads(b.decode())
    except (ValueError, UnicodeError):
        raise _bad("a JSON section does not parse")
    if not isinstance(obj, dict):
        raise _bad("a JSON section is not an object")
    return obj


def _parse_layers(b):
    n = _u("<H", b)[0]
    out = []
    off = 4
    for _ in range(n):
        typ, kind, size, n_in, n_out = _u("<BBHII", b, off)
        if size < 12 or off + size > len(b):
            raise _bad("layer record size %d" % size)
        if typ not in LAYER_TYPES:
            raise _bad("layer type %d is not known to this reader (written by a newer bitflip?)" % typ)
        if kind not in (1, 2, 3):
            raise _bad("weight kind %d" % kind)
        out.append({"type": typ, "kind": kind, "n_in": n_in, "n_out": n_out, "params": bytes(b[off + 12 : off + size])})
        off += size
    return out


def _parse_encoding(b):
    features, max_value, n_steps, n_levels = _u("<IHBB", b)
    steps = []
    off = 8
    for _ in range(n_steps):
        code, _z, arg = _u("<BBH", b, off)
        if code not in STEP_NAMES:
            raise _bad("image step code %d" % code)
        steps.append((STEP_NAMES[code], arg))
        off += 4
    levels = list(_u("<%dH" % n_levels, b, off)) if n_levels else []
    if not levels:
        raise _bad("the encoding has no bit levels")
    off += 2 * n_levels
    keep = []
    if len(b) >= off + 4:
        n_keep = _u("<I", b, off)[0]
        keep = list(_u("<%dH" % n_keep, b, off + 4)) if n_keep else []
        for i in range(1, len(keep)):
            if keep[i] <= keep[i - 1]:
                raise _bad("the kept bits are not in ascending order")
    return {"features": features, "max_value": max_value, "steps": steps, "levels": levels, "keep": keep}


def _parse_scaling(b):
    kind, _a, _b, _c, n = _u("<BBBBI", b)
    if kind not in SCALE_NAMES:
        raise _bad("scaling kind %d" % kind)
    sc = {"kind": kind}
    if kind in (SC_MINMAX_INT, SC_MINMAX_FLOAT):
        fmt = "<ii" if kind == SC_MINMAX_INT else "<dd"
        step = 8 if kind == SC_MINMAX_INT else 16
        if len(b) < 8 + n * step:
            raise _bad("the scaling section is too short")
        lo = []
        span = []
        for i in range(n):
            a, s = struct.unpack_from(fmt, b, 8 + i * step)
            lo.append(a)
            span.append(s)
        sc["low"] = lo
        sc["span"] = span
    return sc


def _parse_labels(b):
    n = _u("<H", b)[0]
    out = []
    off = 2
    for _ in range(n):
        k = _u("<B", b, off)[0]
        if off + 1 + k > len(b):
            raise _bad("the label section is too short")
        try:
            out.append(bytes(b[off + 1 : off + 1 + k]).decode())
        except UnicodeError:
            raise _bad("a class label is not UTF-8")
        off += 1 + k
    return out


def _parse_state(b):
    step, n_fill, n_pos = _u("<IHH", b)
    if len(b) < 8 + n_fill + _pad(n_fill) + 4 * n_pos:
        raise _bad("the state section is too short")
    fill = bytes(b[8 : 8 + n_fill])
    off = 8 + n_fill + _pad(n_fill)
    pos = [_u("<H", b, off + 4 * i)[0] for i in range(n_pos)]
    return {"step": step, "fill": fill, "pos": pos}


_PARSE = {
    b"META": ("meta", _parse_json),
    b"CONF": ("cfg", _parse_json),
    b"LAYR": ("layers", _parse_layers),
    b"ENCD": ("encoding", _parse_encoding),
    b"SCAL": ("scaling", _parse_scaling),
    b"LABL": ("labels", _parse_labels),
    b"STAT": ("state", _parse_state),
}
REQUIRED = ("cfg", "layers", "encoding", "scaling", "labels", "state")
