"""Issue 14, bad input, as a property: argv lists generated from the CLI's option grammar for
every command (valid option names, valid and malformed values: empty strings, spaces, unicode
digits, negative and huge numbers, paths that do not exist, are directories or /proc files,
unknown boards, datasets, encodings and models, ports such as /dev/null), run in process with
click's CliRunner, with the current directory a fresh folder per call. For every invocation:

- the exit code is 0 or 2 (1 is for failures while running: a link or a board, never reached
  here: no real device is ever opened and no virtual board started);
- no traceback, no exception escapes the command;
- an error (exit 2) is exactly one line on stderr, `bitflip: error: ...`;
- a rejected call leaves the current directory as it was (no runs/, no report.png) and no
  call changes a file it was not told to write (the fixtures are checked after every call).

Nothing slow runs: training is on `--board host` with `--epochs` 1 or 2 and `--limit` given
first (a generated `--limit` may override it), sim boards always get a port that is refused,
`bench`, `sim`, `data fetch` and `flash` only get input that must be refused. `make test` runs
a fixed, derandomized set of FUZZ_EXAMPLES examples; BITFLIP_FUZZ_EXAMPLES=1000 runs 1000.
BITFLIP_FUZZ_LOG=FILE appends one JSON line per invocation (argv, exit code, problems) and
BITFLIP_FUZZ_KEEP_GOING=1 records problems there instead of failing on the first.
"""

from __future__ import annotations

import itertools
import json
import os
import shutil
import signal
import subprocess
import time
import traceback
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from bitflip.cli import main
from click.testing import CliRunner, Result
from hypothesis import HealthCheck, Phase, given, seed, settings
from hypothesis import strategies as st

ROOT = Path(__file__).resolve().parents[1]
FUZZ_EXAMPLES = int(os.environ.get("BITFLIP_FUZZ_EXAMPLES", "300"))
SEED = int(os.environ["BITFLIP_FUZZ_SEED"]) if os.environ.get("BITFLIP_FUZZ_SEED") else None  # another sample
KEEP_GOING = os.environ.get("BITFLIP_FUZZ_KEEP_GOING") == "1"
LOG = os.environ.get("BITFLIP_FUZZ_LOG")
CALL_TIMEOUT_S = int(
    os.environ.get("BITFLIP_FUZZ_CALL_S", "60")
)  # one invocation; the slowest valid one (a 2-epoch host run on table) takes ~2 s

COUNTS = {"invocations": 0, "problems": 0}


class CallTimedOut(BaseException):
    """Raised by SIGALRM inside a call that ran too long (not an Exception: nothing catches it)."""


# ---------------------------------------------------------------------------------- values

JUNK = [
    "",
    " ",
    "  ",
    "\t",
    "-",
    "--",
    "x",
    "３２",
    "١٢",
    "½",
    "1e3",
    "0x10",
    "1_000",
    "+5",
    " 5",
    "5 ",
    "nan",
    "inf",
    "-0",
    "None",
    "true",
    "\U0001f4a5",
    "a=b",
    "=",
    ",",
    "..",
    "'",
    '"',
    "$HOME",
    "%s",
    "{}",
    "\\",
    "é",
]
HUGE = [str(2**31), str(2**32), str(2**63), str(2**64), str(10**30), "-" + str(10**30), "9" * 400]

text = st.text(st.characters(blacklist_characters="\x00", blacklist_categories=("Cs",)), max_size=12)
junk = st.one_of(st.sampled_from(JUNK), text)


