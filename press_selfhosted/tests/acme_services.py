"""The project's ACME services (pebble, pebble-challtestsrv) as Traefik in a container uses them; shared by
the in-bench suite and tests/ (imports nothing of Frappe)."""

from __future__ import annotations

import contextlib
import io
import socket
import tarfile
import threading

from press_selfhosted.engine.clients import acme

# where the tests put the exec provider's script: the ACME volume, which outlives the Traefik container
EXEC_PATH = f"{acme.ACME_DIRECTORY}/challtestsrv.sh"


class Relay:
	"""A TCP relay on the host, in a thread of this process. The project's services (pebble,
	challtestsrv) listen on the host's loopback, which a container on a bridge network cannot reach:
	Traefik reaches them through the network's gateway address instead. ``port`` 0 picks a free one."""

	def __init__(self, listen: str, target: tuple[str, int], port: int = 0):
		self.target = target
		self.server = socket.create_server((listen, port))
		self.port = self.server.getsockname()[1]
		threading.Thread(target=self._accept, daemon=True).start()

	def _accept(self) -> None:
		with contextlib.suppress(OSError):
			while True:
				client, _ = self.server.accept()
				upstream = socket.create_connection(self.target)
				for source, sink in ((client, upstream), (upstream, client)):
					threading.Thread(target=self._pipe, args=(source, sink), daemon=True).start()

	@staticmethod
	def _pipe(source: socket.socket, sink: socket.socket) -> None:
		with contextlib.suppress(OSError):
			while data := source.recv(65536):
				sink.sendall(data)
		with contextlib.suppress(OSError):
			sink.shutdown(socket.SHUT_WR)

	def close(self) -> None:
		self.server.close()


# lego's exec provider runs ``<script> present|cleanup <fqdn> <value>``; the script proves it was handed
# its credential (variable PRESS_TEST_TOKEN) as a file by refusing to run without the right one.
_SCRIPT = """#!/bin/sh
set -eu
[ "$(cat "$PRESS_TEST_TOKEN_FILE")" = "{token}" ] || {{ echo "wrong credential" >&2; exit 3; }}
case "$1" in
present) body="{{\\"host\\": \\"$2\\", \\"value\\": \\"$3\\"}}"; path=set-txt ;;
cleanup) body="{{\\"host\\": \\"$2\\"}}"; path=clear-txt ;;
*) exit 0 ;;
esac
wget -q -O /dev/null --post-data "$body" "http://{dns}/$path"
"""


def exec_script_archive(token: str, dns: str) -> bytes:
	"""A tar of the script for lego's ``exec`` DNS provider, for ``put_archive`` into the ACME directory:
	it publishes the challenge's TXT record in challtestsrv (its management API at ``dns``, host:port)
	once its credential file holds ``token``."""
	data = _SCRIPT.format(token=token, dns=dns).encode()
	info = tarfile.TarInfo(EXEC_PATH.rpartition("/")[2])
	info.size = len(data)
	info.mode = 0o755
	buffer = io.BytesIO()
	with tarfile.open(fileobj=buffer, mode="w") as archive:
		archive.addfile(info, io.BytesIO(data))
	return buffer.getvalue()
