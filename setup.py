"""Maps the top-level services/ and eval/ folders to the import packages ``emoomni.services`` and
``emoomni.eval``.

The folder tree shows the architecture (proto/, services/, plugins/, eval/ at the top), while Python code
imports one namespace, ``emoomni``. pyproject.toml holds everything else.
"""

from setuptools import find_packages, setup

AREAS = {"services": "services", "eval": "eval"}

packages = ["emoomni", *(f"emoomni.{p}" for p in find_packages("emoomni"))]
for name, folder in AREAS.items():
    packages += [f"emoomni.{name}", *(f"emoomni.{name}.{p}" for p in find_packages(folder))]

setup(packages=packages, package_dir={"emoomni": "emoomni", **{f"emoomni.{n}": f for n, f in AREAS.items()}})
