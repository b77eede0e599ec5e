"""The tier markers come from the folder (tests/conftest.py): declared, and never written by hand."""

from __future__ import annotations

import re
import sys

from ..support import FOLDER_MARKERS, REPO

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib


def test_each_folder_marker_is_a_declared_marker_of_an_existing_folder():
    declared = {
        m.split(":")[0]
        for m in tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["pytest"]["ini_options"]["markers"]
    }
    for folder, marker in FOLDER_MARKERS.items():
        assert (REPO / "tests" / folder).is_dir(), folder
        assert marker in declared, marker


def test_no_test_file_writes_its_folders_marker():
    for folder, marker in FOLDER_MARKERS.items():
        for path in (REPO / "tests" / folder).rglob("*.py"):
            assert not re.search(rf"\bpytest\.mark\.{marker}\b", path.read_text()), f"{path}: the folder gives {marker}"
