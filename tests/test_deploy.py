"""deploy (mpy-cross build, device checks, copy through mpremote to a virtual board), mip's
package.json, flash (UF2 boot drive, esptool command line). Device tests: test_device.py."""

from __future__ import annotations

import json
import shutil
import struct
import subprocess
import sys
import time
from pathlib import Path

import pytest
from bitflip import boards
from bitflip.cli import main
from bitflip.errors import BitflipError, UsageError
from bitflip.link import flash as flash_mod
from bitflip.link.build import (
    Build,
    build_firmware,
    firmware_src,
    firmware_versions,
    mpy_header,
    render_package_json,
)
from bitflip.link.deploy import (
    ARCH_NUM,
    check_device,
    copy_build,
    lib_dir,
)
from bitflip.link.remote import Remote
from bitflip.link.virtual import VirtualBoard
from bitflip.training.runner import TrainRequest, train
from click.testing import CliRunner

ROOT = Path(__file__).resolve().parents[1]
SOURCES = sorted(p.stem for p in (ROOT / "firmware" / "bitflip").glob("*.py"))


# --- build --------------------------------------------------------------------------------
def test_dry_run_builds_and_prints_the_folder_last(tmp_path: Path) -> None:
    r = CliRunner().invoke(main, ["deploy", "--board", "pico", "--dry-run", "--build-dir", str(tmp_path)])
    assert r.exit_code == 0, r.output
    folder = Path(r.output.strip().splitlines()[-1])
    assert folder == tmp_path / "armv6m" / "bitflip"
    assert sorted(p.stem for p in folder.glob("*.mpy")) == sorted(SOURCES + ["_build"])
    manifest = json.loads((folder.parent / "manifest.json").read_text())
    version, proto = firmware_versions()
    assert (manifest["version"], manifest["proto"], manifest["arch"]) == (version, proto, "armv6m")
    assert set(manifest["files"]) == {p.name for p in folder.glob("*.mpy")}


@pytest.mark.parametrize("arch", ["armv6m", "armv7m", "xtensawin", "rv32imc", "x64"])
def test_build_every_arch_stamps_native_code_with_it(arch: str, tmp_path: Path) -> None:
    b = build_firmware(arch, tmp_path)
    heads = {n: mpy_header((b.package / n).read_bytes()) for n in b.files}
    assert all(v == 6 for v, _, _ in heads.values())
    native = {n for n, (_, _, a) in heads.items() if a}
    assert "kernels.mpy" in native  # the viper kernels are machine code for this arch
    assert {a for n, (_, _, a) in heads.items() if a} == {ARCH_NUM[arch]}
    assert b.mpy == (6, 3)


def test_build_is_deterministic(tmp_path: Path) -> None:
    a = build_firmware("armv6m", tmp_path / "a").files
    assert build_firmware("armv6m", tmp_path / "b").files == a  # so deploy can skip by hash


def _src_with(tmp_path: Path, name: str, text: str) -> Path:
    src = tmp_path / "src"
    shutil.copytree(firmware_src(), src, ignore=shutil.ignore_patterns("__pycache__"))
    (src / name).write_text(text)
    return src


THUMB = """import micropython

@micropython.asm_thumb
def add1(r0):
    add(r0, r0, 1)
"""


def test_thumb_only_files_are_skipped_on_other_archs(tmp_path: Path) -> None:
    src = _src_with(tmp_path, "kernels_thumb.py", THUMB)
    arm = build_firmware("armv6m", tmp_path / "b", src=src)
    assert "kernels_thumb.mpy" in arm.files and arm.skipped == []
    xt = build_firmware("xtensawin", tmp_path / "b", src=src)
    assert "kernels_thumb.mpy" not in xt.files and xt.skipped == ["kernels_thumb.py"]
    manifest = json.loads((xt.folder / "manifest.json").read_text())
    assert manifest["skipped"] == ["kernels_thumb.py"]


def test_other_compile_errors_fail_the_build_and_keep_the_old_one(tmp_path: Path) -> None:
    good = build_firmware("x64", tmp_path / "b")
    src = _src_with(tmp_path, "broken.py", THUMB)  # asm_thumb in a file not named kernels_thumb*
    with pytest.raises(BitflipError, match="mpy-cross -march=xtensawin failed on broken.py"):
        build_firmware("xtensawin", tmp_path / "b", src=src)
    assert not (tmp_path / "b" / "xtensawin").exists()
    assert (good.package / "kernels.mpy").exists()


# --- what the board must be ---------------------------------------------------------------
def _info(version: tuple[int, int, int], arch: str, machine: str = "", sub: int = 3) -> dict:
    return {
        "version": version,
        "mpy": 6 | (sub << 8) | (ARCH_NUM[arch] << 10) if arch != "none" else 6 | (sub << 8),
        "platform": "rp2",
        "machine": machine,
        "path": ["", "/lib"],
    }


