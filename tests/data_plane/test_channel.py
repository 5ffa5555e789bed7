"""Messages between a node and its workers cross a socket pair unchanged."""

from __future__ import annotations

import socket
import struct

import pytest

from data_plane import channel
from data_plane.channel import Channel, ChannelError


async def _pair() -> tuple[Channel, Channel]:
    left, right = socket.socketpair()
    return await Channel.open(left), await Channel.open(right)


async def test_every_kind_of_message_arrives_as_sent() -> None:
    node, worker = await _pair()
    sent = [
        (channel.CONFIG, b'{"v":1}\n\x78\x9c'),
        (channel.LISTEN, b'{"host":"127.0.0.1","port":8000}'),
        (channel.STATUS, b""),
        (channel.SCRAPE, b""),
        (channel.TOTALS, b'{"counts":[]}'),
        (channel.APPLIED, b'{"version":2}'),
        (channel.REFUSED, b'{"reason":"no"}'),
        (channel.LISTENING, b'{"port":8000}'),
        (channel.FAILED, b'{"errno":98,"reason":"in use"}'),
        (channel.REPORT, b'{"counters":{}}'),
        (channel.METRICS, b'{"series":[],"figures":{}}'),
        (channel.TALLY, b'{"counts":[]}'),
    ]
    for kind, body in sent:
        node.send(kind, body)
    assert [await worker.receive() for _ in sent] == sent
    node.close()
    assert await worker.receive() is None
    worker.close()


async def test_a_json_body_decodes_to_the_object_sent() -> None:
    node, worker = await _pair()
    node.send_json(channel.APPLIED, {"version": 3, "hash": "a" * 32})
    message = await worker.receive()
    assert message is not None
    assert channel.load(message[1]) == {"version": 3, "hash": "a" * 32}
    node.close()
    worker.close()


async def test_an_unknown_kind_is_refused() -> None:
    left, right = socket.socketpair()
    peer = await Channel.open(right)
    left.sendall(struct.pack(">IB", 0, ord("Z")))
    with pytest.raises(ChannelError, match="unknown message kind"):
        await peer.receive()
    left.close()
    peer.close()


def test_a_body_that_is_not_a_json_object_is_refused() -> None:
    with pytest.raises(ChannelError):
        channel.load(b"[1, 2]")
    with pytest.raises(ChannelError):
        channel.load(b"{")


async def test_rate_limiting_counts_arrive_as_sent() -> None:
    node, worker = await _pair()
    tally = [["route", "service", "10.0.0.1", "minute", 1_700_000_040, 3]]
    totals = [["route", "service", "10.0.0.1", "minute", 1_700_000_040, 7, [3, 4]]]
    worker.send_json(channel.TALLY, {"counts": tally})
    node.send_json(channel.TOTALS, {"counts": totals})
    sent = await node.receive()
    assert sent is not None and sent[0] == channel.TALLY
    assert channel.load_counts(sent[1]) == tally
    heard = await worker.receive()
    assert heard is not None and heard[0] == channel.TOTALS
    assert channel.load_counts(heard[1], slot=1) == totals
    node.close()
    worker.close()


@pytest.mark.parametrize(
    "body",
    [
        b'{"counts": {}}',
        b'{"counts": [["r", "s", "who", "minute", 60]]}',
        b'{"counts": [["r", "s", "who", "fortnight", 60, 1]]}',
        b'{"counts": [["r", "s", 7, "minute", 60, 1]]}',
        b'{"counts": [["r", "s", "who", "minute", 60, true]]}',
    ],
)
def test_a_tally_that_is_not_rows_of_counts_is_refused(body: bytes) -> None:
    with pytest.raises(ChannelError):
        channel.load_counts(body)


def test_totals_without_a_share_for_the_worker_are_refused() -> None:
    body = b'{"counts": [["r", "s", "who", "minute", 60, 3, [3]]]}'
    assert channel.load_counts(body, slot=0)
    with pytest.raises(ChannelError, match="no share for worker 1"):
        channel.load_counts(body, slot=1)
