"""Board files (schema over every file), port listing and --port auto with fake port records."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from types import SimpleNamespace

import pytest
from bitflip import boards
from bitflip.cli import main
from bitflip.errors import UsageError
from bitflip.link.ports import describe, list_ports, looks_like, resolve_port
from click.testing import CliRunner

ROOT = Path(__file__).resolve().parents[1]
BOARD_FILES = sorted((ROOT / "boards").glob("*.json"))
REAL = ["pico", "pico2", "esp32", "esp32s3", "esp32c3"]


# --- schema -------------------------------------------------------------------------------
@pytest.mark.parametrize("path", BOARD_FILES, ids=lambda p: p.stem)
def test_every_board_file_loads_and_validates(path: Path) -> None:
    raw = json.loads(path.read_text())
    assert raw["name"] == path.stem
    b = boards.load(path.stem)
    if b.is_host:
        return
    assert b.arch in boards.ARCHS and b.deploy_arch in boards.ARCHS
    assert b.heap_bytes >= 64 * 1024
    assert b.clock_hz >= 48_000_000
    assert b.min_micropython >= (1, 23, 0)


@pytest.mark.parametrize("name", REAL)
def test_real_boards_have_everything_deploy_and_flash_need(name: str) -> None:
    b = boards.load(name)
    d = b.data
    assert b.kind == "board"
    for key in ("clock_source", "heap_source", "machine_suffix", "arch_note", "min_micropython"):
        assert key in d, f"{name}: missing {key}"
    assert d["power"]["source"].split(":")[0] in boards.SOURCE_KINDS
    assert b.usb_ids, "--port auto needs USB ids"
    assert b.link["kind"] in ("usb_cdc", "uart")
    if b.link["kind"] == "uart":  # no back-pressure: the host must pace its writes
        assert 0 < b.link["pace_bytes_per_s"] <= 11520  # 115200 baud 8N1
    fl = b.flash
    assert fl["download"].startswith("https://micropython.org/download/")
    if b.data["chip"].startswith("rp2"):
        assert fl["method"] == "uf2"
    else:
        assert fl["method"] == "esptool" and fl["chip"] == d["chip"]


@pytest.mark.parametrize("name", REAL)
def test_every_real_board_has_a_virtual_twin_with_its_heap(name: str) -> None:
    real, sim = boards.load(name), boards.load(f"sim-{name}")
    assert sim.is_virtual and sim.real == name
    assert sim.heap_bytes == real.heap_bytes
    assert sim.deploy_arch == "x64" and sim.word_bytes == 8 and real.word_bytes == 4
    assert sim.usb_ids == [] and sim.flash == {}  # a sim has no USB and nothing to flash
    assert sim.link["kind"] == "pty"


def test_archs_and_offsets_match_the_chips() -> None:
    got = {n: (boards.load(n).arch, boards.load(n).flash.get("offset")) for n in REAL}
    assert got == {
        "pico": ("armv6m", None),
        "pico2": ("armv7m", None),
        "esp32": ("xtensawin", "0x1000"),
        "esp32s3": ("xtensawin", "0x0"),
        "esp32c3": ("rv32imc", "0x0"),
    }


def _pico() -> dict:
    return copy.deepcopy(json.loads((ROOT / "boards" / "pico.json").read_text()))


@pytest.mark.parametrize(
    "mutate, message",
    [
        (lambda d: d["power"].update(source="26 mA somewhere"), "power.source"),
        (lambda d: d.update(heap_source="trust me"), "heap_source"),
        (lambda d: d.update(usb_ids=["2E8A:0005"]), "usb_ids"),
        (lambda d: d.update(usb_ids=["2e8a0005"]), "usb_ids"),
        (lambda d: d["link"].update(kind="uart", pace_bytes_per_s=0), "pace_bytes_per_s"),
        (lambda d: d["link"].update(kind="pty"), "pty"),
        (lambda d: d.update(deploy_arch="z80"), "deploy_arch"),
        (lambda d: d.update(min_micropython="v1.26"), "min_micropython"),
        (lambda d: d["flash"].update(method="jtag"), "flash.method"),
        (lambda d: d["flash"].update(uf2_families=["e48bff56"]), "uf2_families"),
        (lambda d: d["flash"].update(download="micropython.org"), "download"),
    ],
)
def test_validate_names_the_problem(mutate, message: str) -> None:
    d = _pico()
    mutate(d)
    with pytest.raises(UsageError, match=message):
        boards.validate(d, "pico.json")


def test_validate_esptool_fields() -> None:
    d = json.loads((ROOT / "boards" / "esp32.json").read_text())
    boards.validate(d, "esp32.json")
    d["flash"]["offset"] = 4096
    with pytest.raises(UsageError, match="offset"):
        boards.validate(d, "esp32.json")


# --- ports --------------------------------------------------------------------------------
def rec(device: str, vid: int | None = None, pid: int | None = None, desc: str = "n/a") -> SimpleNamespace:
    return SimpleNamespace(device=device, vid=vid, pid=pid, description=desc, serial_number=None, manufacturer=None)


PICO = rec("/dev/ttyACM0", 0x2E8A, 0x0005, "Board in FS mode")
JTAG = rec("/dev/ttyACM1", 0x303A, 0x1001, "USB JTAG/serial debug unit")
CP210X = rec("/dev/ttyUSB0", 0x10C4, 0xEA60, "CP2102 USB to UART Bridge Controller")
BUILTIN = rec("/dev/ttyS0")


def test_list_ports_from_records() -> None:
    ps = list_ports([JTAG, BUILTIN, PICO])
    assert [p.device for p in ps] == ["/dev/ttyACM0", "/dev/ttyACM1", "/dev/ttyS0"]
    assert ps[0].usb_id == "2e8a:0005" and ps[2].usb_id == "" and ps[2].description == ""


def test_shared_usb_ids_name_every_candidate() -> None:
    by = {p.device: p for p in list_ports([PICO, JTAG, CP210X, BUILTIN])}
    pico, jtag, cp, builtin = (by[r.device] for r in (PICO, JTAG, CP210X, BUILTIN))
    assert looks_like(pico) == ["pico", "pico2"]  # every rp2 MicroPython is 2e8a:0005
    assert looks_like(jtag) == ["esp32c3", "esp32s3"]  # Espressif USB-Serial/JTAG
    assert looks_like(cp) == ["esp32"]
    assert looks_like(builtin) == []
    line = describe(jtag)
    assert "esp32c3 or esp32s3" in line and "same USB id" in line and "ESP32-S3 or ESP32-C3" in line
    assert "any board behind it" in describe(cp)
    assert "not a USB board" in describe(builtin)


def test_resolve_port_auto_picks_the_single_candidate() -> None:
    assert resolve_port("auto", boards.load("pico"), [PICO, CP210X, BUILTIN]) == "/dev/ttyACM0"
    assert resolve_port(None, boards.load("esp32"), [PICO, CP210X]) == "/dev/ttyUSB0"
    assert resolve_port("auto", boards.load("esp32s3"), [PICO, JTAG]) == "/dev/ttyACM1"


def test_resolve_port_auto_refuses_to_guess() -> None:
    two = rec("/dev/ttyACM2", 0x2E8A, 0x0005)
    with pytest.raises(UsageError) as e:
        resolve_port("auto", boards.load("pico"), [PICO, two])
    msg = str(e.value)
    assert "2 ports look like a pico" in msg and "/dev/ttyACM0" in msg and "/dev/ttyACM2" in msg and "--port" in msg
    with pytest.raises(UsageError, match=r"no serial port looks like a esp32c3 \(USB ids 303a:1001\)"):
        resolve_port("auto", boards.load("esp32c3"), [PICO, BUILTIN])
    with pytest.raises(UsageError, match="2 ports look like a known board"):  # no --board: any board
        resolve_port("auto", None, [PICO, CP210X])
    with pytest.raises(UsageError, match="found: no serial ports at all"):
        resolve_port("auto", boards.load("pico"), [])


def test_resolve_port_explicit_and_virtual() -> None:
    assert resolve_port("/dev/ttyS0", boards.load("pico"), []) == "/dev/ttyS0"
    assert resolve_port("socket://localhost:1234", boards.load("esp32"), []) == "socket://localhost:1234"
    with pytest.raises(UsageError, match="does not exist"):
        resolve_port("/dev/ttyNOPE9", boards.load("pico"), [])
    with pytest.raises(UsageError, match="bitflip sim --board sim-pico"):
        resolve_port("auto", boards.load("sim-pico"), [PICO])


def test_ports_command_lists_fake_ports(monkeypatch: pytest.MonkeyPatch) -> None:
    import serial.tools.list_ports as lp

    monkeypatch.setattr(lp, "comports", lambda: [PICO, JTAG])
    r = CliRunner().invoke(main, ["ports"])
    assert r.exit_code == 0, r.output
    lines = r.output.strip().splitlines()
    assert lines[0].startswith("/dev/ttyACM0") and "pico or pico2" in lines[0]
    assert "esp32c3 or esp32s3" in lines[1]
    r = CliRunner().invoke(main, ["ports", "--json"])
    assert json.loads(r.output.splitlines()[1])["boards"] == ["esp32c3", "esp32s3"]
    monkeypatch.setattr(lp, "comports", list)
    assert "no serial ports" in CliRunner().invoke(main, ["ports"]).output