BAD_PORTS = [
    "/dev/null",
    "/dev/zero",
    "/dev/full",
    "/dev/ttyNOPE",
    "/dev/ttyNOPE0",
    "auto",
    "",
    " ",
    "/proc/self/status",
    "/proc",
    "/sys",
    "COM3",
    "relative-port",
    " /dev/null",
]
# paths that must be refused for writing (root can write almost anywhere else: never generated)
BAD_OUT = [
    "",
    " ",
    ".",
    "/",
    "/proc/nope",
    "/proc/nope/deeper",
    "/proc/self/status",
    "/sys/nope",
    "/dev/null",
    "/dev/null/x",
    "x" * 300,
    "new/" + "y" * 300,
    "occupied/keep.txt",
    "afile",
    "afile/x",
    "\t",
    "new\nline",
]
# paths in the fresh current directory: writing there is allowed when the call succeeds
GOOD_OUT = ["new", "runs/x", "sub/dir/new", "occupied", "new.bfm", "new.h", "new.png", "new.csv", "sub/new.png"]


class Paths:
    """Where the fixtures are (read only: never a value of an option that writes)."""

    def __init__(self, fix: Path):
        self.fix = fix
        names = [
            "four.csv",
            "semi.csv",
            "one.csv",
            "empty.csv",
            "pets.csv",
            "garbage.npz",
            "blob.bin",
            "adir",
            "emptydir",
            "run",
            "badrun",
            "model.bfm",
            "bad.bfm",
            "model.uf2x",
        ]
        self.read = [str(fix / n) for n in names] + [
            "/proc/self/status",
            "/proc/nope",
            "/nonexistent/file.csv",
            "",
            " ",
            ".",
            "/",
            "/dev/null",
            "/dev/zero",
            "x" * 300,
            str(fix / ("z" * 300)),
            str(fix / "four.csv" / "x"),
            "nonexistent.npz",
            "nonexistent",
        ]


def read_paths(p: Paths) -> st.SearchStrategy[str]:
    return st.one_of(st.sampled_from(p.read), junk)


def sample(*values: str) -> st.SearchStrategy[str]:
    return st.sampled_from(values)


def bad_numbers(*extra: str) -> st.SearchStrategy[str]:
    """What an integer option must refuse (or click must): negative, huge, junk, unicode digits."""
    return st.one_of(st.integers(-1000, 0).map(str), sample(*HUGE), junk, sample(*extra) if extra else st.nothing())


def ints(lo: int, hi: int) -> st.SearchStrategy[str]:
    return st.integers(lo, hi).map(str)


BAD_FLOATS = st.one_of(
    sample("-0.1", "1", "1.5", "nan", "inf", "-inf", "0,1", "1e999", "-1e-300"), st.floats(min_value=1.0).map(str), junk
)
BOARDS_BAD = ["nosuchboard", "HOST", " host", "../boards/pico", "pico.json", "sim-", "sim-host", "", "pico", "esp32"]
DATASETS_OK = ["digits", "iris", "wine", "breast-cancer", "breast_cancer", "table", "shift1d"]
DATASETS_BAD = ["nosuchdata", "mnist.npz", "x.csv", "DIGITS", " digits", "digits ", "./digits", "data.gz"]
ENC_OK = ["threshold:8", "thermo:3", "thermo:1,5,9", "thermo:2"]
ENC_BAD = [
    "threshold:0",
    "threshold:-1",
    "threshold:\uff13\uff12",
    "thermo:0",
    "thermo:99,1",
    "thermo:",
    "thermo:1,,2",
    "crop:9+",
    "deskew",
    "deskew+",
    "+threshold:8",
    "threshold:8+",
    "thermo:999999999999",
    "pool:0+thermo:2",
    "nosuch:1",
    "deskew+threshold:8",
    "crop:6+threshold:8",
    "pool:2+thermo:2",
    "crop:0+threshold:8",
]
MODEL_OK = ["10", "10x2", "32-10x2", "3x2", "2x3", "3", "16-3x2", "4x2", "6x2", "8x3"]
MODEL_BAD = [
    "10x",
    "x10",
    "",
    " 10x5",
    "10x5 ",
    "0",
    "0x0",
    "10x0",
    "-10",
    "10-",
    "10--10",
    "10x99999999999",
    "99999999-10",
    "1-10",
    "10X2",
    "\uff11\uff10",
    "10x2x2",
    "256-256-256-10x16",
    "1x1",
    "1",
    "10x" + "9" * 30,
]
WEIGHTS_OK = ["binary", "binary2", "ternary"]
WEIGHTS_BAD = ["quad", "", "BINARY", " binary"]
RULE_OK = ["k_out=3", "k_out=5"]
RULE_BAD = [
    "k_out=-1",
    "k_out=abc",
    "k_out=1e99",
    "k_out=",
    "nosuch=1",
    "=1",
    "=",
    "x",
    "pool=-4",
    "pool=\uff11",
    "k_out=3=4",
    " k_out=3",
    "k_out=" + "9" * 40,
    "pool=99999999",
]
ONLY_OK = ["rule", "logreg", "mlp-sgd", "ste", "rule,logreg", ""]
ONLY_BAD = ["mlp-adam", "ste-matched", "mlp-sgd-matched", "nope", ",", "rule,,nope", "RULE"]


