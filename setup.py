"""Maps the top-level services/ folder to the import package ``emoomni.services``.

The folder tree shows the architecture (proto/, services/, plugins/ at the top), while Python code imports
one namespace, ``emoomni``. pyproject.toml holds everything else.
"""

from setuptools import find_packages, setup

packages = ["emoomni", *(f"emoomni.{p}" for p in find_packages("emoomni"))]
packages += ["emoomni.services", *(f"emoomni.services.{p}" for p in find_packages("services"))]

setup(packages=packages, package_dir={"emoomni": "emoomni", "emoomni.services": "services"})
