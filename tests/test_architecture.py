"""The cut the design asks for: vae/ is a library without Streamlit; pages compose widgets and call vae/."""

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def imported_modules(path: Path) -> set[str]:
    """Every module a file imports, anywhere in it."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module.split(".")[0])
    return names


@pytest.mark.parametrize("path", sorted((ROOT / "vae").glob("*.py")), ids=lambda p: p.name)
def test_the_library_never_imports_streamlit(path):
    assert "streamlit" not in imported_modules(path)


@pytest.mark.parametrize("path", sorted((ROOT / "pages").glob("*.py")), ids=lambda p: p.name)
def test_pages_do_no_torch_work(path):
    """Tensors, generators and no_grad belong in vae/, where a test can call them."""
    assert "torch" not in imported_modules(path)


def test_serving_a_persons_click_imports_no_torch():
    """The first page is drawn while torch still loads in the background (vae.warmup); a fragment a person moves
    holds the trainings back through vae.scheduler, which must not pull torch in (it made the first page wait)."""
    script = ("import sys; from pages._session import _serving_first; "
              "_serving_first(lambda: None)(); print('torch' in sys.modules)")
    result = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "False"
