"""The local cluster keeps its port across `db down` / `db up` (found by the soak, issue #19):
connections of its previous run left in TIME_WAIT must not make the port look taken."""

from __future__ import annotations

import socket

from agents_pipeline.core.localdb import _port_is_free, free_port


def test_a_port_with_connections_in_time_wait_is_free_to_listen_on_again():
    port = free_port()
    server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    server.bind(("127.0.0.1", port))
    server.listen()
    client = socket.create_connection(("127.0.0.1", port))
    accepted, _ = server.accept()
    assert not _port_is_free(port)            # listening: taken
    accepted.close()                           # the server side closes first: its end goes to TIME_WAIT
    client.close()
    server.close()
    assert _port_is_free(port)
