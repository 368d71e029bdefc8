"""The install puts one name into site-packages: ``fvtrust`` (theory, empirical and proofs
live under it), and ``import fvtrust`` is cheap and gives the version and entry points."""

import subprocess
import sys

CHECK = """
import importlib.util, sys
import fvtrust
assert "torch" not in sys.modules, "import fvtrust must not import torch"
import fvtrust.theory, fvtrust.empirical, fvtrust.proofs
import fvtrust._version
for name in ("theory", "empirical", "proofs"):
    assert importlib.util.find_spec(name) is None, f"a top-level {name!r} is importable"
assert fvtrust.__version__ == fvtrust.theory.__version__
assert callable(fvtrust.render) and callable(fvtrust.run_sweep) and callable(fvtrust.compute_table)
print("ok", fvtrust.__version__)
"""


def test_fvtrust_is_the_only_top_level_name_and_imports_lazily(tmp_path):
    # Run outside the checkout, as a user would: the repository root is not on sys.path there.
    proc = subprocess.run([sys.executable, "-c", CHECK], cwd=tmp_path, capture_output=True, text=True,
                          env={"PATH": "/usr/bin:/bin"})
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("ok ")


def test_an_unknown_entry_point_is_an_attribute_error():
    import pytest

    import fvtrust

    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        fvtrust.nope  # noqa: B018
    assert "run_sweep" in dir(fvtrust)
