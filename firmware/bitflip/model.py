# A trained model in the user's own MicroPython code, no host attached:
#
#   from bitflip.model import Model
#   m = Model.load("model.bfm")      # a file from `bitflip export` / `bitflip push`
#   c = m.predict(values)            # raw feature values -> class index (m.labels[c]: its name)
#   m.scores()                       # per-class margins of that prediction
#   m.learn(values, label)           # one step of the training rule, on the board
#   m.save("model.bfm")              # atomically (new file, then renamed)
#
# values: a list, an array or a buffer of ints (bytes/bytearray for 0..255 features), one
# per raw feature, encoded here exactly as the host encoded the training data (encode.py).
# After load(), predict/scores/learn allocate nothing (for integer values): every buffer
# is made by load(). learn() is Trainer.learn, the very step the host reference takes, so
# a sequence of learn() calls ends with the reference's weights, bit for bit.
from array import array

from . import modelfile as MF
from . import spec
from .payload import check_config
from .encode import Encoder, class_max
from .rule import Trainer


class Model:
    def __init__(self, info, trainer):
        # use Model.load
        self.info = info
        self.t = trainer
        self.enc = Encoder(info["encoding"], info["scaling"])
        if self.enc.n_bits != trainer.n_in:
            raise ValueError(
                "bad model file: the encoding gives %d bits, the model takes %d" % (self.enc.n_bits, trainer.n_in)
            )
        self.labels = info["labels"]
        self.classes = trainer.n_classes
        if len(self.labels) != self.classes:
            raise ValueError("bad model file: %d labels for %d classes" % (len(self.labels), self.classes))
        self.P = trainer.P
        self.n_features = self.enc.n
        self.sc = array("i", bytes(4 * self.classes))
        self.learned = 0  # learn() calls since load

    @classmethod
    def load(cls, path, cores=1):
        # cores=2 splits wide layers over the second core where the port allows it (rp2)
        held = []

        def alloc(info):
            cfg = dict(info["cfg"])
            try:
                check_config(cfg)
            except ValueError as e:
                raise ValueError("bad model file: " + str(e))
            _check(info)
            cfg["cores"] = cores
            t = Trainer(cfg)
            held.append(t)
            return t.planes()

        info = MF.load(path, alloc)
        t = held[0]
        st = info["state"]
        t.step = st["step"]
        fill = st["fill"]
        if len(fill) != t.n_classes:
            raise ValueError("bad model file: fill state for %d classes" % len(fill))
        for i in range(len(fill)):
            t.fill[i] = fill[i]
        if t.hidden is not None and hasattr(t.hidden, "pools"):
            pos = st["pos"]
            if len(pos) != len(t.hidden.pools):
                raise ValueError("bad model file: %d pool positions for %d layers" % (len(pos), len(t.hidden.pools)))
            for p, v in zip(t.hidden.pools, pos):
                p.pos[0] = v & 0xFF
                p.pos[1] = v >> 8
        return cls(info, t)

    @classmethod
    def create(cls, cfg, encoding, scaling, labels, meta=None, cores=1):
        # a model that has seen nothing yet, made on the board: learn() fills its prototypes
        # from the first P samples of each class. cfg: payload.CONFIG_KEYS (sizes, classes,
        # weights, seed, window, margin, k ...); encoding / scaling / labels: as
        # modelfile.read returns them, e.g. {"features": 96, "max_value": 255, "steps": [],
        # "levels": [96, 160]} and {"kind": modelfile.SC_MINMAX_INT, "low": [...], "span": [...]}
        check_config(cfg)
        layers = [
            {"type": MF.LT_DENSE, "kind": kind, "n_in": n_in, "n_out": n_out, "params": b""}
            for n_in, n_out, kind in spec.layers(cfg)
        ]
        info = {
            "meta": meta or {},
            "cfg": cfg,
            "layers": layers,
            "encoding": encoding,
            "scaling": scaling,
            "labels": list(labels),
            "state": {"step": 0, "fill": b"", "pos": []},
        }
        run = dict(cfg)
        run["cores"] = cores
        return cls(info, Trainer(run))

    def predict(self, values):
        t = self.t
        self.enc.encode(values, t.x)
        w = t.forward(t.x)
        t.fwd_words = 0  # the work counters must stay small ints (no long int, no allocation)
        return w // self.P

    def scores(self):
        # per class, the largest pre-activation of its prototypes in the last predict/learn:
        # agreements minus disagreements of the best prototype (a margin; the class with
        # the largest is the prediction). The same array every call: copy it to keep it.
        top = self.t.layers[-1]
        class_max(top.pre, self.P, self.classes, self.sc)
        return self.sc

    def learn(self, values, label):
        # one training step on (values, label); returns whether the model was right before
        t = self.t
        if label < 0 or label >= self.classes:
            raise ValueError("label out of range")
        self.enc.encode(values, t.x)
        w = t.forward(t.x)
        t.learn(label, w)
        self.learned += 1
        t.fwd_words = 0
        t.writes = 0
        t.updates = 0
        t.upd_words = 0
        t.vote_words = 0
        t.evidence_bytes = 0
        return w // self.P == label

    def label(self, c):
        return self.labels[c]

    def state(self):
        t = self.t
        pos = []
        if t.hidden is not None and hasattr(t.hidden, "pools"):
            pos = [p.window() for p in t.hidden.pools]
        return {"step": t.step, "fill": bytes(t.fill), "pos": pos}

    def digest(self):
        return spec.digest([p for _, _, p in self.t.planes()])

    def save(self, path):
        info = self.info
        info["state"] = self.state()
        meta = info["meta"]
        meta["digest"] = self.digest()
        meta["learned_on_board"] = meta.get("learned_on_board", 0) + self.learned
        self.learned = 0
        MF.save(path, info, self.t.planes())

    def close(self):
        self.t.close()


def _check(info):
    # the layers section must say what the configuration builds (new layer kinds need a
    # firmware that knows them: modelfile rejects unknown types)
    cfg = info["cfg"]
    want = spec.layers(cfg)
    got = info["layers"]
    if len(got) != len(want):
        raise ValueError("bad model file: %d layers, the configuration has %d" % (len(got), len(want)))
    for g, (n_in, n_out, kind) in zip(got, want):
        if g["type"] != MF.LT_DENSE or (g["n_in"], g["n_out"], g["kind"]) != (n_in, n_out, kind):
            raise ValueError("bad model file: layer %r does not match the configuration" % g)
