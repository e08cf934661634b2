"""One plotting module: object-style figures at one DPI, no global matplotlib state changed."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np

from nocollapse.report.figures import DPI, figure_png
from nocollapse.report.theory_figures import phase_figure
from nocollapse.theory.phase import PhaseDiagram


def test_importing_every_command_and_reproduction_keeps_the_matplotlib_backend() -> None:
    code = (
        "import matplotlib; matplotlib.use('svg')\n"
        "import nocollapse.cli.main, nocollapse.experiments.registry as r\n"
        "r.all_reproductions()\n"
        "import nocollapse.cli.phase, nocollapse.cli.simulate, nocollapse.cli.landscape\n"
        "import matplotlib.pyplot as plt\n"
        "print(matplotlib.get_backend(), len(plt.get_fignums()))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["svg", "0"]


def test_phase_figure_is_one_png_at_the_report_dpi(tmp_path: Path) -> None:
    x, y = np.linspace(0.0, 1.0, 4), np.linspace(0.0, 2.0, 3)
    collapsed = np.zeros((3, 4), dtype=bool)
    collapsed[:, 2:] = True
    diagram = PhaseDiagram("eta", "sigma2", x, y, np.full((3, 4), 0.5), collapsed, None,
                           np.array([[0.5, 0.0], [0.5, 2.0]]), {})
    figure = phase_figure(diagram)
    png = figure_png(figure)
    assert png.startswith(b"\x89PNG")
    width, height = (int.from_bytes(png[16 + 4 * i:20 + 4 * i], "big") for i in range(2))
    assert (width, height) == (round(5.6 * DPI), round(4.4 * DPI))
    assert figure.axes[0].get_xlabel() == "eta" and len(figure.axes[0].lines) == 1
