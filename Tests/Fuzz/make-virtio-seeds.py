#!/usr/bin/env python3
"""Seed inputs for the descriptor-chain and block-request fuzz bodies (formats documented in
DescriptorChainFuzz+QueueSetup.swift / DescriptorChainFuzz.swift and BlockRequestFuzz+Request.swift).
Usage: python3 Tests/Fuzz/make-virtio-seeds.py Tests/Fuzz/Corpus"""
import os, struct, sys

root = sys.argv[1]
NEXT, WRITE, INDIRECT = 1, 2, 4

def desc(addr, length=0, flags=0, nxt=0):
    return struct.pack('<QIHH', addr, length, flags, nxt)

def chain_seed(exp, options, table_sel, avail_sel, used_sel, next_index, small_segments, table, avail_idx, heads,
               avail_flags=0, background=b''):
    n = 1 << exp
    config = bytes([exp, options]) + struct.pack('<HHHH', table_sel, avail_sel, used_sel, next_index) + bytes([small_segments])
    table_bytes = b''.join(table).ljust(16 * n, b'\0')
    assert len(table_bytes) == 16 * n
    ring = [0] * n
    for k, head in enumerate(heads):
        ring[(next_index + k) % n] = head
    avail = struct.pack('<HH', avail_flags, avail_idx) + b''.join(struct.pack('<H', h) for h in ring) + b'\0\0'
    return config + table_bytes + avail + background

R0, R1, R2, R3 = 0x0, 0x1_0000, 0x1_1000, 0xFFFF_FFFF_FFFE_0000
seeds = {}
# Two plain chains: header + writable data + status; one readable buffer.
seeds['descriptor-chain/direct-chains'] = chain_seed(3, 0, 0x0000, 0x0800, 0x0800, 0, 0, [
    desc(0x4000, 16, NEXT, 1), desc(0x5000, 512, WRITE | NEXT, 2), desc(0x6000, 1, WRITE), desc(0x7000, 0x100)],
    2, [0, 3], background=bytes(range(64)))
# An indirect table inside the descriptor table (entries 4..6), EVENT_IDX with NO_INTERRUPT.
seeds['descriptor-chain/indirect-table'] = chain_seed(3, 0x03, 0x0000, 0x0800, 0x0800, 0, 0, [
    desc(R0 + 64, 48, INDIRECT), desc(0), desc(0), desc(0),
    desc(0x8000, 16, NEXT, 1), desc(0x9000, 32, WRITE | NEXT, 2), desc(0x9100, 1, WRITE)],
    1, [0], avail_flags=1, background=b'\x11\x22\x33\x44')
# Rings in regions 1 and 2; buffers across the region 0/1 boundary, in region 3, and one running
# from region 2 into the gap (the second chain breaks the queue).
seeds['descriptor-chain/across-regions'] = chain_seed(4, 0x01, 0x4000, 0x8080, 0x0C00, 0, 0, [
    desc(0xFF00, 0x200, NEXT, 1), desc(R3 + 0x100, 64, WRITE | NEXT, 2), desc(0x11F00, 0x100, WRITE),
    desc(0x11F00, 0x200)],
    2, [0, 3], background=bytes(range(255, 0, -1)))
# Indices wrapping 2^16; a zero-length descriptor at a wild address; then a loop.
seeds['descriptor-chain/wrapping-indices-and-loop'] = chain_seed(2, 0, 0x0010, 0x0900, 0x0A00, 0xFFFE, 0, [
    desc(0x2000, 100), desc(0xDEAD_0000_0000, 0, NEXT, 2), desc(0x2100, 8, WRITE), desc(0x3000, 8, NEXT, 3)],
    0x0001, [0, 1, 3])
# virtio-blk's limit (1024 buffers) on an 8-entry ring: one 20-entry indirect table from the
# background, which repeats every 320 bytes (so 0x7D00 = 100 * 320 is its start).
indirect20 = b''.join(desc(0x8000 + i * 0x100, 0x80, NEXT, i + 1) for i in range(19)) + desc(0xA000, 1, WRITE)
seeds['descriptor-chain/long-indirect-chain'] = chain_seed(3, 0x05, 0x0000, 0x0800, 0x0800, 7, 0, [
    desc(0x7D00, 20 * 16, INDIRECT)], 8, [0], background=indirect20)
# A segment buffer of two: a buffer across regions 0/1 fills it, the next needs a third.
seeds['descriptor-chain/small-segment-buffer'] = chain_seed(3, 0x10, 0x0000, 0x0800, 0x0800, 0, 1, [
    desc(0xFFF0, 0x20, NEXT, 1), desc(0x3000, 1, WRITE)], 1, [0])
