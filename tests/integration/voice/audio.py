"""Measuring recorded calls with sox: length and loudness."""

import subprocess


def soxi_seconds(path) -> float:
    return float(subprocess.run(["soxi", "-D", str(path)], capture_output=True, text=True, timeout=30).stdout)


def rms(path) -> float:
    """RMS amplitude (0…1): speech on a call is well above 0.01, silence below."""
    stats = subprocess.run(["sox", str(path), "-n", "stat"], capture_output=True, text=True, timeout=30)
    return float(next(line for line in stats.stderr.splitlines() if line.startswith("RMS     amplitude")).split()[-1])
