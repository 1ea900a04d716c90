"""Maps the top-level services/ and eval/ folders to the import packages ``emoomni.services`` and
``emoomni.eval``, and generates the gRPC stubs (``emoomni.v1``) from proto/ while a wheel is built.

The folder tree shows the architecture (proto/, services/, plugins/, eval/ at the top), while Python code
imports one namespace, ``emoomni``. Why stubs at build time instead of committed: proto/ stays the one
contract, no generated file can go stale in git, and the stubs always match the grpcio-tools of the build
(pinned in pyproject's build-system), so even `pip install "emoomni[client]"` gets them. A checkout generates
them into emoomni/v1 with scripts/gen_proto.py (scripts/setup.sh). pyproject.toml holds everything else.
"""

from pathlib import Path

from setuptools import find_packages, setup
from setuptools.command.build_py import build_py

ROOT = Path(__file__).resolve().parent
AREAS = {"services": "services", "eval": "eval", "pipe": "pipe", "presets": "config"}


def generate_stubs(out: Path) -> None:
    """protoc (from grpcio-tools) over proto/emoomni/v1 into out/emoomni/v1."""
    import grpc_tools
    from grpc_tools import protoc

    protos = sorted((ROOT / "proto").glob("emoomni/v1/*.proto"))
    if not protos:  # a dependency-only build (the Dockerfile's first layer) has no code and no contract yet
        print("setup.py: no proto/ here, no gRPC stubs generated")
        return
    include = Path(grpc_tools.__file__).parent / "_proto"
    (out / "emoomni" / "v1").mkdir(parents=True, exist_ok=True)
    args = ["protoc", f"-I{ROOT / 'proto'}", f"-I{include}", f"--python_out={out}", f"--pyi_out={out}",
            f"--grpc_python_out={out}", *(str(p) for p in protos)]
    if protoc.main(args) != 0:
        raise RuntimeError("protoc failed on proto/emoomni/v1")
    (out / "emoomni" / "v1" / "__init__.py").write_text('"""Generated from proto/emoomni/v1 at build time."""\n')


class BuildWithStubs(build_py):
    def run(self) -> None:
        super().run()
        # An editable install imports from the source tree, where scripts/gen_proto.py puts the stubs.
        generate_stubs(ROOT if self.editable_mode else Path(self.build_lib))


packages = ["emoomni", *(f"emoomni.{p}" for p in find_packages("emoomni"))]
for name, folder in AREAS.items():
    packages += [f"emoomni.{name}", *(f"emoomni.{name}.{p}" for p in find_packages(folder))]

setup(packages=packages, package_dir={"emoomni": "emoomni", **{f"emoomni.{n}": f for n, f in AREAS.items()}},
      cmdclass={"build_py": BuildWithStubs})
