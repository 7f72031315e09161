#!/usr/bin/env python3
"""Writes the seed corpus of the iommu-model fuzz body. Usage: python3 Tests/Fuzz/make-iommu-model-seeds.py Tests/Fuzz/Corpus/iommu-model
Mirrors the body's input encoding (IOMMUModelFuzz+Operands.swift and the harnesses)."""
import os, sys

OUT = sys.argv[1]
ANCHOR = dict(zero=0, gib=1, g512=2, top48=3, frame52=4, half=5, four_g=6)
UNIT = dict(b=0, page=1, mib2=2, gib=3)
# opcodes
OP = dict(update=0, invalidate=2, translate=3, snapshot=4, reserve=5, link=6, link_pages=7, unlink=8,
          replace=9, release=10, pin=11, unpin=12, wrong_tracker=13, track_invalidate=14, export=15,
          export_fixed=16, fixed_area=17, lookup=18, revoke=19, revoke_all=20, end_quarantine=21, reverse=22)

def le(v): return list((v % (1 << 64)).to_bytes(8, 'little'))
def raw(v): return [7] + le(v)
def addr(anchor='zero', unit='b', steps=0, jitter=None):
    """anchor + steps * unit (+1, -1, +byte, -byte)."""
    j, extra = 0, []
    if jitter == 1: j = 4
    elif jitter == -1: j = 5
    elif isinstance(jitter, tuple): j, extra = (6 if jitter[0] > 0 else 7), [jitter[1]]
    return [ANCHOR[anchor] | UNIT[unit] << 3 | j << 5, steps & 0xFF] + extra
def size(count, unit='page', jitter=None):
    j, extra = 0, []
    if jitter == 1: j = 4
    elif jitter == -1: j = 5
    return [4 | UNIT[unit] << 3 | j << 5, count - 1] + extra
ZERO, MAX, TO_TOP, PAST_TOP = [0], [1], [2], [3]
def size_raw(v): return [7] + le(v)
R, W, RW = [0], [1], [2]
def perm_raw(v): return [0x80 | v]
def flag(on): return [1 if on else 0]

def config(limit=7, table_limit=8, prealloc=1, pin_limit=0, page_shift=12, granule_shift=2, hostile=0,
           window=None, granules=16, window_extra=0, cookie_page=None, cookie_start=None, cookie_pages=32, cookie_extra=0):
    tables = next(t for t in range(256) if t % 10 == table_limit + 1 and (t >> 4) % 4 == prealloc)
    shape = next(s for s in range(256) if s % 13 == page_shift and (s >> 4) % 8 == granule_shift)
    cpage = cookie_page if cookie_page is not None else 12
    return ([limit, tables, pin_limit, shape, hostile] + (window or addr('four_g')) + [granules - 1, window_extra]
            + [cpage] + (cookie_start or addr('zero')) + [cookie_pages - 1, cookie_extra])

def op(name, *parts):
    out = [OP[name]]
    for part in parts: out += part
    return out

def write(name, data):
    with open(os.path.join(OUT, name), 'wb') as f: f.write(bytes(b & 0xFF for b in data))

# 1. Huge leaves in the page-table mirror, split by smaller UPDATEs and INVALIDATEs, translated.
s = config(limit=7, table_limit=8)
s += op('update', addr('gib'), size(2, 'gib'), flag(1), addr('four_g'), RW, flag(0))       # 2 GiB at 1 GiB → 2^32 + 1 GiB: 1 GiB leaves
s += op('translate', addr('gib', 'mib2', 3), size(3, 'page'), [0], [2], [0])
s += op('update', addr('gib', 'mib2', 5), size(1, 'mib2'), flag(1), addr('four_g', 'gib', 2), R, flag(1))  # split a 1 GiB leaf
s += op('translate', addr('gib', 'mib2', 4), size(3, 'mib2'), [1], [3], [17])                    # write: fault in the read-only 2 MiB
s += op('translate', addr('gib', 'mib2', 4), size(3, 'mib2'), [0], [1], [0])                     # read, one segment: needs more
s += op('invalidate', addr('gib', 'page', 7), size(1, 'page'), flag(0))                         # punch a page hole: split 2 MiB
s += op('translate', addr('gib', 'page', 5), size(4, 'page'), [0], [4], [0])                     # miss at the hole
s += op('snapshot', flag(1))
s += op('update', addr('gib', 'page', 7, jitter=1), size(1, 'page'), flag(0), addr('frame52', 'page', -1), RW, flag(0))  # unaligned: unmirrored
s += op('invalidate', addr('gib', 'gib', 1), size(1, 'gib'), flag(1))
s += op('snapshot', flag(0), addr('gib', 'page', 6), size(2, 'page'), [0], [2])                 # the old state through the caches
s += op('translate', addr('gib', 'page', 6), size(2, 'page'), [0], [2], [0])
write('mirror-huge-leaves-split-and-punched', s)

