"""Each measured run in a process of its own, so that its peak memory (``ru_maxrss``) is its own: the
parent starts ``<script> --child ARGS…`` and reads the JSON line the child reports last."""

from __future__ import annotations

import json
import resource
import subprocess
import sys


def run_child(script: str, what: str, *args: str) -> dict:
	done = subprocess.run(
		[sys.executable, script, "--child", *args], check=False, capture_output=True, text=True
	)
	if done.returncode:
		raise SystemExit(f"the {what} run failed:\n{done.stderr[-3000:]}")
	return json.loads(done.stdout.strip().splitlines()[-1])


def report_figures(figures: dict) -> None:
	"""In the child: its figures and its peak memory, as the last line of its output."""
	peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
	print(json.dumps({**figures, "peak_mib": peak_mib}))
