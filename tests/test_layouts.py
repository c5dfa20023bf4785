"""Every flavor writes exactly the files it wrote when the layouts were recorded.

The manifests in ``tests/fixtures/layouts`` were written by ``tests/helpers/layouts.py``
before the flavor contract existed; saving the same models now must give the same files
with the same content (ids, timestamps and installed versions aside).
"""

import json
from pathlib import Path

import pytest

from tests.helpers.layouts import build_cases, manifest, normalize

FIXTURES = Path(__file__).parent / "fixtures" / "layouts"

pytestmark = pytest.mark.spark


@pytest.fixture(scope="module")
def saved(spark, tmp_path_factory):
    root = tmp_path_factory.mktemp("layouts")
    return root, build_cases(root, spark)


@pytest.mark.parametrize("case", sorted(p.stem for p in FIXTURES.glob("*.json")))
def test_layout_unchanged(saved, case):
    root, paths = saved
    recorded = json.loads((FIXTURES / f"{case}.json").read_text())
    expected = {name: normalize(text) for name, text in recorded.items()}  # rules added since recording
    actual = manifest(paths[case], root)
    assert sorted(actual) == sorted(expected), f"{case}: files differ"
    for name in expected:
        assert actual[name] == expected[name], f"{case}/{name} differs"


def test_every_case_has_a_fixture(saved):
    assert sorted(saved[1]) == sorted(p.stem for p in FIXTURES.glob("*.json"))
