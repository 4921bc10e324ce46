# The gesture learner on a board: copy this file, gesture.py and (with `bitflip deploy`) the
# bitflip package to the board; it runs at every boot. Wiring: README.md.
import sys
import time

from machine import I2C, Pin

import gesture

if sys.platform == "rp2":  # Raspberry Pi Pico: I2C0 on GP4 (SDA) / GP5 (SCL), button GP15 to GND
    i2c = I2C(0, sda=Pin(4), scl=Pin(5), freq=400000)
    button = Pin(15, Pin.IN, Pin.PULL_UP)
    try:
        led = Pin("LED", Pin.OUT)  # Pico and Pico W
    except (TypeError, ValueError):
        led = Pin(25, Pin.OUT)
else:  # ESP32 DevKitC: I2C on GPIO21 (SDA) / GPIO22 (SCL), the BOOT button (GPIO0), LED on GPIO2
    i2c = I2C(0, sda=Pin(21), scl=Pin(22), freq=400000)
    button = Pin(0, Pin.IN, Pin.PULL_UP)
    led = Pin(2, Pin.OUT)

learner = gesture.Learner(gesture.find_sensor(i2c), button, led)
print("hold the button and do a new gesture a few times; release; then move")
gesture.run(learner, time.sleep_ms, time.ticks_ms, time.ticks_diff)
