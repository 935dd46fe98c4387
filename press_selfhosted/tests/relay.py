"""Reaching the project's services on the host's loopback from containers; shared by the in-bench suite
and tests/ (imports nothing of Frappe)."""

from __future__ import annotations

import contextlib
import socket
import threading


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