def datasets(p: Paths) -> tuple[st.SearchStrategy[str], st.SearchStrategy[str]]:
    good = sample(*DATASETS_OK, *(str(p.fix / n) for n in ("four.csv", "semi.csv", "pets.csv")))
    return good, st.one_of(sample(*DATASETS_BAD), read_paths(p))


def opt(good: st.SearchStrategy[str], bad: st.SearchStrategy[str] | None = None) -> tuple[Any, Any]:
    return good, (bad if bad is not None else junk)


FLAG = (None, None)  # an option without a value

# ---------------------------------------------------------------------------------- grammar


def grammar(p: Paths) -> dict[str, dict[str, Any]]:
    """command -> {"opts": {option: (good values, bad values) or FLAG}, "args": [(good, bad)],
    "prefix": [...] (always first), "need": {option: strategy} (always given)}."""
    epochs = opt(sample("1", "2"), bad_numbers(*HUGE))
    ds = datasets(p)
    model, weights, enc = (
        opt(sample(*MODEL_OK), sample(*MODEL_BAD)),
        opt(sample(*WEIGHTS_OK), sample(*WEIGHTS_BAD)),
        opt(sample(*ENC_OK), sample(*ENC_BAD)),
    )
    rule = opt(sample(*RULE_OK), sample(*RULE_BAD))
    outs = opt(sample(*GOOD_OUT), sample(*BAD_OUT))
    reads = opt(sample(*(str(p.fix / n) for n in ("run", "model.bfm", "four.csv"))), read_paths(p))
    boards = opt(sample("host", "sim-pico", "sim-esp32", "pico", "esp32c3"), sample(*BOARDS_BAD))
    ports = opt(sample(*BAD_PORTS), sample(*BAD_PORTS))
    train_opts = {
        "--dataset": ds,
        "--model": model,
        "--weights": weights,
        "--encoding": enc,
        "--epochs": epochs,
        "--seed": opt(st.one_of(ints(0, 10), sample("4294967295")), bad_numbers("4294967296")),
        "--out": outs,
        "--rule": rule,
        "--eval-every": opt(ints(1, 3), bad_numbers()),
        "--val": opt(sample("0", "0.1", "0.5", "0.9"), BAD_FLOATS),
        "--limit": opt(ints(1, 100), bad_numbers()),
        "--resume": FLAG,
        "--force": FLAG,
        "--cores": opt(sample("1", "2"), bad_numbers("3")),
        "--quiet": FLAG,
        "--ckpt-every": opt(st.one_of(ints(1, 1000), sample(*HUGE[:4])), bad_numbers()),
        "--json": FLAG,
        "--board": opt(sample("host", "sim-pico", "pico"), sample(*BOARDS_BAD)),
    }
    return {
        "train": {
            "need": {"--board": sample("host", "host", "host", "sim-pico", "sim-esp32", "pico", *BOARDS_BAD)},
            "prefix": ["--epochs", "1", "--limit", "50", "--quiet"],
            "opts": train_opts,
        },
        "compare": {
            "prefix": ["--epochs", "1", "--limit", "50"],
            "opts": {
                "--dataset": ds,
                "--model": model,
                "--weights": weights,
                "--encoding": enc,
                "--rule": rule,
                "--epochs": epochs,
                "--limit": opt(ints(1, 60), bad_numbers()),
                "--seed": opt(ints(0, 10), bad_numbers()),
                "--batch": opt(ints(1, 64), bad_numbers()),
                "--matched": FLAG,
                "--only": opt(sample(*ONLY_OK), sample(*ONLY_BAD)),
                "--json": FLAG,
            },
        },
        "memory": {
            "need": {"--board": sample("host", "sim-pico", "pico", "esp32", "esp32c3", *BOARDS_BAD)},
            "opts": {
                "--model": model,
                "--dataset": ds,
                "--encoding": enc,
                "--inputs": opt(sample("64", "784", "1048576"), bad_numbers("1048577")),
                "--weights": weights,
                "--pool": opt(sample("0", "4", "4096"), bad_numbers("4097")),
                "--json": FLAG,
            },
        },
        "report": {"args": [reads, reads], "opts": {"--png": outs, "--json": FLAG}},
        "data list": {"opts": {"--json": FLAG}},
        "data info": {"args": [ds], "opts": {"--json": FLAG}},
        # a fetchable name would download: only names that are not fetched (or that need nothing)
        "data fetch": {
            "args": [
                opt(
                    sample("digits", "iris", "table"),
                    st.one_of(
                        sample("nosuch", "", "MNIST", "fashion_mnist"),
                        junk.filter(lambda s: s.strip().lower() not in ("mnist", "fashion", "fashion-mnist")),
                    ),
                )
            ]
        },
        "export": {
            "args": [reads],
            "opts": {
                "-o": outs,
                "--out": outs,
                "--format": opt(sample("bfm", "c")),
                "--dataset": ds,
                "--force": FLAG,
                "--json": FLAG,
            },
        },
        "predict": {
            "opts": {
                "--model-file": reads,
                "--dataset": ds,
                "--board": opt(sample("host"), sample("nosuchboard", "pico", "", "sim-pico")),
                "--port": ports,
                "-o": outs,
                "--force": FLAG,
                "--limit": opt(sample("0", "5", "1000000"), bad_numbers()),
                "--json": FLAG,
            }
        },
        "push": {
            "args": [reads],
            "need": {"--port": sample(*BAD_PORTS)},
            "opts": {"--board": boards, "--dest": opt(sample("model.bfm", "x/y.bfm"))},
        },
        "pull": {
            "need": {"--port": sample(*BAD_PORTS)},
            "opts": {"--board": boards, "-o": outs, "--src": opt(sample("model.bfm")), "--force": FLAG},
        },
        "deploy": {
            "need": {"--dry-run": None},
            "opts": {"--board": boards, "--port": ports, "--force": FLAG, "--build-dir": outs},
        },
        "deploy-port": {
            "name": "deploy",
            "need": {"--port": sample(*BAD_PORTS)},
            "opts": {"--board": boards, "--force": FLAG, "--build-dir": outs},
        },
        "flash": {"opts": {"--board": boards, "--firmware": reads, "--port": ports, "--drive": reads}},
        # a virtual board would start and run until Ctrl-C: only boards that are not virtual
        "sim": {
            "need": {"--board": sample("host", "pico", "esp32", "nosuchboard", "", "sim-", "sim-host")},
            "opts": {"--flash": outs, "--with-sources": FLAG},
        },
        "boards": {"opts": {"--json": FLAG}},
        "ports": {"opts": {"--json": FLAG}},
        # never runs: an option it does not have (or a value for a flag) is always there
        "bench": {"need": {"--no-such-option": junk}, "opts": {"--json": FLAG, "--quick": FLAG}},
    }


