"""The package a user installs: the wheel builds, installs into a clean virtual environment that
holds jax and its own dependencies alone, runs the README's quick example there, and importing
jaxloss loads neither torch nor the parity tooling's comparison tables."""

import importlib.metadata
import subprocess
import sys
import venv
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
# What `pip install jax` brings besides jax itself, linked from this environment so that the
# test needs no download.
RUNTIME = ("jax", "jaxlib", "numpy", "ml_dtypes", "opt_einsum", "scipy")

CHECK = """
import sys
import jax, jax.numpy as jnp
import jaxloss
from jaxloss.compat import functional as F, nn

logits = jnp.array([[2.0, 0.5, -1.0], [0.1, 0.2, 0.3]])
labels = jnp.array([0, -100])
loss = jaxloss.cross_entropy(logits, labels, class_weights=jnp.array([1.0, 2.0, 0.5]),
                             label_smoothing=0.1)
grads = jax.grad(jaxloss.cross_entropy)(logits, labels)
criterion = nn.CrossEntropyLoss(weight=jnp.array([1.0, 2.0, 0.5]), label_smoothing=0.1)
assert abs(float(criterion(logits, labels)) - float(loss)) < 1e-6
assert bool(jnp.all(jnp.isfinite(grads)))
loaded = sorted(m for m in sys.modules if m.split(".")[0] in ("torch", "optax", "keras")
                or m in ("jaxloss.parity.cases", "jaxloss.parity.libraries"))
assert not loaded, loaded
print("ok", jaxloss.__file__)
"""


def _link_runtime(target: Path) -> None:
    """Links jax's runtime packages (and their metadata) into `target`."""
    target.mkdir()
    for name in RUNTIME:
        dist = importlib.metadata.distribution(name)
        for entry in {Path(str(f)).parts[0] for f in dist.files or ()}:
            source = Path(str(dist.locate_file(entry)))
            if source.exists() and not (target / entry).exists() and entry != "..":
                (target / entry).symlink_to(source)


@pytest.mark.slow  # builds a wheel and a virtual environment (~30 s)
def test_the_wheel_installs_with_jax_alone_and_runs_the_quick_example(tmp_path):
    dist = tmp_path / "dist"
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q"]
        + ["-w", str(dist), str(ROOT)],
        check=True,
        timeout=600,
    )
    (wheel,) = dist.glob("jaxloss-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert not [n for n in names if n.startswith(("tests/", "benchmarks/", "examples/"))]
    assert "jaxloss/py.typed" in names and "jaxloss/_kernels/chunked_head.py" in names

    environment = tmp_path / "venv"
    venv.EnvBuilder(with_pip=True).create(environment)
    python = environment / "bin" / "python"
    site = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    _link_runtime(tmp_path / "runtime")
    (Path(site) / "runtime.pth").write_text(str(tmp_path / "runtime") + "\n")
    subprocess.run(
        [str(python), "-m", "pip", "install", "-q", "--no-index", "--no-deps", str(wheel)],
        check=True,
        timeout=300,
    )
    # jaxloss's requirements are met by jax's packages alone
    subprocess.run([str(python), "-m", "pip", "check"], check=True, timeout=120)
    result = subprocess.run(
        [str(python), "-c", CHECK],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("ok") and str(environment) in result.stdout
