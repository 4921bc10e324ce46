# The gesture learner on the virtual board: a simulated MPU6050 on a fake I2C bus and a
# simulated button, driven through a lesson per gesture and then a live session.
#
#   MICROPYPATH=../../firmware micropython sim.py      # from examples/gesture
#
# Prints the learner's log, then one JSON line: gestures performed and named, accuracy.
# The I2C fake answers the MPU6050 registers gesture.py uses (WHO_AM_I, PWR_MGMT_1,
# CONFIG, SMPLRT_DIV, ACCEL_CONFIG, ACCEL_XOUT_H..); the motions are made up: a swipe
# (one period along x), a circle (x and y), a shake (three periods along z), each with a
# random amplitude, speed and tilt, plus sensor noise.
import json
import math
import sys

import gesture

G = 16384  # raw units per g (+-2 g range)
NAMES = ["swipe", "circle", "shake"]


class Rng:
    # xorshift32: the same numbers on every port
    def __init__(self, seed):
        self.s = seed or 1

    def next(self):
        s = self.s
        s ^= (s << 13) & 0xFFFFFFFF
        s ^= s >> 17
        s ^= (s << 5) & 0xFFFFFFFF
        self.s = s
        return s

    def uniform(self, a, b):
        return a + (b - a) * (self.next() / 4294967296)

    def int(self, a, b):
        return a + self.next() % (b - a + 1)


def motion(kind, n, amp, tilt):
    # n samples (x, y, z) in g of one gesture
    out = []
    for i in range(n):
        p = 2 * math.pi * (i + 0.5) / n
        x = y = 0.0
        z = 0.0
        if kind == 0:
            x = amp * math.sin(p)
        elif kind == 1:
            x = amp * (math.cos(p) - 1)
            y = amp * math.sin(p)
        else:
            z = amp * math.sin(3 * p)
        out.append((x + tilt, y, z + 1.0))
    return out


class Scenario:
    # the samples the sensor will produce and the button state at each of them
    def __init__(self, seed=7, lessons=5, live=30, kinds=3):
        r = Rng(seed)
        self.r = r
        self.samples = []
        self.pressed = []
        self.truth = []  # gestures of the live session, in order
        self.tilt = 0.0

        def idle(n, press):
            for _ in range(n):
                self.samples.append((self.tilt, 0.0, 1.0))
                self.pressed.append(press)

        def move(kind, press):
            seg = motion(kind, r.int(18, 24), r.uniform(0.7, 1.2), r.uniform(-0.1, 0.1))
            self.samples.extend(seg)
            self.pressed.extend([press] * len(seg))

        idle(30, False)
        for kind in range(kinds):
            idle(5, True)
            for _ in range(lessons):
                idle(r.int(15, 25), True)
                move(kind, True)
            idle(15, True)
            idle(30, False)
        for _ in range(live):
            kind = r.int(0, kinds - 1)
            idle(r.int(15, 25), False)
            move(kind, False)
            self.truth.append(kind)
        idle(20, False)
        self.i = 0

    def next(self):
        x, y, z = self.samples[min(self.i, len(self.samples) - 1)]
        self.i += 1
        r = self.r
        return [int(G * (v + r.uniform(-0.01, 0.01))) for v in (x, y, z)]


class FakeI2C:
    # an MPU6050 at 0x68: the registers gesture.MPU6050 reads and writes
    def __init__(self, scenario, addr=0x68):
        self.sc = scenario
        self.addr = addr
        self.regs = {}

    def scan(self):
        return [self.addr]

    def writeto_mem(self, addr, reg, data):
        assert addr == self.addr
        self.regs[reg] = data[0]

    def readfrom_mem(self, addr, reg, n):
        assert addr == self.addr and reg == 0x75 and n == 1
        return bytes([0x68])

    def readfrom_mem_into(self, addr, reg, buf):
        assert addr == self.addr and reg == 0x3B and len(buf) == 6
        assert self.regs.get(0x6B) == 0, "read before PWR_MGMT_1 woke the sensor"
        for k, v in enumerate(self.sc.next()):
            v &= 0xFFFF
            buf[2 * k] = v >> 8
            buf[2 * k + 1] = v & 0xFF


class FakeButton:
    def __init__(self, scenario):
        self.sc = scenario

    def value(self):
        i = self.sc.i
        return 0 if self.sc.pressed[min(i, len(self.sc.pressed) - 1)] else 1


class FakeLed:
    def __init__(self):
        self.on = 0

    def value(self, v):
        self.on = v


def main(seed=7, quiet=False):
    sc = Scenario(seed)
    learner = gesture.Learner(
        gesture.find_sensor(FakeI2C(sc)),
        FakeButton(sc),
        FakeLed(),
        model=gesture.new_model(),
        log=(lambda s: None) if quiet else print,
    )
    clock = [0]

    def ticks():
        return clock[0]

    def sleep(ms):
        clock[0] += ms

    gesture.run(learner, sleep, ticks, lambda a, b: a - b, steps=len(sc.samples))
    named = [g for kind, g, _ in learner.events if kind == "gesture"]
    lessons = [(g, n) for kind, g, n in learner.events if kind == "lesson"]
    right = sum(1 for a, b in zip(named, sc.truth) if a == b)
    res = {
        "performed": len(sc.truth),
        "named": len(named),
        "correct": right,
        "accuracy": right / len(sc.truth),
        "lessons": lessons,
        "truth": sc.truth,
        "predicted": named,
    }
    print(json.dumps(res))
    return res


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 7)
