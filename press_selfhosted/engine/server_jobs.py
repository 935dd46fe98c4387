"""Jobs Press sends to a whole server: ``Ping Job`` and the periodic ``Cleanup Unused Files`` (every six
hours for every Active server; unanswered it would fail four times a day on every container server).

On a container server Archive Bench already removes a bench's containers, and benches keep no
temporary files outside their volumes, so the cleanup's work is Docker's: images no container and no
tag refers to any more (old bench images after deploys), which ``docker image prune`` removes. Only
images press_selfhosted's builds made (label ``press.managed=1``) are pruned: the host may run other
things, whose images are not ours to remove.
"""

from __future__ import annotations

from press_selfhosted.engine import naming
from press_selfhosted.engine.agent.handlers import Handler, StepContext, handler

MIB = 1024 * 1024


def ping(ctx: StepContext) -> None:
	ctx.log(f"server {ctx.server.name}: Docker answers ({ctx.docker.version().get('Version', '?')})")


def report_archived_benches(ctx: StepContext) -> None:
	"""Archive Bench removed the containers; a sites volume it kept for archived sites' files is named,
	never removed (the operator decides about other people's data)."""
	server = ctx.server.name
	running = {
		container.labels.get(naming.BENCH)
		for container in ctx.docker.containers.list(all=True, filters={"label": naming.label_filters(server)})
	}
	volumes = ctx.docker.volumes.list(filters={"label": naming.label_filters(server, role="bench-sites")})
	kept = sorted(v.name for v in volumes if (v.attrs.get("Labels") or {}).get(naming.BENCH) not in running)
	if kept:
		ctx.log(
			f"sites volumes Archive Bench kept for archived sites' files (not removed): {', '.join(kept)}"
		)
	else:
		ctx.log("Archive Bench removes a bench's containers itself: nothing left to remove")


def no_temporary_files(ctx: StepContext) -> None:
	ctx.log("container benches keep their temporary files inside their containers and volumes")


def prune_images(ctx: StepContext) -> None:
	pruned = ctx.docker.images.prune(filters={"dangling": True, "label": [f"{naming.MANAGED}=1"]})
	removed = pruned.get("ImagesDeleted") or []
	reclaimed = (pruned.get("SpaceReclaimed") or 0) / MIB
	ctx.log(f"removed {len(removed)} unused image layer(s), {reclaimed:.1f} MiB reclaimed")


def server_handlers() -> list[Handler]:
	return [
		handler("Ping Job", "POST", "ping_job", [("Ping Step", ping)]),
		handler(
			"Cleanup Unused Files",
			"POST",
			"server/cleanup",
			[
				("Remove Archived Benches", report_archived_benches),
				("Remove Temporary Files", no_temporary_files),
				("Remove Unused Docker Artefacts", prune_images),
			],
		),
	]
