"""Every job type press_selfhosted executes, in one list: what the router routes and the executor runs.

Each family of Press's job types is one class in ``engine.jobs`` (``SiteJobs`` for New Site, ``ProxyJobs``
for Add Site to Upstream...), built with its settings; its ``handlers()`` lists its job types."""

from __future__ import annotations

from collections.abc import Callable

from press_selfhosted.engine.clients.proxy import ProxySettings
from press_selfhosted.engine.jobs.backups import BackupJobs
from press_selfhosted.engine.jobs.benches import BenchJobs, BenchSettings
from press_selfhosted.engine.jobs.builds import BuilderJobs, BuilderSettings
from press_selfhosted.engine.jobs.handlers import Handler
from press_selfhosted.engine.jobs.proxy import ProxyJobs
from press_selfhosted.engine.jobs.restore import RestoreJobs
from press_selfhosted.engine.jobs.servers import ServerJobs
from press_selfhosted.engine.jobs.site_rename import SiteRenameJobs
from press_selfhosted.engine.jobs.site_steps import SiteSettings
from press_selfhosted.engine.jobs.site_tables import SiteTableJobs
from press_selfhosted.engine.jobs.site_updates import SiteUpdateJobs
from press_selfhosted.engine.jobs.sites import SiteJobs


def all_handlers(
	proxy: ProxySettings | Callable[[], ProxySettings],
	builder: BuilderSettings,
	benches: BenchSettings | None = None,
	sites: SiteSettings | None = None,
	mariadb_image: str | Callable[[], str] = "mariadb:10.6",
) -> list[Handler]:
	"""``mariadb_image``: what a container Database Server runs (asked when one is set up, if callable)."""
	proxies = ProxyJobs(proxy)
	families = (
		ServerJobs(proxies, mariadb_image if callable(mariadb_image) else lambda: mariadb_image),
		BenchJobs(benches),
		SiteJobs(sites),
		SiteUpdateJobs(proxies, sites),
		SiteRenameJobs(sites),
		SiteTableJobs(),
		proxies,
		BackupJobs(),
		RestoreJobs(),
		BuilderJobs(builder),
	)
	return [handler for family in families for handler in family.handlers()]