# 2. A full IOTLB: overwrites that split entries at the limit are refused; an INVALIDATE in the
# middle of an entry at the limit unmaps that entry's upper part too (regression, see the fix).
s = config(limit=3, table_limit=4)
s += op('update', addr('zero', 'page', 16), size(16, 'page'), flag(1), addr('four_g'), RW, flag(0))
s += op('update', addr('zero', 'page', 20), size(2, 'page'), flag(1), addr('four_g', 'page', 64), R, flag(0))   # 3 entries
s += op('update', addr('zero', 'page', 26), size(1, 'page'), flag(1), addr('four_g'), W, flag(1))               # would be 5: refused
s += op('invalidate', addr('zero', 'page', 18), size(1, 'page'), flag(0))                                        # split at the limit
s += op('translate', addr('zero', 'page', 16), size(16, 'page'), [0], [8], [0])
s += op('update', addr('zero', 'page', 40), size(1, 'page'), flag(0), addr('four_g', 'page', 3), RW, flag(0))
write('regression-invalidate-split-at-entry-limit', s)

# 3. The top of the IOVA space: mappings ending at UInt64.max, buffers wrapping to IOVA 0,
# UPDATEs refused for wrapping ranges, empty sizes and bad permissions; size-0 INVALIDATE.
s = config(limit=6, table_limit=2)
s += op('update', addr('zero', 'page', -16), TO_TOP, flag(0), addr('four_g'), RW, flag(0))
s += op('update', addr('zero'), size(4, 'page'), flag(0), addr('four_g', 'page', 16), RW, flag(1))   # user continues
s += op('translate', addr('zero', 'page', -2), size(4, 'page'), [0], [1], [5])                       # one segment across the wrap
s += op('update', addr('zero', 'page', -1), PAST_TOP, flag(0), addr('four_g'), RW, flag(0))            # wraps: refused
s += op('update', addr('half'), size(1, 'page'), flag(0), addr('zero', 'b', -5), R, flag(0))             # user range wraps
s += op('update', addr('half'), ZERO, flag(0), addr('zero'), R, flag(0))
s += op('update', addr('half'), size(1, 'page'), flag(0), addr('zero'), perm_raw(0), flag(0))
s += op('update', addr('half'), size(1, 'page'), flag(0), addr('zero'), perm_raw(7), flag(0))
s += op('update', addr('top48', 'page', -2), size(4, 'page'), flag(0), addr('four_g'), RW, flag(0))     # across 2^48
s += op('translate', addr('top48', 'page', -1), size(2, 'page'), [1], [2], [0])
s += op('invalidate', addr('half'), ZERO, flag(1))
s += op('translate', addr('zero', 'page', -2), size(4, 'page'), [0], [1], [0])
write('mirror-top-of-space-and-refusals', s)

# 4. Two-step mapping: reserve, link a run and a list of pages, replace, unlink, release (live,
# stale, forged), and refusals (unaligned, outside the reservation, linked already).
s = config(limit=7, page_shift=12, granule_shift=2, window=addr('four_g', 'b', 0, jitter=(1, 5)), granules=16, window_extra=7)
s += op('reserve', [0b00000101], [3])              # 2 granules minus 3 bytes
s += op('reserve', [0b00001001], [0])              # 3 granules
s += op('link', [0b001, 0, 2], [0b00011001], addr('four_g', 'page', 3), flag(0), RW)      # 3 pages at page 2 of the first
s += op('link_pages', [0b001, 1, 0], [5], [0b00000110], addr('four_g', 'page', 40), R)  # 5 pages in runs
s += op('link', [0b001, 0, 3], [0b00001001], addr('zero'), flag(0), RW)                  # linked already
s += op('link', [0b110001, 0, 0], [0b00001001], addr('zero'), flag(0), RW)               # unaligned IOVA
s += op('link', [0b001, 1, 10], [0b00111001], addr('zero'), flag(0), RW)                 # runs out of the second
s += op('replace', [0b001, 0, 3], addr('four_g', 'page', 99), flag(0), W)
s += op('unlink', [0b001, 0, 1], [0b00100001])
s += op('release', [3], [0])
s += op('release', [0], [0])                      # stale
s += op('release', [1], [0])                      # forged id
s += op('release', [2], [0])                      # shorter range
s += op('reserve', [0], ZERO)
s += op('reserve', [0], MAX)
write('mapper-reserve-link-replace-release', s)

# 5. A mapper with 1-byte pages and 8-byte granules in a window ending at UInt64.max.
s = config(limit=7, page_shift=0, granule_shift=3, window=addr('zero', 'b', -64), granules=8, window_extra=0)
s += op('reserve', [0b00011101], [1])
s += op('link', [0b001, 0, 0], [0x81], addr('zero', 'b', -100), flag(1), RW)          # 16 bytes
s += op('link_pages', [0b001, 0, 48], [16], [0b1000_0011], addr('zero', 'b', -16), RW)  # up to the top; user pages wrap
s += op('unlink', [0b001, 0, 0], [0] + TO_TOP)
s += op('release', [3], [0])
write('mapper-byte-pages-at-the-top', s)

