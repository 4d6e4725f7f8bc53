"""Regenerate ``flame_reward/proto/v1/reward_pb2*.py`` from ``protos/flame_reward/v1/reward.proto``.

    python -m flame_reward.proto.generate            # rewrite the committed files
    python -m flame_reward.proto.generate --check    # exit 1 when they differ from the .proto

Needs grpcio-tools (the ``dev`` extra). protoc names Python modules after the .proto's
path (``flame_reward/v1/reward.proto`` -> ``flame_reward.v1.reward_pb2``); the generated
files live one package down, in ``flame_reward.proto.v1``. Only the messages are generated:
the sidecar reads its method table from the service descriptor (``sidecar/wire.py``), so
gRPC stubs would be dead code.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PROTO_ROOT = ROOT / "protos"
PROTO = "flame_reward/v1/reward.proto"
PACKAGE_DIR = Path(__file__).resolve().parent / "v1"
GENERATED = ("reward_pb2.py", "reward_pb2.pyi")
#: The grpcio-tools that made the committed files (pinned in the ``dev`` extra): generated
#: text depends on the generator's version, so only this one is compared.
GENERATED_BY = "1.85.1"


def generate(out_dir: str | Path, proto_root: str | Path = PROTO_ROOT) -> dict[str, str]:
    """Run protoc (grpcio-tools) on the .proto and return ``{file name: text}`` of the
    generated modules, as they are committed. Also writes them into ``out_dir``."""
    import grpc_tools
    from grpc_tools import protoc

    out_dir = Path(out_dir)
    include = Path(grpc_tools.__file__).resolve().parent / "_proto"
    texts: dict[str, str] = {}
    with tempfile.TemporaryDirectory(prefix="flame-reward-protoc-") as tmp:
        scratch = Path(tmp)
        args = ["grpc_tools.protoc", f"-I{proto_root}", f"-I{include}", f"--python_out={scratch}",
                f"--pyi_out={scratch}", str(Path(proto_root) / PROTO)]
        if protoc.main(args) != 0:
            raise RuntimeError(f"protoc failed on {Path(proto_root) / PROTO}")
        for name in GENERATED:
            text = (scratch / "flame_reward" / "v1" / name).read_text()
            texts[name] = text
    out_dir.mkdir(parents=True, exist_ok=True)
    for name, text in texts.items():
        (out_dir / name).write_text(text)
    return texts


def drift(proto_root: str | Path = PROTO_ROOT, package_dir: str | Path = PACKAGE_DIR) -> list[str]:
    """Names of committed generated files that differ from a fresh generation."""
    with tempfile.TemporaryDirectory() as tmp:
        fresh = generate(tmp, proto_root)
    package_dir = Path(package_dir)
    return [name for name, text in fresh.items()
            if not (package_dir / name).exists() or (package_dir / name).read_text() != text]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--check", action="store_true", help="only report drift (exit 1 when the files differ)")
    args = ap.parse_args(argv)
    if args.check:
        stale = drift()
        if stale:
            print(f"out of date: {', '.join(stale)} (run python -m flame_reward.proto.generate)", file=sys.stderr)
            return 1
        print("generated code matches the .proto")
        return 0
    generate(PACKAGE_DIR)
    print(f"wrote {', '.join(GENERATED)} to {PACKAGE_DIR}")
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
