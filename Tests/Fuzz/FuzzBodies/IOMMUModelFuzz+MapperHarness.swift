@testable import IOMMUModel

extension IOMMUModelFuzz {
    /// A `TwoStepMapper` (geometry and window from the input, a hostile geometry now and then)
    /// playing a guest: reserve IOVA space, link a run or a list of pages, unlink, replace a
    /// page, release (live, stale and forged reservations). Every message it returns is applied
    /// to an `IOTLB`, as a back end would.
    ///
    /// Checked against a `MapperReference` after every request: the same error, reservation or
    /// messages; the same reservations; the mapper's links and the IOTLB fed with the messages
    /// both mapping exactly the reference's pages; sound range stores; each granule the request
    /// touched with a bitmap exactly when it has linked pages, counting them, with its bits
    /// right at the request's edges.
    struct MapperHarness {
        private var mapper: TwoStepMapper
        private var reference: MapperReference
        /// Every message the mapper returned, applied in order.
        private var replayed = IOTLB()
        private var released: [IOVAReservation] = []

        /// Configuration: a geometry byte (page 1 B...4 KiB, granule 1...128 pages), a byte
        /// that sometimes makes the geometry hostile, the window's start (an address), its size
        /// (1...64 granules and up to 255 bytes more). Nil when the geometry is invalid, after
        /// checking that the mapper refused it.
        init?(_ operands: inout Operands) {
            let shape = operands.byte()
            let hostility = operands.byte()
            var pageSize = UInt64(1) << UInt64(shape % 13)
            var granuleSize = pageSize << UInt64((shape >> 4) % 8)
            if hostility & 0xC0 == 0xC0 {
                pageSize = UInt64(hostility & 0x3F)
                granuleSize = UInt64(shape) << 12
            }
            let start = operands.address()
            let length = UInt128(operands.byte() % 64 + 1) * UInt128(granuleSize) + UInt128(operands.byte())
            let window = start...UInt64(min(UInt128(start) + max(length, 1) - 1, UInt128(UInt64.max)))
            let expected = MapperReference.geometryError(granuleSize: granuleSize, pageSize: pageSize)
            do throws(TwoStepMappingError) {
                mapper = try TwoStepMapper(window: window, granuleSize: granuleSize, pageSize: pageSize)
                require(expected == nil, "a mapper with granule \(granuleSize), page \(pageSize) made, the reference refuses it")
            } catch {
                require(error == expected, "TwoStepMapper(granule: \(granuleSize), page: \(pageSize)) threw \(error), the reference \(String(describing: expected))")
                return nil
            }
            reference = MapperReference(window: window, granuleSize: granuleSize, pageSize: pageSize)
        }

        var pageSize: UInt64 { reference.pageSize }

        mutating func reserve(_ operands: inout Operands) {
            let selector = operands.byte()
            // Mostly a few granules minus a few bytes; sometimes any size.
            let size = selector & 3 == 0
                ? operands.size(from: 0)
                : UInt64((selector >> 2) & 7 + 1) &* reference.granuleSize &- UInt64(operands.byte()) % reference.granuleSize
            let expected = reference.reserve(size: size)
            let actual = Result { () throws(TwoStepMappingError) in try mapper.reserve(size: size) }
            require(actual == expected, "reserve(size: \(hex(size))) gave \(actual), the reference \(expected)")
            let touched = (try? actual.get()).map(\.range)
            check(touched: nil, probe: touched?.lowerBound ?? reference.window.lowerBound, "reserve(size: \(hex(size)))")
        }

