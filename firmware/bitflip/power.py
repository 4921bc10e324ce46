# Supply power from an INA219 or INA226 on the board's I2C bus (board file "power_meter",
# passed in the config as "meter"). Reads the shunt and bus voltage registers the chips
# convert continuously from power-on (no calibration register needed):
#   INA219: shunt LSB 10 uV (signed), bus = bits 15..3 x 4 mV
#   INA226: shunt LSB 2.5 uV (signed), bus LSB 1.25 mV
# power = bus voltage x shunt voltage / shunt resistance.
# The app reads it once after every training block (outside the heap lock) and integrates
# power x the block's busy time. NOT YET RUN ON HARDWARE: the register maths is tested with
# a fake bus under the unix port only.
CHIPS = {"ina219": (10.0, 0), "ina226": (2.5, 1)}  # shunt uV per LSB, bus format


class Meter:
    def __init__(self, cfg, i2c=None):
        chip = cfg.get("chip", "ina219")
        if chip not in CHIPS:
            raise ValueError("power meter chip must be ina219 or ina226")
        self.shunt_uv, self.fmt = CHIPS[chip]
        self.addr = int(cfg.get("addr", 0x40))
        self.ohms = float(cfg.get("shunt_ohms", 0.1))
        if i2c is None:
            from machine import I2C, Pin

            i2c = I2C(int(cfg.get("i2c", 0)), sda=Pin(int(cfg["sda"])), scl=Pin(int(cfg["scl"])))
        self.i2c = i2c
        self.buf = bytearray(2)
        self.uj = 0.0  # integrated energy, micro-joules

    def _reg(self, reg):
        self.i2c.readfrom_mem_into(self.addr, reg, self.buf)
        return (self.buf[0] << 8) | self.buf[1]

    def power_mw(self):
        shunt = self._reg(1)
        if shunt & 0x8000:
            shunt -= 0x10000
        bus = self._reg(2)
        bus_v = (bus >> 3) * 0.004 if self.fmt == 0 else bus * 0.00125
        amps = shunt * self.shunt_uv * 1e-6 / self.ohms
        return bus_v * amps * 1000.0

    def add(self, busy_us):
        # one reading for a block that kept the CPU busy for busy_us
        self.uj += self.power_mw() * busy_us / 1000.0
        return int(self.uj + 0.5)