def _build(arch: str) -> Build:
    return Build(arch, Path("/nonexistent"), "0.1.0", 1, mpy=(6, 3))


def test_check_device_accepts_a_matching_board() -> None:
    check_device(_info((1, 26, 0), "armv6m", "Raspberry Pi Pico with RP2040"), _build("armv6m"), boards.load("pico"))
    # a Cortex-M33 build (armv7emsp) loads Thumb code from armv6m up to its own arch
    check_device(
        _info((1, 28, 0), "armv7emsp", "Raspberry Pi Pico2 with RP2350"), _build("armv7m"), boards.load("pico2")
    )


@pytest.mark.parametrize(
    "info, board, arch, message",
    [
        (
            _info((1, 25, 0), "armv6m", "Raspberry Pi Pico with RP2040"),
            "pico",
            "armv6m",
            r"too old: pico needs MicroPython 1\.26 or later \(armv6m viper code needs native long jumps",
        ),
        (_info((1, 26, 0), "none", "Raspberry Pi Pico with RP2040"), "pico", "armv6m", "no native code emitter"),
        (_info((1, 22, 0), "armv6m", "Raspberry Pi Pico with RP2040", sub=2), "pico", "armv6m", r"loads \.mpy v6\.2"),
        (
            _info((1, 26, 0), "xtensawin", "Generic ESP32 module with ESP32"),
            "pico",
            "armv6m",
            "runs xtensawin native code but --board pico is built for armv6m",
        ),
        (
            _info((1, 26, 0), "armv6m", "Raspberry Pi Pico with RP2040"),
            "pico2",
            "armv7m",
            "runs armv6m native code but --board pico2 is built for armv7m",
        ),
        (
            _info((1, 26, 0), "xtensawin", "Generic ESP32S3 module with ESP32S3"),
            "esp32",
            "xtensawin",
            "is not a ESP32-WROOM-32",
        ),
    ],
)
def test_check_device_refuses_with_one_clear_line(info: dict, board: str, arch: str, message: str) -> None:
    with pytest.raises(UsageError, match=message) as e:
        check_device(info, _build(arch), boards.load(board))
    assert "\n" not in str(e.value)


def test_lib_dir_follows_mip() -> None:
    assert lib_dir(["", ".frozen", "/lib"]) == "/lib"
    assert lib_dir(["", "lib", ".frozen"]) == "lib"
    with pytest.raises(UsageError, match="no lib folder"):
        lib_dir(["", "/rom/lib"])


# --- deploy to a virtual board through mpremote ---------------------------------------------
@pytest.fixture
def empty_sim(tmp_path: Path):
    with VirtualBoard(boards.load("sim-pico"), tmp_path / "flash", install=False) as vb:
        yield vb


@pytest.mark.slow
def test_deploy_into_an_empty_virtual_board_then_train_bit_exactly(empty_sim: VirtualBoard, tmp_path: Path) -> None:
    lib = empty_sim.flash / "lib" / "bitflip"
    r = CliRunner().invoke(
        main, ["deploy", "--board", "sim-pico", "--port", empty_sim.port, "--build-dir", str(tmp_path / "build")]
    )
    assert r.exit_code == 0, r.output
    assert "verified: bitflip" in r.output
    assert "a training step with the viper kernels gives the host reference's weights" in r.output
    x64 = [s for s in SOURCES if not s.startswith("kernels_thumb")]  # Thumb assembler: Arm boards only
    assert sorted(p.name for p in lib.iterdir()) == sorted(f"{s}.mpy" for s in x64 + ["_build"])
    # a stale source would shadow the .mpy at import: deploy removes it; unchanged files stay
    (lib / "app.py").write_text("raise ImportError('stale')\n")
    build = build_firmware("x64", tmp_path / "build")
    res = copy_build(build, boards.load("sim-pico"), empty_sim.port)
    assert res.copied == [] and res.removed == ["app.py"] and len(res.unchanged) == len(build.files)
    with Remote(empty_sim.port) as rem:
        rem.enter_raw()
        got = rem.eval(
            "import bitflip, bitflip.app, bitflip.kernels\n"
            "print(repr((bitflip.VERSION, bitflip.app.__file__, bitflip.kernels.__file__)))"
        )
    assert got == (build.version, "lib/bitflip/app.mpy", "lib/bitflip/kernels.mpy")
    # the deployed x64 .mpy firmware trains like a real board (the real-board path, --port)
    # and gives the host reference's weights bit for bit
    req = {"dataset": "digits", "model": "32-10", "epochs": 1, "seed": 3}
    dev = train(TrainRequest(board="sim-pico", port=empty_sim.port, out=tmp_path / "dev", **req))
    host = train(TrainRequest(board="host", out=tmp_path / "host", **req))
    assert dev["weights_sha256"] == host["weights_sha256"]
    # the same board named as a Pico is refused before anything is sent: it says it is x64
    t0 = time.monotonic()
    r = CliRunner().invoke(
        main,
        [
            "train",
            "--board",
            "pico",
            "--port",
            empty_sim.port,
            "--dataset",
            "digits",
            "--epochs",
            "1",
            "--out",
            str(tmp_path / "wrong"),
        ],
    )
    assert r.exit_code == 2, r.output
    assert r.stderr.count("\n") == 1 and "x64 native code" in r.stderr and "--board pico" in r.stderr
    assert time.monotonic() - t0 < 30


