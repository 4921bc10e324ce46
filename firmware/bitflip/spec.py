# The model spec: what a training configuration allocates and keeps, in ONE place for the
# device and the host (imported by the host as bitflip.device.spec, like protocol.py). It
# is written in the common subset of CPython and MicroPython.
#
# A configuration (payload.CONFIG_KEYS) names layer widths ("sizes": inputs, hidden
# widths, then classes x P prototypes) and a weight kind for the top layer. Every layer is
# a bit-plane dense layer: one row of words(n_in) little-endian u32 words per neuron, bit i
# of word w = input 32*w+i, padding bits 0 in every plane. Hidden layers are trained by a
# hidden-layer rule (HIDDEN_RULES): "flip" (rule v1, per-sample random flips, the top's
# weight kind) or "pool" (pool.py: 1-bit weights, an int32 threshold per unit, int8
# evidence counters). Everything below is derived from the configuration by these
# functions only; the device's Trainer allocates exactly `buffers(cfg)` (a unix-port test
# compares them), the reference, the memory plan, the run directory and the digest follow
# `planes(cfg)` and `state(cfg)`.
from .protocol import const, host_only


BINARY = const(1)  # 1 bit: s (1 = +1, 0 = -1)
BINARY2 = const(2)  # 2 bits: s and a confidence bit (a weight must be pushed twice to flip)
TERNARY = const(3)  # 2 bits: s and a nonzero bit (0 = the weight is 0; s is kept)
KINDS = {"binary": BINARY, "binary2": BINARY2, "ternary": TERNARY}
AUX_NAME = {BINARY2: "c", TERNARY: "z"}  # the second plane of 2-bit weights
WEIGHT_BITS = {BINARY: 1, BINARY2: 2, TERNARY: 2}
HIDDEN_RULES = ("flip", "pool")

# Randomness: lowbias32 (C. Wellons) of counters. kernels.py builds these from 16-bit
# halves (viper literals must stay below 2**30 on the boards); tests/test_kernels.py runs
# every kernel that uses them against the numpy twin (bitflip.bitplanes), which takes them
# from here.
HASH_C1 = 0x7FEB352D
HASH_C2 = 0x846CA68B
GOLD = 0x9E3779B9  # word i of draw t of a row: h(key + (t * nw + i) * GOLD)
INIT_SALT = 0x5BD1E995  # initial weights: h(h(seed ^ INIT_SALT)) as the step key
LAYER_SHIFT = const(20)  # key(layer, row) = h(step key + (layer << 20) + row)

SAT = const(127)  # pool rule: evidence counters saturate at +-SAT (int8)
BINS = const(128)  # pool rule: evidence histogram bins (0..SAT)
SPLIT_MIN_ROWS = const(256)  # dual.py: layers this wide split their forward over two cores

# work counters the device reports (and the reference counts), in this order
COUNTERS = ("writes", "updates", "fwd_words", "upd_words", "vote_words", "samples", "evidence_bytes")


def words(n):
    """u32 words of a row of n bits."""
    return (n + 31) >> 5


def hidden_rule(cfg):
    """The rule that trains the hidden layers ("flip" or "pool"), None without hidden layers."""
    if len(cfg["sizes"]) < 3:
        return None
    return "pool" if cfg.get("pool") else "flip"


def fast_path(cfg):
    """The prototype-only fast path (fast.py) runs this model: no hidden layer, binary2, no
    margin, no anneal. A plan that names no margin or anneal means none (the defaults')."""
    return (
        len(cfg["sizes"]) == 2
        and cfg.get("weights") == "binary2"
        and int(cfg.get("margin", -1)) < 0
        and not int(cfg.get("anneal", 0))
    )


def layers(cfg):
    """[(n_in, n_out, kind)] per layer, bottom to top."""
    sizes = cfg["sizes"]
    top = KINDS[cfg.get("weights", "binary")]
    hidden = BINARY if hidden_rule(cfg) == "pool" else top
    return [(sizes[i], sizes[i + 1], top if i == len(sizes) - 2 else hidden) for i in range(len(sizes) - 1)]


@host_only
def planes(cfg):
    """[(layer, name, bytes)]: the model, in digest / dump / model-file order. Per layer its
    weight planes ("s", then "c" or "z"), then, under the pool rule, the hidden layer's int32
    thresholds ("t")."""
    out = []
    pool = hidden_rule(cfg) == "pool"
    ls = layers(cfg)
    for i, (n_in, n_out, kind) in enumerate(ls):
        size = 4 * words(n_in) * n_out
        out.append((i, "s", size))
        if kind != BINARY:
            out.append((i, AUX_NAME[kind], size))
        if pool and i < len(ls) - 1:
            out.append((i, "t", 4 * n_out))
    return out


@host_only
def pool_rows(cfg, n_out):
    return min(int(cfg["pool"]["rows"]), n_out)


@host_only
def state(cfg):
    """[(name, bytes)]: what a checkpoint holds besides planes(cfg), in order: the prototypes
    still to fill per class, then the hidden rule's state."""
    out = [("fill", int(cfg["classes"]))]
    if hidden_rule(cfg) == "pool":
        for i, (n_in, n_out, _) in enumerate(layers(cfg)[:-1]):
            out.append(("pool%d.c" % i, pool_rows(cfg, n_out) * n_in))  # int8 counter window
            out.append(("pool%d.pos" % i, 4))  # first unit of the window (u16 LE)
    return out


@host_only
def buffers(cfg):
    """[(part, name, bytes)]: every buffer the Trainer allocates for this configuration."""
    sizes = cfg["sizes"]
    rule = hidden_rule(cfg)
    out = [("weights", "layer%d.%s" % (i, name), n) for i, name, n in planes(cfg) if name != "t"]
    for i, (_, n_out, _) in enumerate(layers(cfg)):
        out.append(("pre_activations", "layer%d.pre" % i, 4 * n_out))
        out.append(("outputs", "layer%d.out" % i, 4 * words(n_out)))
        out.append(("dirs", "layer%d.dirs" % i, n_out))
        out.append(("dirs", "layer%d.idx" % i, 2 * n_out))
    out.append(("input", "x", 4 * words(sizes[0])))
    out.append(("vote", "vote", 4 * max(sizes)))
    out.append(("rule_state", "fill", int(cfg["classes"])))
    out.append(("rule_state", "st", 4))
    if rule == "pool":
        for i, (n_in, n_out, _) in enumerate(layers(cfg)[:-1]):
            out.append(("pool_rule", "pool%d.t" % i, 4 * n_out))
            out.append(("pool_rule", "pool%d.c" % i, pool_rows(cfg, n_out) * n_in))
            out.append(("pool_rule", "pool%d.pos" % i, 4))
            out.append(("pool_rule", "pool%d.hist" % i, 4 * BINS))
        out.append(("pool_rule", "vdir", sizes[-1]))
    return out


@host_only
def weight_bytes(cfg):
    """Bytes of the weight planes (thresholds not included)."""
    return sum(n for _, name, n in planes(cfg) if name != "t")


@host_only
def model_bytes(cfg):
    """Bytes of the model: weight planes and thresholds."""
    return sum(n for _, _, n in planes(cfg))


@host_only
def train_state_bytes(cfg):
    """Everything training keeps across samples: the model and the state a checkpoint saves."""
    return model_bytes(cfg) + sum(n for _, n in state(cfg))


def digest(bufs):
    """sha256 hex of the planes' bytes in planes(cfg) order: the weights digest."""
    import binascii
    import hashlib

    h = hashlib.sha256()
    for b in bufs:
        h.update(b)
    return binascii.hexlify(h.digest()).decode()
