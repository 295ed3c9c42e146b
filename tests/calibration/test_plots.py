import numpy as np

from grok_tf.calibration.plots import reliability_diagram
from grok_tf.calibration.table import fit_isotonic


def test_reliability_diagram_writes_a_png_atomically(tmp_path):
    rng = np.random.default_rng(13)
    before = rng.dirichlet(np.ones(4) * 0.2, size=300)
    labels = rng.integers(0, 4, 300)
    after = fit_isotonic(before, labels).predict(before)
    path = tmp_path / "plots" / "category.png"
    path.parent.mkdir()
    path.write_bytes(b"stale")
    written = reliability_diagram(before, after, labels, path, "category")
    assert written == path
    data = path.read_bytes()
    assert data.startswith(b"\x89PNG\r\n\x1a\n") and len(data) > 10_000
    assert [p.name for p in path.parent.iterdir()] == ["category.png"]
