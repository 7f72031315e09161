#!/usr/bin/env python3
"""Writes the seed corpus of the dispatch fuzz target (Tests/Fuzz/Corpus/dispatch/): QEMU-like
message sequences in the input format DispatchFuzz reads (see its doc comment). Rerun after
changing that format: python3 Tests/Fuzz/make-dispatch-seeds.py"""
import os
import struct

GUEST_RAM, SMALL_MEMFD, EVENTFD, PIPE, SOCKET, DEV_NULL, SEALED_MEMFD = range(7)
FEATURES = (1 << 32) | (1 << 30) | (1 << 29) | (1 << 28) | (1 << 12) | (1 << 9) | (1 << 13) | (1 << 14)
PROTOCOL = 1 | 8 | 32 | 512 | 4096 | 8192 | 32768
RAM = 2 << 20


def message(request, payload=b"", fds=(), need_reply=False):
    out = bytes([request, 2 if need_reply else 0, len(fds)]) + bytes(fds)
    return out + struct.pack("<H", len(payload)) + b"\0" + payload


def u64(value):
    return struct.pack("<Q", value)


def state(index, value):
    return struct.pack("<II", index, value)


def handshake(features=FEATURES):
    return (message(1) + message(15) + message(16, u64(PROTOCOL)) + message(3) + message(17)
            + message(2, u64(features)) + message(36))


def mem_table(regions=((0, RAM, 0x7f0000000000, 0),)):
    body = struct.pack("<II", len(regions), 0) + b"".join(struct.pack("<QQQQ", *r) for r in regions)
    return message(5, body, fds=[GUEST_RAM] * len(regions), need_reply=True)


def ring(index, size=64, base=0x10000):
    desc, avail, used = base, base + 16 * size, base + 0x2000
    return (message(8, state(index, size)) + message(10, state(index, 0))
            + message(9, struct.pack("<IIQQQQ", index, 0, 0x7f0000000000 + desc, 0x7f0000000000 + used,
                                     0x7f0000000000 + avail, 0))
            + message(12, u64(index), fds=[EVENTFD]) + message(13, u64(index), fds=[EVENTFD])
            + message(14, u64(index), fds=[EVENTFD]) + message(18, state(index, 1)))


seeds = {
    "handshake": handshake(),
    "get-features-with-fds": message(1, fds=[GUEST_RAM, EVENTFD, PIPE]),
    "mem-table": handshake() + mem_table(),
    "rings-start-and-stop": handshake() + mem_table() + ring(0) + ring(1, base=0x40000)
                            + message(11, state(0, 0)) + message(11, state(1, 0)),
    "add-remove-region": handshake() + message(37, struct.pack("<QQQQQ", 0, 0, RAM, 0x7f0000000000, 0),
                                               fds=[GUEST_RAM], need_reply=True)
                         + message(38, struct.pack("<QQQQQ", 0, 0, RAM, 0x7f0000000000, 0), fds=[GUEST_RAM]),
    "config": handshake() + message(24, struct.pack("<III", 0, 60, 0) + bytes(60))
              + message(25, struct.pack("<III", 32, 1, 0) + b"\1", need_reply=True),
    "inflight": handshake() + message(31, struct.pack("<QQHH4x", 0, 0, 2, 64))
                + message(32, struct.pack("<QQHH4x", 8192, 0, 2, 64), fds=[SEALED_MEMFD]) + mem_table() + ring(0),
    "iotlb": handshake(FEATURES | (1 << 33)) + message(21, fds=[SOCKET]) + mem_table()
             + message(22, struct.pack("<QQQBB6x", 0x100000, 0x100000, 0x7f0000000000, 3, 2), need_reply=True)
             + ring(0, base=0x100000)
             + message(22, struct.pack("<QQQBB6x", 0x100000, 0x1000, 0, 0, 3), need_reply=True),
    "reset": handshake() + mem_table() + ring(0) + message(34) + message(4),
}
directory = os.path.join(os.path.dirname(os.path.abspath(__file__)), "Corpus", "dispatch")
os.makedirs(directory, exist_ok=True)
for name, data in seeds.items():
    with open(os.path.join(directory, name), "wb") as f:
        f.write(data)