def test_deploy_refuses_a_port_that_is_not_micropython(tmp_path: Path) -> None:
    import os
    import pty

    from bitflip.link.deploy import deploy

    master, slave = pty.openpty()  # nobody answers on this pty
    try:
        with pytest.raises(UsageError, match="does not answer like a MicroPython board") as e:
            deploy("pico", os.ttyname(slave), build_root=tmp_path, connect_timeout=1.0)
    finally:
        os.close(master)
        os.close(slave)
    assert e.value.exit_code == 2 and "\n" not in str(e.value)


def test_deploy_auto_port_for_a_virtual_board_says_how() -> None:
    r = CliRunner().invoke(main, ["deploy", "--board", "sim-pico"])
    assert r.exit_code == 2 and "bitflip sim --board sim-pico" in r.output


# --- mip: package.json --------------------------------------------------------------------
def test_package_json_lists_every_firmware_file() -> None:
    assert (ROOT / "package.json").read_text() == render_package_json(), "regenerate package.json"
    d = json.loads((ROOT / "package.json").read_text())
    assert d["version"] == firmware_versions()[0]
    assert all(not src.startswith(("http", "github:")) for _, src in d["urls"])  # relative: any fork works


def test_mip_install_local_package_json_into_a_virtual_board(empty_sim: VirtualBoard) -> None:
    p = subprocess.run(
        [
            sys.executable,
            "-m",
            "mpremote",
            "connect",
            empty_sim.port,
            "resume",
            "mip",
            "install",
            "--target",
            "lib",
            str(ROOT / "package.json"),
        ],
        check=False,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert p.returncode == 0, p.stdout + p.stderr
    with Remote(empty_sim.port) as rem:
        rem.enter_raw()
        got = rem.eval("import bitflip, bitflip.app\nprint(repr((bitflip.VERSION, bitflip.app.__file__)))")
    assert got == (firmware_versions()[0], "lib/bitflip/app.py")


# --- flash ----------------------------------------------------------------------------------
def uf2(family: int | None, blocks: int = 3) -> bytes:
    out = b""
    for i in range(blocks):
        flags = 0x2000 if family is not None else 0
        head = struct.pack(
            "<IIIIIIII", 0x0A324655, 0x9E5D5157, flags, 0x10000000 + 256 * i, 256, i, blocks, family or 0
        )
        out += head + bytes(476) + struct.pack("<I", 0x0AB16F30)
    return out


def esp_bin(chip_id: int) -> bytes:
    head = bytearray(64)
    head[0] = 0xE9
    struct.pack_into("<H", head, 12, chip_id)
    return bytes(head)


def boot_drive(root: Path, board_id: str) -> Path:
    d = root / "media" / "user" / board_id
    d.mkdir(parents=True)
    (d / "INFO_UF2.TXT").write_text(f"UF2 Bootloader v3.0\nModel: Raspberry Pi\nBoard-ID: {board_id}\n")
    return d


def test_flash_uf2_copies_to_the_boot_drive(tmp_path: Path) -> None:
    drive = boot_drive(tmp_path, "RPI-RP2")
    fw = tmp_path / "RPI_PICO-20250415-v1.26.0.uf2"
    fw.write_bytes(uf2(0xE48BFF56))
    r = CliRunner().invoke(main, ["flash", "--board", "pico", "--firmware", str(fw), "--drive", str(drive)])
    assert r.exit_code == 0, r.output
    assert (drive / fw.name).read_bytes() == fw.read_bytes()


def test_flash_finds_the_boot_drive_among_mounts(tmp_path: Path) -> None:
    boot_drive(tmp_path, "RPI-RP2")
    pico2 = boot_drive(tmp_path, "RP2350")
    (tmp_path / "media" / "user" / "USBSTICK").mkdir()
    fw = tmp_path / "fw.uf2"
    fw.write_bytes(uf2(0xE48BFF57, 1) + uf2(0xE48BFF59))  # RP2350 files start with an 'absolute' block
    flash_mod.flash("pico2", fw, globs=[str(tmp_path / "media" / "*" / "*")])
    assert (pico2 / "fw.uf2").exists()
    assert [d.name for d in flash_mod.find_boot_drives([str(tmp_path / "media/*/*")])] == ["RP2350", "RPI-RP2"]


@pytest.mark.parametrize(
    "board, name, data, message",
    [
        ("pico", "fw.bin", esp_bin(0), "pico takes a .uf2 firmware"),
        ("esp32", "fw.uf2", uf2(0x1C5F21B0), "esp32 takes a .bin firmware"),
        ("pico", "fw.uf2", uf2(0xE48BFF59), "fw.uf2 is a firmware for RP2350 Arm, not for pico"),
        ("pico2", "fw.uf2", uf2(0xE48BFF56), "fw.uf2 is a firmware for RP2040, not for pico2"),
        ("pico", "fw.uf2", b"hello", "not a UF2 file"),
        ("esp32", "fw.bin", esp_bin(9), "fw.bin is a firmware for esp32s3, not for esp32"),
        ("esp32c3", "fw.bin", b"\x00" * 64, "not an ESP firmware image"),
        ("sim-pico", "fw.uf2", uf2(0xE48BFF56), "has no firmware to flash"),
    ],
)
def test_flash_refuses_wrong_files_with_exit_2(
    board: str, name: str, data: bytes, message: str, tmp_path: Path
) -> None:
    drive = boot_drive(tmp_path, "RPI-RP2")
    fw = tmp_path / name
    fw.write_bytes(data)
    r = CliRunner().invoke(
        main, ["flash", "--board", board, "--firmware", str(fw), "--drive", str(drive), "--port", "/dev/ttyS0"]
    )
    assert r.exit_code == 2, r.output
    assert message in r.output and len(r.output.strip().splitlines()) == 1
    assert not (drive / name).exists()


def test_flash_refuses_the_wrong_boot_drive(tmp_path: Path) -> None:
    drive = boot_drive(tmp_path, "RP2350")
    fw = tmp_path / "fw.uf2"
    fw.write_bytes(uf2(0xE48BFF56))
    r = CliRunner().invoke(main, ["flash", "--board", "pico", "--firmware", str(fw), "--drive", str(drive)])
    assert r.exit_code == 2 and "boot drive of a 'RP2350' board, not of a pico" in r.output
    r = CliRunner().invoke(main, ["flash", "--board", "pico", "--firmware", str(fw), "--drive", str(tmp_path)])
    assert r.exit_code == 2 and "not a UF2 boot drive" in r.output


def test_flash_missing_file_says_where_to_get_one(tmp_path: Path) -> None:
    r = CliRunner().invoke(main, ["flash", "--board", "esp32s3", "--firmware", str(tmp_path / "nope.bin")])
    assert r.exit_code == 2 and "https://micropython.org/download/ESP32_GENERIC_S3/" in r.output


def test_esptool_command_line() -> None:
    for name, offset in (("esp32", "0x1000"), ("esp32s3", "0x0"), ("esp32c3", "0x0")):
        fl = boards.load(name).flash
        cmd = flash_mod.esptool_command(fl["chip"], "/dev/ttyUSB0", "fw.bin", int(fl["offset"], 16), fl["baud"])
        assert cmd == [
            "esptool",
            "--chip",
            name,
            "--port",
            "/dev/ttyUSB0",
            "--baud",
            "460800",
            "write_flash",
            "-z",
            offset,
            "fw.bin",
        ]


def test_flash_bin_without_esptool_says_how_to_install(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(flash_mod, "esptool_base", lambda: None)
    fw = tmp_path / "ESP32_GENERIC-v1.26.bin"
    fw.write_bytes(esp_bin(0))
    r = CliRunner().invoke(main, ["flash", "--board", "esp32", "--firmware", str(fw), "--port", "/dev/ttyS0"])
    assert r.exit_code == 2 and "pip install esptool" in r.output


def test_flash_bin_runs_esptool(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    ran: list[list[str]] = []
    monkeypatch.setattr(flash_mod, "esptool_base", lambda: ["esptool"])
    monkeypatch.setattr(
        flash_mod.subprocess, "run", lambda cmd, **kw: ran.append(cmd) or subprocess.CompletedProcess(cmd, 0)
    )
    fw = tmp_path / "c3.bin"
    fw.write_bytes(esp_bin(5))
    flash_mod.flash("esp32c3", fw, port="/dev/ttyS0")
    assert ran == [
        [
            "esptool",
            "--chip",
            "esp32c3",
            "--port",
            "/dev/ttyS0",
            "--baud",
            "460800",
            "write_flash",
            "-z",
            "0x0",
            str(fw),
        ]
    ]