# the commands with the most options are drawn more often
WEIGHTED = sorted(
    ["train"] * 5
    + ["compare", "memory", "report", "export", "predict", "data info"] * 2
    + ["data list", "data fetch", "push", "pull", "deploy", "deploy-port", "flash", "sim", "boards", "ports", "bench"]
)

# sim boards start a virtual board unless --port is given: train and predict always get a refused one
NEEDS_PORT = {"sim-pico", "sim-esp32", "sim-esp32s3", "sim-esp32c3", "sim-pico2"}


@st.composite
def invocations(draw: st.DrawFn, p: Paths) -> list[str]:
    g = grammar(p)
    key = draw(st.sampled_from(WEIGHTED))
    spec = g[key]
    argv = (spec.get("name") or key).split()
    if draw(st.integers(0, 49)) == 0:  # now and then a command that does not exist, or the top-level options
        return draw(
            st.sampled_from(
                [
                    ["nosuchcommand"],
                    ["--version"],
                    ["-h"],
                    ["--bogus"],
                    [""],
                    ["data", "nosuch"],
                    ["TRAIN"],
                    ["train", "--help"],
                    ["data"],
                ]
            )
        )
    argv += spec.get("prefix", [])
    for opt_, strat in spec.get("need", {}).items():
        v = None if strat is None else draw(strat)
        argv += [opt_] if v is None else [opt_, v]
    opts = spec.get("opts", {})
    chosen = draw(st.lists(st.sampled_from(sorted(opts)), max_size=6)) if opts else []
    args = spec.get("args", [])[: draw(st.integers(0, len(spec.get("args", []))))]
    n_bad = draw(st.sampled_from([0, 0, 1, 1, 1, 2, 3]))  # how many values are drawn from the bad ones
    bad = set(draw(st.permutations(range(len(chosen) + len(args))))[:n_bad])
    words: list[list[str]] = []
    for i, name in enumerate(chosen):
        good_v, bad_v = opts[name]
        v = None if good_v is None else draw(bad_v if i in bad else good_v)
        words.append([name] if v is None else [name, v])
    for i, (good_v, bad_v) in enumerate(args, start=len(chosen)):
        words.append([draw(bad_v if i in bad else good_v)])
    if draw(st.integers(0, 9)) == 0:  # an option the command does not have, or a flag given a value
        words.append(draw(st.sampled_from([["--nosuch"], ["--nosuch", "1"], ["-z"], ["--json=1"], ["--"], ["-"]])))
    words = draw(st.permutations(words))
    for w in words:
        argv += w
    if argv[0] in ("train", "predict"):
        board = _last(argv, "--board")
        if board in NEEDS_PORT and _last(argv, "--port") is None:
            argv += ["--port", draw(st.sampled_from(BAD_PORTS))]
    if draw(st.integers(0, 29)) == 0:  # the last option without its value
        argv.append(draw(st.sampled_from(sorted(opts) or ["--json"])))
    return argv


