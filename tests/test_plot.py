"""curves.png: the reward and F1 are not drawn over each other; held-out points show."""

from pathlib import Path

import pytest


def _count(image, rgb: tuple[int, int, int], tol: int = 8) -> int:
    return sum(
        n
        for n, (r, g, b) in image.getcolors(maxcolors=1 << 24)
        if abs(r - rgb[0]) <= tol and abs(g - rgb[1]) <= tol and abs(b - rgb[2]) <= tol
    )


def test_curves_show_f1_and_held_out_points(tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    image_module = pytest.importorskip("PIL.Image")
    from research_agents.grpo.plot import plot_curves

    # reward="f1": the reward equals train F1 at every step
    rows = [
        {"step": s, "reward/mean": 0.1 * s, "reward/f1": 0.1 * s, "reward/em": 0.05 * s}
        for s in range(1, 9)
    ]
    rows[3] |= {"eval/em": 0.2, "eval/f1": 0.3}
    rows[7] |= {"eval/em": 0.4, "eval/f1": 0.5}
    image = image_module.open(plot_curves(rows, tmp_path / "curves.png")).convert("RGB")
    width = image.width
    left = image.crop((0, 0, width // 2, image.height))
    right = image.crop((width // 2, 0, width, image.height))
    green, red, blue = (0x2C, 0xA0, 0x2C), (0xD6, 0x27, 0x28), (0x1F, 0x77, 0xB4)
    assert _count(left, blue) > 200 and _count(right, blue) == 0  # reward alone on the left
    assert _count(right, green) > 100  # train F1 visible, not under the reward line
    assert _count(right, red) > 100  # held-out EM points
    bare = image_module.open(plot_curves(rows[:3], tmp_path / "bare.png")).convert("RGB")
    assert _count(bare.crop((width // 2, 0, width, bare.height)), red) == 0