        /// Releases a live reservation, one released before, or a forged one (another id, a
        /// shorter range).
        mutating func release(_ operands: inout Operands) {
            let selector = operands.byte()
            let index = Int(operands.byte())
            let live = reference.liveReservations
            let reservation: IOVAReservation
            switch selector % 4 {
            case 0 where !released.isEmpty:
                reservation = released[index % released.count]
            case 1 where !live.isEmpty:
                let original = live[index % live.count]
                reservation = IOVAReservation(id: original.id &+ 1, range: original.range)
            case 2 where !live.isEmpty:
                let original = live[index % live.count].range
                let shorter = original.upperBound == original.lowerBound ? original : original.lowerBound...(original.upperBound - 1)
                reservation = IOVAReservation(id: live[index % live.count].id, range: shorter)
            default:
                guard !live.isEmpty else { return }
                reservation = live[index % live.count]
            }
            let expected = reference.release(reservation)
            let actual = Result { () throws(TwoStepMappingError) in try mapper.release(reservation) }
            let what = { "release(\(reservation.id), \(describe(reservation.range)))" }
            requireMessages(actual, expected, what())
            if case .success = expected { released.append(reservation) }
            check(touched: (try? expected.get()) == nil ? nil : reservation.range, probe: reservation.range.lowerBound, what())
        }

        mutating func link(_ operands: inout Operands) {
            let iova = requestIOVA(&operands)
            let size = requestSize(&operands, iova: iova)
            let userAddress = operands.address()
            let aligned = operands.flag() ? userAddress : userAddress & ~(pageSize - 1)
            let permission = operands.permission()
            let what = { "link(iova: \(hex(iova)), size: \(hex(size)), userAddress: \(hex(aligned)), permission: \(permission.rawValue))" }
            let expected = reference.link(iova: iova, size: size, userAddress: aligned, permission: permission)
            let actual = Result { () throws(TwoStepMappingError) in
                try mapper.link(iova: iova, size: size, userAddress: aligned, permission: permission)
            }
            requireMessages(actual, expected, what())
            check(touched: (try? expected.get()) == nil ? nil : iova...(iova + (size - 1)), probe: iova, what())
        }

        /// Links up to 16 pages, in runs whose user addresses follow each other or skip a page.
        mutating func linkPages(_ operands: inout Operands) {
            let iova = requestIOVA(&operands)
            let count = Int(operands.byte() % 17)
            let pattern = operands.byte()
            let base = operands.address()
            let permission = operands.permission()
            var pages: [UInt64] = []
            var next = base & ~(pageSize - 1)
            for index in 0..<count {
                pages.append(next)
                next = next &+ pageSize &* (pattern >> UInt8(index % 7) & 1 == 0 ? 1 : 2)
            }
            if pattern & 0x80 != 0, !pages.isEmpty { pages[pages.count - 1] = base }  // perhaps unaligned
            let what = { "link(iova: \(hex(iova)), pages: \(pages.map(hex)), permission: \(permission.rawValue))" }
            let expected = reference.link(iova: iova, pages: pages, permission: permission)
            let actual = Result { () throws(TwoStepMappingError) in try mapper.link(iova: iova, pages: pages, permission: permission) }
            requireMessages(actual, expected, what())
            let size = UInt64(count) * pageSize
            check(touched: (try? expected.get()) == nil ? nil : iova...(iova + (size - 1)), probe: iova, what())
        }

        mutating func unlink(_ operands: inout Operands) {
            let iova = requestIOVA(&operands)
            let size = requestSize(&operands, iova: iova)
            let what = { "unlink(iova: \(hex(iova)), size: \(hex(size)))" }
            let expected = reference.unlink(iova: iova, size: size)
            let actual = Result { () throws(TwoStepMappingError) in try mapper.unlink(iova: iova, size: size) }
            requireMessages(actual, expected, what())
            check(touched: (try? expected.get()) == nil ? nil : iova...(iova + (size - 1)), probe: iova, what())
        }

        mutating func replace(_ operands: inout Operands) {
            let iova = requestIOVA(&operands)
            let userAddress = operands.address()
            let aligned = operands.flag() ? userAddress : userAddress & ~(pageSize - 1)
            let permission = operands.permission()
            let what = { "replace(iova: \(hex(iova)), userAddress: \(hex(aligned)), permission: \(permission.rawValue))" }
            let expected = reference.replace(iova: iova, userAddress: aligned, permission: permission)
            let actual = Result { () throws(TwoStepMappingError) in
                try mapper.replace(iova: iova, userAddress: aligned, permission: permission)
            }
            requireMessages(actual, expected, what())
            check(touched: (try? expected.get()) == nil ? nil : iova...(iova + (pageSize - 1)), probe: iova, what())
        }