def _last(argv: list[str], opt: str) -> str | None:
    v = None
    for a, b in itertools.pairwise(argv):
        if a == opt:
            v = b
    return v


# ---------------------------------------------------------------------------------- fixtures


def _csv(path: Path, rows: list[str]) -> None:
    path.write_text("\n".join(rows) + "\n")


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Paths]:
    base = tmp_path_factory.mktemp("fuzz")
    fix = base / "fix"
    fix.mkdir()
    _csv(fix / "four.csv", ["label,a,b,c,d"] + [f"{i % 3},{i % 7},{i % 5},{i % 11},{i % 13}" for i in range(60)])
    _csv(fix / "semi.csv", ["label;a;b"] + [f"{i % 2};{i % 5},5;{i % 3}" for i in range(40)])
    _csv(fix / "one.csv", ["0", "1", "0", "1"])
    (fix / "empty.csv").write_text("")
    names = ["dog", "cat", "bird"]
    _csv(fix / "pets.csv", [f"{names[i % 3]},{(i % 3) * 80 + i % 7},{(i % 3) * 80 + i % 5}" for i in range(90)])
    (fix / "garbage.npz").write_bytes(b"PK\x03\x04 not a zip at all")
    (fix / "blob.bin").write_bytes(bytes(range(256)) * 4)
    (fix / "bad.bfm").write_bytes(b"BFM1" + bytes(60))
    (fix / "model.uf2x").write_bytes(b"UF2\n")
    (fix / "adir").mkdir()
    (fix / "adir" / "inside.txt").write_text("x")
    (fix / "emptydir").mkdir()
    (fix / "badrun").mkdir()
    (fix / "badrun" / "summary.json").write_text("{not json")
    (fix / "badrun" / "job.json").write_text("[]")
    with pytest.MonkeyPatch.context() as mp:
        # the caches (defaults chosen per dataset, memory plans, firmware builds) live in base/, not the repo
        import bitflip.link.build as build_mod
        import bitflip.training.defaults as defaults_mod

        mp.setattr(defaults_mod, "cache_dir", lambda: base / "cache" / "defaults")
        mp.setattr(build_mod, "default_build_root", lambda: base / "build")
        r = CliRunner().invoke(
            main, ["train", "--board", "host", "--epochs", "1", "--limit", "50", "--quiet", "--out", str(fix / "run")]
        )
        assert r.exit_code == 0, r.output
        r = CliRunner().invoke(main, ["export", str(fix / "run"), "-o", str(fix / "model.bfm")])
        assert r.exit_code == 0, r.output
        mp.chdir(base)
        yield Paths(fix)
    if KEEP_GOING or LOG:
        print(f"\nCLI fuzz: {COUNTS['invocations']} invocations, {COUNTS['problems']} with problems")


