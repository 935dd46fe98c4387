"""Run one recorded job in this process: ``python -m press_selfhosted.engine.agent.worker --factory
module:function <job id>``.

``function()`` returns the :class:`~press_selfhosted.engine.agent.executor.Executor` to use (store,
handlers, topology, secrets). The Frappe layer does not use this entry point (it runs jobs in RQ
workers through ``press_selfhosted.glue``); it is for running a job outside a bench, e.g. by hand or
in the crash tests.
"""

from __future__ import annotations

import argparse
import importlib
import sys


def main(argv: list[str] | None = None) -> int:
	parser = argparse.ArgumentParser(prog="press_selfhosted.engine.agent.worker")
	parser.add_argument("--factory", required=True, help="module:function returning an Executor")
	parser.add_argument("job", type=int)
	args = parser.parse_args(argv)
	module, _, function = args.factory.partition(":")
	executor = getattr(importlib.import_module(module), function)()
	status = executor.run(args.job)
	print(status or "held by another worker")
	return 0 if status in (None, "Success") else 1


if __name__ == "__main__":
	sys.exit(main())
