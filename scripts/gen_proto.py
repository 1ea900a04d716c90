"""Generates emoomni/v1/*_pb2*.py from proto/ (the one contract). Run by scripts/setup.sh; the output is
git-ignored and never edited by hand. Skips work when the generated files are newer than the protos."""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PROTO_ROOT = ROOT / "proto"
OUT = ROOT / "emoomni" / "v1"


def main() -> int:
    protos = sorted(PROTO_ROOT.glob("emoomni/v1/*.proto"))
    newest_proto = max(p.stat().st_mtime for p in protos)
    generated = list(OUT.glob("*_pb2*.py"))
    if len(generated) >= 2 * len(protos) and min(g.stat().st_mtime for g in generated) > newest_proto:
        return 0
    try:
        from grpc_tools import protoc
    except ImportError:
        print("grpcio-tools is needed to generate the gRPC code: pip install grpcio-tools", file=sys.stderr)
        return 1
    import grpc_tools

    include = Path(grpc_tools.__file__).parent / "_proto"
    OUT.mkdir(parents=True, exist_ok=True)
    args = ["protoc", f"-I{PROTO_ROOT}", f"-I{include}", f"--python_out={ROOT}", f"--pyi_out={ROOT}",
            f"--grpc_python_out={ROOT}", *(str(p) for p in protos)]
    if protoc.main(args) != 0:
        print("protoc failed", file=sys.stderr)
        return 1
    (OUT / "__init__.py").write_text('"""Generated from proto/emoomni/v1 by scripts/gen_proto.py."""\n')
    return 0


if __name__ == "__main__":
    sys.exit(main())