def snapshot(root: Path) -> dict[str, tuple[int, int]]:
    out = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for n in dirnames + filenames:
            q = Path(dirpath) / n
            st_ = q.lstat()  # a folder's own mtime moves when --out's write probe comes and goes: not a change
            out[str(q.relative_to(root))] = (0, 0) if q.is_dir() else (st_.st_size, st_.st_mtime_ns)
    return out


def git_status() -> str:
    return subprocess.run(
        ["git", "status", "--porcelain", "--untracked-files=all"], cwd=ROOT, capture_output=True, text=True, check=False
    ).stdout


# ---------------------------------------------------------------------------------- the property


def problems(
    argv: list[str], r: Result, cwd_before: dict[str, Any], cwd_after: dict[str, Any], fix_changed: bool
) -> list[str]:
    out: list[str] = []
    exc = r.exception
    if exc is not None and not isinstance(exc, SystemExit):
        frames = traceback.extract_tb(r.exc_info[2]) if r.exc_info else []
        ours = [f for f in frames if "bitflip" in f.filename and "click" not in f.filename]
        frame = (ours or frames or [None])[-1]
        where = f" at {Path(frame.filename).name}:{frame.lineno} {frame.name}" if frame else ""
        out.append(f"crash: {type(exc).__name__}: {str(exc)[:200]}{where}")
    if getattr(r, "timed_out", False):
        out.append(f"ran longer than {CALL_TIMEOUT_S} s")
    elif r.exit_code not in (0, 2):
        out.append(f"exit code {r.exit_code}")
    if "Traceback" in r.output:
        out.append("a traceback in the output")
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    bare_group = r.exit_code == 2 and argv == ["data"] and r.output.startswith("Usage:")  # click shows the help
    if r.exit_code == 2 and not bare_group and (len(lines) != 1 or not lines[0].startswith("bitflip: error: ")):
        out.append(f"the error is not one `bitflip: error:` line: {lines[:4]!r}")
    if r.exit_code != 0:
        if cwd_after != cwd_before:
            made = sorted(set(cwd_after) - set(cwd_before))
            out.append(f"a rejected call changed the current directory (new: {made[:5]})")
        if "runs" in cwd_after:
            out.append("a rejected call made runs/")
    if fix_changed:
        out.append("a fixture file changed")
    return out


