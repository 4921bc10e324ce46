# bitflip device package: gradient-free training of binary/ternary networks on the board.
# Deployed to the board as /lib/bitflip; the host imports this same folder as
# bitflip.device (only protocol.py is used there).
VERSION = "0.1.0"