# The largest ring: table filling region 1, available ring in region 2, used ring in region 0.
big = [desc(0x4000 + i * 0x40, 0x40, (NEXT if i % 3 != 2 else 0) | (WRITE if i % 3 != 0 else 0), i + 1) for i in range(255)]
seeds['descriptor-chain/ring-of-256'] = chain_seed(8, 0x03, 0x4000, 0x8000, 0x0400, 100, 0, big, 100 + 40,
                                                   [3 * k for k in range(40)])
# An indirect table through regions 0, 1 and 2 (refused: tables are read in place), with
# virtio-blk's chain limit so that it may be that long.
seeds['descriptor-chain/indirect-table-across-three-regions'] = chain_seed(3, 0x05, 0x0000, 0x0800, 0x0800, 0, 0, [
    desc(0xFFF0, 0x1020, INDIRECT)], 1, [0])
# avail->idx nine ahead on an eight-entry ring.
seeds['descriptor-chain/available-index-jump'] = chain_seed(3, 0, 0x0000, 0x0800, 0x0800, 5, 0, [
    desc(0x4000, 16)], 5 + 9, [0] * 8)

def request(kind, shape=0, pieces=0, placement=0, fields=b'', payload=b'', cuts=b''):
    return bytes([kind, shape, pieces, placement]) + fields + payload + cuts

def segment(sector, count, unmap=False, unknown=False):
    return bytes([(1 if unmap else 0) | (2 if unknown else 0), sector, count])

data1k = bytes((i * 31 + 7) & 0xFF for i in range(1024))
# OUT of 1 KiB to sector 4, then IN of it back across the region 0/1 boundary in pieces.
seeds['block-request/write-then-read'] = bytes([0]) + \
    request(1, fields=bytes([4, 2]), payload=data1k) + \
    request(0, pieces=0x05, placement=0xF0, fields=bytes([4, 2]), cuts=bytes([128, 200])) + \
    request(0, fields=bytes([120, 8]))
# FLUSH, GET_ID with room and without, GET_LIFETIME (unsupported), a raw type; writethrough.
seeds['block-request/flush-identify-unsupported'] = bytes([2]) + \
    request(2, fields=bytes([0, 0])) + \
    request(3, pieces=0x04, fields=bytes([0, 20]), cuts=bytes([100])) + \
    request(3, fields=bytes([0, 10])) + \
    request(6, fields=bytes([10, 0, 0])) + \
    request(7, fields=struct.pack('<I', 0xFFFFFFFF) + bytes([0, 0]))
# WRITE_ZEROES (one segment with unmap), DISCARD, DISCARD with unmap (UNSUPP), WRITE_ZEROES past
# the end (IOERR), a segment list split across descriptors, indirect.
seeds['block-request/discard-and-write-zeroes'] = bytes([0]) + \
    request(5, fields=bytes([0, 0]), payload=bytes([3]) + segment(8, 8, unmap=True) + segment(40, 3) + segment(100, 0)) + \
    request(4, pieces=0x02, fields=bytes([0, 0]), payload=bytes([2]) + segment(1, 1) + segment(64, 16), cuts=bytes([90, 170])) + \
    request(4, fields=bytes([0, 0]), payload=bytes([1]) + segment(8, 8, unmap=True)) + \
    request(5, shape=0x40, fields=bytes([0, 0]), payload=bytes([2]) + segment(10, 1) + segment(127, 2)) + \
    request(5, fields=bytes([0, 0]), payload=bytes([1]) + segment(3, 1, unknown=True))
# The read-only device: OUT and DISCARD fail, IN works.
seeds['block-request/read-only-device'] = bytes([1]) + \
    request(1, fields=bytes([2, 1]), payload=data1k[:512]) + \
    request(4, fields=bytes([0, 0]), payload=bytes([1]) + segment(2, 1)) + \
    request(0, fields=bytes([2, 1]))
# Hostile shapes: a header cut to 8 bytes, no status byte, a read-only status after OUT data,
# IN data on the readable side, a sector whose byte offset wraps, an odd raw length, zero-length
# descriptors at wild addresses, indirect.
seeds['block-request/hostile-shapes'] = bytes([0]) + \
    request(0, shape=0x20, fields=bytes([3, 8, 1])) + \
    request(1, shape=0x08, fields=bytes([3, 1]), payload=data1k[:512]) + \
    request(1, shape=0x10, fields=bytes([3, 1]), payload=data1k[:512]) + \
    request(0, shape=0x80, fields=bytes([3, 1]), payload=data1k[:512]) + \
    request(0, shape=0x02, fields=struct.pack('<Q', (1 << 55) + 10) + bytes([1])) + \
    request(1, shape=0x04, fields=bytes([5]) + struct.pack('<H', 1000), payload=data1k[:1000]) + \
    request(1, shape=0x40, pieces=0x1F, placement=0x10, fields=bytes([7, 1]), payload=data1k[:512], cuts=bytes([10, 20, 30, 40, 50, 60]))

for name, data in seeds.items():
    path = os.path.join(root, name)
    with open(path, 'wb') as f:
        f.write(data)
    print(f'{name}: {len(data)} bytes')
