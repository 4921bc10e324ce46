# Gesture learner: a 3-axis accelerometer on I2C (MPU6050 or LIS3DH), one button, and a
# bitflip model that learns new gestures ON THE BOARD from a few examples.
#
#   hold the button and do a gesture a few times: each movement is one example of the
#   gesture being taught (the first hold teaches gesture 0, the next hold gesture 1, ...);
#   release it: the board rehearses what it was shown and from then on names every
#   movement it sees ("g1 (margin 23)"). The model is saved to flash after each lesson
#   and loaded again at the next boot.
#
# Wiring and running: README.md next to this file. The same code runs on the virtual
# board with a simulated sensor and button (sim.py).
from array import array

from micropython import const

from bitflip import modelfile as MF
from bitflip.model import Model

RATE_HZ = const(50)  # accelerometer samples per second
WIN = const(32)  # samples per example (0.64 s): a movement ends inside the window
RING = const(64)
AXES = const(3)
STILL = const(6)  # samples below the motion threshold that end a movement
MOTION = const(1500)  # |delta a| summed over the axes, in raw units (16384 = 1 g)
CLASSES = const(4)  # gesture slots
PROTOS = const(4)  # prototypes per gesture: its first 4 examples become them
KEEP = const(8)  # examples kept per gesture for the rehearsal after a lesson
MODEL = "gesture.bfm"


