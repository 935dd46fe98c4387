"""Every job type press_selfhosted executes, in one list: what the router routes and the executor runs."""

from __future__ import annotations

from collections.abc import Callable

from press_selfhosted.engine.clients.proxy import ProxySettings
from press_selfhosted.engine.jobs.backups import backup_handlers
from press_selfhosted.engine.jobs.benches import BenchSettings, bench_handlers
from press_selfhosted.engine.jobs.builds import BuilderSettings, run_remote_builder
from press_selfhosted.engine.jobs.handlers import Handler
from press_selfhosted.engine.jobs.proxy import ProxyJobs
from press_selfhosted.engine.jobs.restore import restore_handlers
from press_selfhosted.engine.jobs.servers import server_handlers, server_setup_handler
from press_selfhosted.engine.jobs.site_rename import rename_handlers
from press_selfhosted.engine.jobs.site_steps import SiteSettings
from press_selfhosted.engine.jobs.site_tables import table_handlers
from press_selfhosted.engine.jobs.site_updates import SiteUpdates
from press_selfhosted.engine.jobs.sites import site_handlers


def all_handlers(
	proxy: ProxySettings | Callable[[], ProxySettings],
	builder: BuilderSettings,
	benches: BenchSettings | None = None,
	sites: SiteSettings | None = None,
	mariadb_image: str | Callable[[], str] = "mariadb:10.6",
) -> list[Handler]:
	"""``mariadb_image``: what a container Database Server runs (asked when one is set up, if callable)."""
	proxies = ProxyJobs(proxy)
	return [
		server_setup_handler(proxies, mariadb_image if callable(mariadb_image) else lambda: mariadb_image),
		*bench_handlers(benches),
		*site_handlers(sites),
		*SiteUpdates(proxies, sites).handlers(),
		*rename_handlers(sites),
		*table_handlers(),
		*server_handlers(),
		*proxies.handlers(),
		*backup_handlers(),
		*restore_handlers(),
		run_remote_builder(builder),
	]