# 6. Pins: overlapping pins, an invalidation deferred by them, a pin refused while it waits,
# releases completing it, the byte limit, and releases to the wrong tracker.
s = config(limit=7, pin_limit=4)
s += op('pin', [1], addr('zero', 'page', 1), addr('zero', 'page', 4, jitter=-1))
s += op('pin', [1], addr('zero', 'page', 3), addr('zero', 'page', 8, jitter=-1))
s += op('pin', [0])                                                        # the first range again
s += op('track_invalidate', addr('zero', 'page', 3, jitter=1), addr('zero', 'page', 3, jitter=(1, 9)))
s += op('pin', [1], addr('zero', 'page', 2), addr('zero', 'page', 5))       # refused: pending
s += op('invalidate', addr('zero', 'page', 6), size(1, 'page'), flag(0))    # the mirror's INVALIDATE, deferred too
s += op('unpin', [0]); s += op('unpin', [1]); s += op('unpin', [0])
s += op('pin', [1], addr('zero'), addr('zero', 'mib2', 1))                 # over the limit
s += op('pin', [1], addr('gib'), addr('gib', 'page', 1))
s += op('wrong_tracker', [0])                                              # ours to the stranger: stays held
s += op('wrong_tracker', [1], addr('gib'), addr('gib', 'b', 5))             # the stranger's to ours
s += op('track_invalidate', addr('gib'), addr('gib'))
s += op('pin', [1], addr('zero'), raw(2**64 - 1))                           # the whole space
write('pins-deferred-invalidation-and-limit', s)

# 7. Mmap cookies: dynamic exports, a fixed area, fixed exports, lookups, revocations, the end
# of quarantine, forged cookies.
s = config(limit=7, cookie_page=12, cookie_start=addr('four_g', 'page', 0, jitter=(1, 7)), cookie_pages=24, cookie_extra=3)
s += op('export', [0b00_010_000])                        # object 0, one page
s += op('export', [0b00_100_001])                        # object 1, three pages
s += op('export', [0b00_010_000])                        # object 0 again: the same cookie
s += op('export', [0b01_011_100])                        # object 0 read-only, page + 1
s += op('fixed_area', [1, 12], [0x03])                   # 4 pages at page 12
s += op('fixed_area', [1, 14], [0x01])                   # overlaps it
s += op('fixed_area', [1, 20], [0x80])                   # ends a byte past a page
s += op('fixed_area', [0], addr('zero'), [0])            # outside the window
s += op('export_fixed', [0b10_100_010], [1, 12])         # object 2, three pages, in the area
s += op('export_fixed', [0b10_100_010], [1, 13])         # elsewhere: exported already
s += op('export_fixed', [0b00_010_011], [1, 15])         # the last page of the area
s += op('export_fixed', [0b00_010_001], [1, 15])         # taken
s += op('lookup', [1, 13], size(2, 'page'))
s += op('lookup', [1, 1], size(1, 'b'))
s += op('revoke', [2], [0])
s += op('revoke', [0], [1])                              # forged serial
s += op('lookup', [1, 1], size(1, 'b'))
s += op('export', [0b00_010_000])                        # object 0 again: a new cookie
s += op('end_quarantine', [2], [0])
s += op('revoke_all', [2])
s += op('end_quarantine', [2], [4])
s += op('export_fixed', [0b00_010_010], [1, 12])         # the area is free again
s += op('export', [0b00_101_011])                        # UInt64.max bytes
s += op('export', [0b00_110_011])                        # the largest size that rounds
write('cookies-fixed-areas-and-quarantine', s)

# 8. Reverse translation: regions continuing the same file, a wrapping buffer, then bad tables.
s = config(limit=7)
s += op('reverse', [3],
        addr('zero'), size(4, 'page'), [1], addr('four_g'),
        addr('zero', 'page', 4), size(2, 'page'), [1], addr('four_g', 'page', 4),
        addr('zero', 'page', -2), TO_TOP, [1], addr('four_g', 'page', -2),
        addr('zero', 'page', -2), size(8, 'page'), addr('zero', 'page', -1), size(18, 'page'),
        [4], [4], [4], [1], [3])  # capacities of the five probes
s += op('reverse', [2], addr('zero', 'page', 1), size(4, 'page'), [0], addr('zero'),
        addr('zero', 'page', 3), size(4, 'page'), [0], addr('zero'))
s += op('reverse', [2], addr('zero', 'page', 1), size(4, 'page'), [0], addr('zero', 'b', -2),
        addr('zero', 'page', 3), ZERO, [0], addr('zero'))
write('reverse-translation-regions', s)

# 9. Hostile configuration: no entries allowed, a table limit below 1, an invalid mapper
# geometry and cookie page size; every UPDATE refused, INVALIDATEs and translations still fine.
s = config(limit=8, table_limit=-1, prealloc=0, hostile=0xC3, cookie_page=0x83)
s += op('update', addr('zero'), size(1, 'page'), flag(0), addr('zero'), RW, flag(0))
s += op('invalidate', addr('zero'), MAX, flag(0))
s += op('translate', addr('zero'), ZERO, [0], [0], [0])
s += op('reserve') + op('export') + op('pin', [1], addr('zero'), addr('zero'))
write('hostile-configuration', s)