# --- sensors -----------------------------------------------------------------------------------
class MPU6050:
    # InvenSense MPU-6050 (also MPU-6500/9250 accelerometer registers); AD0 low: 0x68
    WHO_AM_I = 0x75

    def __init__(self, i2c, addr=0x68):
        self.i2c = i2c
        self.addr = addr
        self.buf = bytearray(6)
        w = i2c.writeto_mem
        w(addr, 0x6B, b"\x00")  # PWR_MGMT_1: wake up, internal oscillator
        w(addr, 0x1A, b"\x03")  # CONFIG: digital low-pass filter 44 Hz
        w(addr, 0x19, bytes([1000 // RATE_HZ - 1]))  # SMPLRT_DIV: 1 kHz / (1 + 19) = 50 Hz
        w(addr, 0x1C, b"\x00")  # ACCEL_CONFIG: +-2 g, 16384 LSB/g

    def read(self, out, off):
        # ACCEL_XOUT_H .. ACCEL_ZOUT_L (0x3B..0x40), big-endian int16; no allocation
        b = self.buf
        self.i2c.readfrom_mem_into(self.addr, 0x3B, b)
        for k in range(AXES):
            v = (b[2 * k] << 8) | b[2 * k + 1]
            out[off + k] = v - 65536 if v & 0x8000 else v


class LIS3DH:
    # ST LIS3DH; SDO/SA0 low: 0x18, high: 0x19
    WHO_AM_I = 0x0F

    def __init__(self, i2c, addr=0x18):
        self.i2c = i2c
        self.addr = addr
        self.buf = bytearray(6)
        i2c.writeto_mem(addr, 0x20, b"\x47")  # CTRL_REG1: 50 Hz, normal mode, X Y Z on
        i2c.writeto_mem(addr, 0x23, b"\x88")  # CTRL_REG4: block data update, high resolution, +-2 g

    def read(self, out, off):
        # OUT_X_L .. OUT_Z_H (0x28..0x2D, bit 7 = auto-increment), little-endian, left-justified
        # 12 bits: the raw int16 is ~16000 per g, the MPU6050's scale
        b = self.buf
        self.i2c.readfrom_mem_into(self.addr, 0x28 | 0x80, b)
        for k in range(AXES):
            v = b[2 * k] | (b[2 * k + 1] << 8)
            out[off + k] = v - 65536 if v & 0x8000 else v


def find_sensor(i2c):
    # the first accelerometer that answers with its WHO_AM_I
    found = i2c.scan()
    for cls, addrs, ids in ((MPU6050, (0x68, 0x69), (0x68, 0x70, 0x71)), (LIS3DH, (0x18, 0x19), (0x33,))):
        for a in addrs:
            if a in found and i2c.readfrom_mem(a, cls.WHO_AM_I, 1)[0] in ids:
                return cls(i2c, a)
    raise OSError("no MPU6050 (0x68/0x69) or LIS3DH (0x18/0x19) on the I2C bus: found %r" % found)


# --- the model -----------------------------------------------------------------------------------
def new_model():
    # 96 raw int16 values (32 samples x 3 axes, time-major) -> 0..255 over +-2 g -> 4 levels
    n = WIN * AXES
    bits = n * 4
    cfg = {
        "sizes": [bits, CLASSES * PROTOS],
        "classes": CLASSES,
        "weights": "binary2",
        "seed": 0,
        "window": 0,
        "margin": 8,
        "k": [3],
        "ks": 2,
    }
    enc = {"features": n, "max_value": 255, "steps": [], "levels": [80, 112, 144, 176]}
    sc = {"kind": MF.SC_MINMAX_INT, "low": [-32768] * n, "span": [65535] * n}
    return Model.create(cfg, enc, sc, ["g%d" % c for c in range(CLASSES)], {"writer": "examples/gesture"})


def load_model(path=MODEL):
    try:
        m = Model.load(path)
        print("loaded", path)
        return m
    except ValueError as e:
        print("new model (%s)" % e)
        return new_model()


class Learner:
    def __init__(self, sensor, button, led=None, model=None, log=print):
        self.sensor = sensor
        self.button = button  # Pin: 0 while pressed (pull-up)
        self.led = led
        self.m = model if model is not None else load_model()
        self.log = log
        self.ring = array("h", bytes(2 * AXES * RING))
        self.win = array("h", bytes(2 * AXES * WIN))
        self.pos = 0  # next ring slot
        self.prev = array("h", bytes(2 * AXES))
        self.moving = False
        self.quiet = 0
        self.seen = 0  # samples read
        self.taught = 0  # gestures taught so far (the next lesson teaches this one)
        st = self.m.t.fill
        for c in range(CLASSES):  # a loaded model knows the gestures whose prototypes are full
            if st[c] < PROTOS:
                self.taught = c + 1
        self.keep = [[] for _ in range(CLASSES)]
        self.lesson = -1  # the gesture being taught while the button is held
        self.events = []  # (kind, gesture, margin) for tests and displays

    def sample(self):
        # read one sample into the ring; returns True when a movement just ended
        off = self.pos * AXES
        self.sensor.read(self.ring, off)
        e = 0
        for k in range(AXES):
            d = self.ring[off + k] - self.prev[k]
            e += d if d > 0 else -d
            self.prev[k] = self.ring[off + k]
        self.pos = (self.pos + 1) % RING
        self.seen += 1
        if self.seen < 2:
            return False
        if e > MOTION:
            self.moving = True
            self.quiet = 0
            return False
        if self.moving:
            self.quiet += 1
            if self.quiet >= STILL:
                self.moving = False
                return True
        return False

    def window(self):
        # the last WIN samples, oldest first
        start = (self.pos - WIN) % RING
        for t in range(WIN):
            src = ((start + t) % RING) * AXES
            for k in range(AXES):
                self.win[t * AXES + k] = self.ring[src + k]
        return self.win

    def classify(self):
        # the best taught gesture and its margin over the runner-up (untaught slots still
        # hold random weights: they never win)
        m = self.m
        m.predict(self.window())
        sc = m.scores()
        best = 0
        for c in range(1, self.taught):
            if sc[c] > sc[best]:
                best = c
        runner = None
        for c in range(self.taught):
            if c != best and (runner is None or sc[c] > runner):
                runner = sc[c]
        return best, sc[best] - runner if runner is not None else 0

    def step(self):
        pressed = self.button.value() == 0
        if pressed and self.lesson < 0:
            self.lesson = self.taught % CLASSES
            self.log("teaching %s: do the gesture a few times, then release" % self.m.labels[self.lesson])
            if self.led:
                self.led.value(1)
        elif not pressed and self.lesson >= 0:
            self.end_lesson()
        if not self.sample():
            return
        if self.lesson >= 0:
            self.m.learn(self.window(), self.lesson)
            ex = self.keep[self.lesson]
            ex.append(array("h", self.win))  # a copy, for the rehearsal
            if len(ex) > KEEP:
                ex.pop(0)
            self.events.append(("example", self.lesson, len(ex)))
            self.log("  example %d of %s" % (len(ex), self.m.labels[self.lesson]))
        elif self.taught >= 2:
            g, margin = self.classify()
            self.events.append(("gesture", g, margin))
            self.log("%s (margin %d)" % (self.m.labels[g], margin))

    def end_lesson(self, path=MODEL):
        g = self.lesson
        self.lesson = -1
        if self.led:
            self.led.value(0)
        if not self.keep[g]:
            self.log("no movement seen: nothing taught")
            return
        if g == self.taught:
            self.taught += 1
        # rehearsal: two passes over the kept examples of every taught gesture, interleaved
        for _ in range(2):
            for i in range(KEEP):
                for c in range(self.taught):
                    if i < len(self.keep[c]):
                        self.m.learn(self.keep[c][i], c)
        self.m.save(path)
        self.log("learned %s from %d examples; saved %s" % (self.m.labels[g], len(self.keep[g]), path))
        self.events.append(("lesson", g, len(self.keep[g])))


def run(learner, sleep_ms, ticks_ms, ticks_diff, steps=0):
    # the sampling loop at RATE_HZ (steps > 0: stop after that many samples)
    period = 1000 // RATE_HZ
    t = ticks_ms()
    n = 0
    while steps <= 0 or n < steps:
        learner.step()
        n += 1
        t += period
        wait = ticks_diff(t, ticks_ms())
        if wait > 0:
            sleep_ms(wait)
