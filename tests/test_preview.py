"""The Train page's first screen: the bundled run's curves and pictures, read without PyTorch, matching the weights."""

import ast
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from vae.checkpoints import load_pretrained
from vae.config import PRETRAINED, PRETRAINED_DIR, preset_config
from vae.preview import bundled_preview, preview_path, preview_pictures, to_uint8

ROOT = Path(__file__).resolve().parent.parent
FIRST_SCREEN_FILES = ["app.py", "pages/train.py", "pages/_session.py", "pages/_live_plot.py"]


def module_level_imports(path: Path) -> set[str]:
    """Modules a file imports when it is loaded (not inside functions, not under TYPE_CHECKING)."""
    names = set()
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


def test_the_first_screen_imports_no_torch():
    """Importing torch takes seconds on a small machine; the first page must draw before it is loaded."""
    modules = sorted(set().union(*(module_level_imports(ROOT / f) for f in FIRST_SCREEN_FILES)) - {"__future__"})
    assert "vae.preview" in modules and "vae.figures" in modules
    script = ("import sys\n" + "".join(f"import {m}\n" for m in modules) +
              "from vae.preview import bundled_preview\n"
              "from vae.figures import held_out_figure, training_curves_figure\n"
              "run = bundled_preview('digits')\n"
              "training_curves_figure(run.train); held_out_figure(run.held_out)\n"
              "heavy = sorted({'torch', 'scipy', 'sklearn'} & set(sys.modules))\n"
              "assert not heavy, heavy\n")
    result = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]


@pytest.mark.parametrize("name", list(PRETRAINED))
def test_each_bundled_preview_matches_its_checkpoint(name):
    preview, checkpoint = bundled_preview(name), load_pretrained(name)
    assert preview.config == checkpoint.config == preset_config(name)
    assert [vars(m) for m in preview.held_out] == checkpoint.metrics["held_out"]
    assert len(preview.held_out) == preview.config.epochs
    steps = preview.train["step"]
    assert 100 <= len(steps) <= 400 and np.all(np.diff(steps) > 0)  # the whole run, evenly thinned
    assert set(preview.train) == {"step", "elbo", "reconstruction", "kl"}
    np.testing.assert_allclose(preview.train["elbo"], preview.train["reconstruction"] - preview.train["kl"],
                               atol=1e-3)


@pytest.mark.parametrize("name", list(PRETRAINED))
def test_each_bundled_previews_pictures_are_what_its_weights_draw(name):
    checkpoint = PRETRAINED_DIR / f"{name}.safetensors"
    stored = np.load(preview_path(checkpoint))
    recomputed = preview_pictures(checkpoint)
    for key in ("reconstructions", "samples"):
        assert stored[key].dtype == np.uint8 and stored[key].shape == recomputed[key].shape
        # another CPU may round the matrix products differently: at most a grey level or two
        assert np.abs(stored[key].astype(int) - recomputed[key].astype(int)).max() <= 2
    preview = bundled_preview(name)
    np.testing.assert_array_equal(to_uint8(preview.samples), stored["samples"])


def test_readme_gives_the_command_that_writes_each_preview():
    readme = (ROOT / "README.md").read_text()
    for name in PRETRAINED:
        assert f"python -m vae preview vae/pretrained/{name}.safetensors" in readme