        // MARK: Operands

        /// Mostly an IOVA some pages into a live reservation (sometimes off by a byte);
        /// otherwise any address.
        private func requestIOVA(_ operands: inout Operands) -> UInt64 {
            let selector = operands.byte()
            let live = reference.reservations.entries
            guard selector & 7 != 0, !live.isEmpty else { return operands.address() }
            let target = live[Int(operands.byte()) % live.count].range
            let pages = selector & 8 != 0 ? UInt64(operands.byte()) << 8 | UInt64(operands.byte()) : UInt64(operands.byte() % 64)
            return target.lowerBound &+ pages &* pageSize &+ (selector & 0x30 == 0x30 ? 1 : 0)
        }

        /// Mostly 0...31 pages; sometimes any size.
        private func requestSize(_ operands: inout Operands, iova: UInt64) -> UInt64 {
            let selector = operands.byte()
            return selector & 7 == 0 ? operands.size(from: iova) : UInt64(selector >> 3) * pageSize
        }

        // MARK: Checks

        /// The mapper answered `actual`; the reference `expected`. Messages returned are applied.
        private mutating func requireMessages(_ actual: Result<[IOTLBMessageToSend], TwoStepMappingError>,
                                              _ expected: Result<[IOTLBMessageToSend], TwoStepMappingError>,
                                              _ what: @autoclosure () -> String) {
            require(actual == expected, "\(what()) gave \(actual), the reference \(expected)")
            guard case .success(let messages) = actual else { return }
            for message in messages {
                do throws(IOTLBError) {
                    try replayed.apply(message)
                } catch {
                    fail("\(what()): the IOTLB refuses the mapper's message \(message): \(error)")
                }
            }
        }

        /// The reservations (probed at `probe` and the window's ends), the links and the IOTLB
        /// fed with the messages, and the bitmaps of the granules of `touched`.
        private func check(touched: ClosedRange<UInt64>?, probe: UInt64, _ what: @autoclosure () -> String) {
            require(mapper.reservationCount == reference.reservations.count,
                    "\(what()): \(mapper.reservationCount) reservations, the reference \(reference.reservations.count)")
            for point in [probe, reference.window.lowerBound, reference.window.upperBound] {
                require(mapper.reservation(containing: point) == reference.reservation(containing: point),
                        "\(what()): the reservation holding \(hex(point)) is \(String(describing: mapper.reservation(containing: point))), "
                            + "the reference's \(String(describing: reference.reservation(containing: point)))")
            }
            requireSameMappings(mapper.links, reference.links, "\(what()): the mapper's links")
            requireSameMappings(replayed.entries, reference.links, "\(what()): the IOTLB fed with the messages")
            requireSound(mapper.links, what())
            requireSound(replayed.entries, what())
            guard let touched else { return }
            let granuleSize = reference.granuleSize
            var granule = touched.lowerBound / granuleSize
            while true {
                let start = granule * granuleSize
                let expected = reference.linkedPages(inGranuleAt: start)
                let bitmap = mapper.bitmap(ofGranuleContaining: start)
                if expected == 0 {
                    require(bitmap == nil, "\(what()): granule at \(hex(start)) has a bitmap but no linked page")
                } else {
                    require(bitmap?.linkedCount == Int(expected) && bitmap?.pageCount == Int(granuleSize / pageSize),
                            "\(what()): granule at \(hex(start)) counts \(String(describing: bitmap?.linkedCount)) of "
                                + "\(String(describing: bitmap?.pageCount)) pages linked, the reference \(expected)")
                }
                for point in [max(touched.lowerBound, start), min(touched.upperBound, start + (granuleSize - 1))] {
                    let page = Int((point - start) / pageSize)
                    require((bitmap?[page] ?? false) == (reference.links.lookup(point) != nil),
                            "\(what()): the bit of the page at \(hex(point)) differs from the reference")
                }
                guard granule < touched.upperBound / granuleSize else { break }
                granule += 1
            }
        }
    }
}