def run_one(argv: list[str], fix: Path, base: Path) -> None:
    cwd = base / "cwd"
    if cwd.exists():
        shutil.rmtree(cwd)
    cwd.mkdir()
    (cwd / "occupied").mkdir()
    (cwd / "occupied" / "keep.txt").write_text("keep me")
    (cwd / "afile").write_text("a file")
    before, fix_before = snapshot(cwd), snapshot(fix)

    def _alarm(*_: Any) -> None:
        raise CallTimedOut(f"{CALL_TIMEOUT_S} s")

    old = signal.signal(signal.SIGALRM, _alarm)
    signal.alarm(CALL_TIMEOUT_S)
    here = os.getcwd()
    os.chdir(cwd)
    t0 = time.monotonic()
    try:
        r = CliRunner().invoke(main, argv, catch_exceptions=True)
    except CallTimedOut:
        if not KEEP_GOING:
            pytest.fail(f"bitflip {argv!r} ran longer than {CALL_TIMEOUT_S} s")
        r = Result(CliRunner(), b"", b"", b"", None, 124, None)
        r.timed_out = True  # type: ignore[attr-defined]
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)
        os.chdir(here)
    found = problems(argv, r, before, snapshot(cwd), snapshot(fix) != fix_before)
    COUNTS["invocations"] += 1
    COUNTS["problems"] += bool(found)
    if LOG:
        with open(LOG, "a") as f:
            f.write(
                json.dumps(
                    {
                        "argv": argv,
                        "exit": r.exit_code,
                        "problems": found,
                        "s": round(time.monotonic() - t0, 2),
                        "stderr": r.stderr[-300:],
                    },
                    ensure_ascii=False,
                )
                + "\n"
            )
    if found and not KEEP_GOING:
        raise AssertionError(f"bitflip {argv!r} -> exit {r.exit_code}: {'; '.join(found)}\n{r.output[-2000:]}")


def test_cli_fuzz_bad_input_is_one_line_exit_2_and_writes_nothing(world: Paths) -> None:
    base = world.fix.parent
    status = git_status()

    phases = [Phase.generate] if KEEP_GOING else [Phase.generate, Phase.shrink]  # keep going: every example once

    @settings(
        max_examples=FUZZ_EXAMPLES,
        derandomize=SEED is None,
        deadline=None,
        database=None,
        print_blob=False,
        phases=phases,
        suppress_health_check=list(HealthCheck),
    )
    @given(invocations(world))
    @seed(SEED or 0)
    def prop(argv: list[str]) -> None:
        run_one(argv, world.fix, base)

    prop()
    assert git_status() == status, "the fuzzed calls wrote into the repository"


# what the fuzz found, kept as plain cases (each crashed, hung or printed two lines before the fix)
FOUND = [
    (["data", "fetch", "bad\nname"], "unknown dataset 'bad\\nname'"),
    (["report", "\x0bnope"], "\\x0bnope"),
    (["compare", "--encoding", "thermo:999999999999", "--limit", "50"], "thermo:999999999999 needs"),
    (["deploy", "--dry-run", "--board", "pico", "--build-dir", "/proc/nope"], "--build-dir /proc/nope"),
    (["deploy", "--dry-run", "--board", "pico", "--build-dir", "new/" + "y" * 300], "file name too long"),
    (["export", "run", "-o", "x" * 300], "file name too long"),
    (["report", "run", "--png", "."], "--png .: give a file name"),
    (["compare", "--dataset", "iris", "--only", "="], "'=' cannot run here (no such method)"),
]


@pytest.mark.parametrize("args, needle", FOUND, ids=[" ".join(a)[:40] for a, _ in FOUND])
def test_what_the_fuzz_found_is_one_line_exit_2(
    args: list[str], needle: str, world: Paths, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    args = [str(world.fix / "run") if a == "run" else a for a in args]
    r = CliRunner().invoke(main, args)
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert r.exit_code == 2 and len(lines) == 1 and lines[0].startswith("bitflip: error: "), r.output
    assert needle in lines[0]
    assert not list(tmp_path.iterdir())
