"""The `edgeportrait` command line (see README "Command line").

Each subcommand's work lives in its own module and is imported only when that
subcommand runs, so `edgeportrait config check` does not pay for OpenVINO.
A user mistake is one line on stderr and an exit code, never a traceback.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import sys
from collections.abc import Sequence
from typing import Any, NoReturn, overload

from edgeportrait.errors import EX_CONFIG, EX_FATAL, EX_USAGE, ConfigError, FatalError, UserError
from edgeportrait.logsafe import SafeFormatter, escape

PROG = "edgeportrait"
# batch commands that end the process when done (see _exit_now)
QUICK_EXIT = frozenset({"process", "segment"})


class _Parser(argparse.ArgumentParser):
    """argparse that reports a wrong flag as one line (and exit 2) instead of a usage block."""

    def error(self, message: str) -> NoReturn:
        sys.stderr.write(f"{self.prog}: error: {message} (try --help)\n")
        raise SystemExit(EX_USAGE)


class _Version(argparse.Action):
    """--version, looking the version up only when asked (see edgeportrait.__getattr__)."""

    def __init__(self, option_strings: list[str], dest: str, **kwargs: Any) -> None:
        super().__init__(option_strings, dest, nargs=0, default=argparse.SUPPRESS, help="show the version and exit")

    def __call__(self, parser: argparse.ArgumentParser, *args: Any, **kwargs: Any) -> None:
        from edgeportrait import __version__

        sys.stdout.write(f"{PROG} {__version__}\n")
        parser.exit()


class _Modes(Sequence[str]):
    """``portrait.mode``'s values (:data:`edgeportrait.config.portrait.MODES`), looked up only when
    argparse checks or shows --mode: importing the config package (pydantic, every section's model)
    would add about 0.3 s to `--version`."""

    @staticmethod
    def _modes() -> tuple[str, ...]:
        from edgeportrait.config.portrait import MODES

        return MODES

    @overload
    def __getitem__(self, i: int) -> str: ...
    @overload
    def __getitem__(self, i: slice) -> Sequence[str]: ...
    def __getitem__(self, i: int | slice) -> str | Sequence[str]:
        return self._modes()[i]

    def __len__(self) -> int:
        return len(self._modes())


def _add_config(p: argparse.ArgumentParser, required: bool) -> None:
    p.add_argument("-c", "--config", metavar="FILE", required=required, help="YAML config file")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog=PROG, description="Portrait-mode camera appliance.")
    # the parser of each (sub)command, by its command words: a wrong flag is
    # reported by the subcommand it was given to (`edgeportrait process: error: …`)
    commands: dict[tuple[str, ...], argparse.ArgumentParser] = {}
    parser.add_argument("--version", action=_Version)
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub.required = True

    p = commands["run",] = sub.add_parser("run", help="run the daemon until SIGTERM/SIGINT")
    _add_config(p, required=True)

    p = commands["process",] = sub.add_parser("process", help="portrait mode for image files or folders")
    p.add_argument("inputs", nargs="+", metavar="INPUT", help="image files or folders of images")
    p.add_argument("-o", "--output", required=True, metavar="OUT_DIR", help="where OUT_DIR/<stem>.jpg go")
    _add_config(p, required=False)
    p.add_argument("--blur", type=float, metavar="N", help="blur strength 0…100 (overrides portrait.blur)")
    # metavar given, so that argparse reads the choices only to check a value or to show --help
    p.add_argument("--mode", choices=_Modes(), metavar="MODE", help="background mode: %(choices)s")
    p.add_argument("--jobs", type=int, metavar="N", help="parallel workers (default: CPU count + 1)")
    p.add_argument("--no-progress", action="store_true", help="no progress display")

    p = commands["segment",] = sub.add_parser("segment", help="write person masks as 8-bit PNG")
    p.add_argument("inputs", nargs="+", metavar="INPUT", help="image files or folders of images")
    p.add_argument("-o", "--output", required=True, metavar="OUT_DIR", help="where OUT_DIR/<stem>.png go")
    p.add_argument("--model", choices=["general", "landscape"], default="general")
    p.add_argument("--precision", choices=["auto", "int8", "fp32"], default="auto")
    p.add_argument("--device", default="AUTO", help="AUTO | CPU | GPU | NPU (default AUTO)")
    p.add_argument("--models-dir", metavar="DIR", help="directory with the IR files (default: shipped models)")

    p = sub.add_parser("config", help="configuration tools")
    csub = p.add_subparsers(dest="config_command", metavar="ACTION", parser_class=_Parser)
    csub.required = True
    pc = commands["config", "check"] = csub.add_parser(
        "check", help="validate a config file; every error with its YAML line"
    )
    _add_config(pc, required=True)

    p = sub.add_parser("model", help="model tools")
    msub = p.add_subparsers(dest="model_command", metavar="ACTION", parser_class=_Parser)
    msub.required = True
    pm = commands["model", "build"] = msub.add_parser(
        "build", help="rebuild the IR files in models/ from their pinned source"
    )
    pm.add_argument("--out", metavar="DIR", default="models", help="output directory (default: models)")
    pm.add_argument("--wheel", metavar="FILE", help="a local mediapipe==0.10.14 wheel (default: pip download)")
    pm.add_argument(
        "--data", metavar="DIR",
        help="the calibration/validation/held-out data set, made there if missing "
        "(default: ~/.cache/edgeportrait/dataset)",
    )
    pm.add_argument("--sources", metavar="DIR", help="a folder with the data set's source files (default: fetched)")
    pm.add_argument("--no-progress", action="store_true", help="no progress display")

    p = commands["bench",] = sub.add_parser("bench", help="measure the pipeline stages")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.add_argument("--runs", type=int, default=30, metavar="N", help="runs per measurement (default 30)")
    p.add_argument("--sizes", default="720p,1080p", help="comma-separated: 720p,1080p,4k or WxH")
    p.add_argument("--input", metavar="IMAGE", help="use this photo instead of a generated frame")
    _add_config(p, required=False)
    parser.set_defaults(_commands=commands)
    return parser


def parse_args(parser: argparse.ArgumentParser, argv: Sequence[str] | None) -> argparse.Namespace:
    """``parser.parse_args``, but an unknown flag is reported by the subcommand that got it."""
    args, extra = parser.parse_known_args(argv)
    if extra:
        words = (args.command, getattr(args, "config_command", None) or getattr(args, "model_command", None))
        commands = args._commands
        owner = commands.get(tuple(w for w in words if w)) or commands.get((args.command,)) or parser
        owner.error(f"unrecognized arguments: {' '.join(extra)}")
    return args


def _config_check(args: argparse.Namespace) -> int:
    from edgeportrait.config import load_config

    load_config(args.config)
    print(f"{args.config}: valid")
    return 0


def _dispatch(args: argparse.Namespace) -> int:
    cmd = args.command
    if cmd == "config":
        return _config_check(args)
    if cmd == "run":
        from edgeportrait.daemon import main as run_main

        return run_main(args)
    if cmd == "process":
        from edgeportrait.process import main as process_main

        return process_main(args)
    if cmd == "segment":
        from edgeportrait.segment.cli import main as segment_main

        return segment_main(args)
    if cmd == "model":
        from edgeportrait_build.build import main as build_main

        return build_main(args)
    if cmd == "bench":
        from edgeportrait.bench import main as bench_main

        return bench_main(args)
    raise AssertionError(cmd)


def main(argv: Sequence[str] | None = None) -> int:
    # pydantic looks for plugins in every installed package's metadata when the first model class is
    # built (20-80 ms of each command's start, measured here); the command line uses none
    os.environ.setdefault("PYDANTIC_DISABLE_PLUGINS", "__all__")
    args = parse_args(build_parser(), argv)
    if args.command != "model":
        _one_blas_thread()
    handler = logging.StreamHandler(sys.stderr)
    # one record is one line: text from outside (an id, a file name) cannot forge another
    handler.setFormatter(SafeFormatter("%(levelname)s %(name)s: %(message)s"))
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO, handlers=[handler])
    if args.command in ("run", "process", "bench"):
        from edgeportrait import allocator

        allocator.tune()  # per-frame arrays stay on the heap (see allocator.py)
    code = _run(args)
    if argv is None and args.command in QUICK_EXIT:
        _exit_now(code)
    return code


def _one_blas_thread() -> None:
    """Keep numpy's OpenBLAS to one thread, before numpy is imported (it reads the variable on load).

    Nothing here multiplies matrices with numpy (OpenCV and OpenVINO have their own threads), but
    OpenBLAS starts a thread per core when numpy is imported, and they spin waiting for work: a
    one-photo `process` on 2 cores cost 0.78 s of CPU time with them and 0.63 s without (medians of
    10 alternating runs on a loaded 2-core AVX2 EPYC). A value the user set is kept. Not for `model
    build`: its quantisation (NNCF) computes statistics with numpy, where the threads may pay.
    """
    if "numpy" not in sys.modules:
        os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")


def _run(args: argparse.Namespace) -> int:
    try:
        return _dispatch(args)
    except ConfigError as e:
        for line in e.lines:
            sys.stderr.write(f"{PROG}: {escape(line)}\n")
        return EX_CONFIG
    except UserError as e:
        sys.stderr.write(f"{PROG}: {escape(str(e))}\n")
        return e.exit_code
    except FatalError as e:
        sys.stderr.write(f"{PROG}: {escape(str(e))}\n")
        return EX_FATAL
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        return EX_FATAL


def _exit_now(code: int) -> NoReturn:
    """End the process without the interpreter's teardown.

    When a batch command is done, everything it wrote is closed (and renamed into place); what
    remains is Python's finalisation and OpenVINO unloading its plugins: 0.11-0.28 s (median 0.2 s,
    8 runs) of a one-photo `process`, against 0.014 s this way. Only when main() is the program
    itself (argv not given), never for a caller that goes on running.
    """
    logging.shutdown()
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(OSError, ValueError):  # a closed pipe: nothing more can be said
            stream.flush()
    os._exit(code)
