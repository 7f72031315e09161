@testable import IOMMUModel

extension IOMMUModelFuzz {
    /// The plain model of a `TwoStepMapper`: reservations and linked pages as sorted lists,
    /// each request checked in the mapper's documented order, the messages it must return
    /// computed from the lists.
    struct MapperReference {
        let window: ClosedRange<UInt64>
        let granuleSize: UInt64
        let pageSize: UInt64
        private(set) var reservations = RangeReference<ReservationTag>()
        private(set) var links = RangeReference<IOTLBEntry>()
        private var lastID: UInt64 = 0

        /// Why a mapper with this geometry must not be made, or nil.
        static func geometryError(granuleSize: UInt64, pageSize: UInt64) -> TwoStepMappingError? {
            guard pageSize.nonzeroBitCount == 1, granuleSize.nonzeroBitCount == 1, granuleSize >= pageSize,
                  granuleSize / pageSize <= 1 << 18 else {
                return .invalidGeometry(granuleSize: granuleSize, pageSize: pageSize)
            }
            return nil
        }

        init(window: ClosedRange<UInt64>, granuleSize: UInt64, pageSize: UInt64) {
            self.window = window
            self.granuleSize = granuleSize
            self.pageSize = pageSize
        }

        var liveReservations: [IOVAReservation] {
            reservations.entries.map { IOVAReservation(id: $0.value.id, range: $0.range) }
        }

        func reservation(containing iova: UInt64) -> IOVAReservation? {
            reservations.lookup(iova).map { IOVAReservation(id: $0.value.id, range: $0.range) }
        }

        mutating func reserve(size: UInt64) -> Result<IOVAReservation, TwoStepMappingError> {
            guard size > 0 else { return .failure(.emptySize) }
            guard UInt128(size) + UInt128(granuleSize) - 1 <= UInt128(UInt64.max) else {
                return .failure(.wrapsAddressSpace(start: 0, size: size))
            }
            let rounded = (size + (granuleSize - 1)) / granuleSize * granuleSize
            guard let range = reservations.lowestFree(size: rounded, alignment: granuleSize, within: window) else {
                return .failure(.outOfSpace(size: rounded))
            }
            lastID += 1
            reservations.store(range, ReservationTag(id: lastID))
            return .success(IOVAReservation(id: lastID, range: range))
        }

        mutating func release(_ reservation: IOVAReservation) -> Result<[IOTLBMessageToSend], TwoStepMappingError> {
            guard liveReservations.contains(reservation) else { return .failure(.unknownReservation(reservation)) }
            let messages = unlinkPages(in: reservation.range)
            reservations.erase(reservation.range)
            return .success(messages)
        }

        /// A request's range: non-empty, page-aligned, not wrapping, inside one reservation.
        func checkedRange(iova: UInt64, size: UInt64) -> Result<ClosedRange<UInt64>, TwoStepMappingError> {
            if size == 0 { return .failure(.emptySize) }
            if iova % pageSize != 0 { return .failure(.unaligned(iova)) }
            if size % pageSize != 0 { return .failure(.unaligned(size)) }
            if UInt128(iova) + UInt128(size) - 1 > UInt128(UInt64.max) { return .failure(.wrapsAddressSpace(start: iova, size: size)) }
            guard let reservation = reservation(containing: iova) else { return .failure(.notReserved(iova: iova)) }
            let last = iova + (size - 1)
            if last > reservation.range.upperBound { return .failure(.notReserved(iova: reservation.range.upperBound + 1)) }
            return .success(iova...last)
        }

        /// `checkedRange` after the permission, then no page of the range linked yet.
        func checkedLinkRange(iova: UInt64, size: UInt64, permission: IOMMUPermission) -> Result<ClosedRange<UInt64>, TwoStepMappingError> {
            if permission.isEmpty || permission.rawValue > 3 { return .failure(.invalidPermission(rawValue: permission.rawValue)) }
            let checked = checkedRange(iova: iova, size: size)
            guard case .success(let range) = checked else { return checked }
            if let linked = links.firstEntry(intersecting: range) {
                return .failure(.alreadyLinked(iova: max(linked.range.lowerBound, range.lowerBound)))
            }
            return checked
        }

        mutating func link(iova: UInt64, size: UInt64, userAddress: UInt64,
                           permission: IOMMUPermission) -> Result<[IOTLBMessageToSend], TwoStepMappingError> {
            let checked = checkedLinkRange(iova: iova, size: size, permission: permission)
            guard case .success(let range) = checked else { return checked.map { _ in [] } }
            if userAddress % pageSize != 0 { return .failure(.unaligned(userAddress)) }
            if UInt128(userAddress) + UInt128(size) - 1 > UInt128(UInt64.max) {
                return .failure(.wrapsAddressSpace(start: userAddress, size: size))
            }
            links.store(range, IOTLBEntry(userAddress: userAddress, permission: permission))
            return .success([.update(iova: iova, size: size, userAddress: userAddress, permission: permission)])
        }

        mutating func link(iova: UInt64, pages: [UInt64], permission: IOMMUPermission) -> Result<[IOTLBMessageToSend], TwoStepMappingError> {
            let size = UInt64(pages.count) * pageSize  // at most 16 pages of at most 4 KiB
            if let unaligned = pages.first(where: { $0 % pageSize != 0 }) { return .failure(.unaligned(unaligned)) }
            if let wrapping = pages.first(where: { UInt128($0) + UInt128(pageSize) - 1 > UInt128(UInt64.max) }) {
                return .failure(.wrapsAddressSpace(start: wrapping, size: pageSize))
            }
            let checked = checkedLinkRange(iova: iova, size: size, permission: permission)
            guard case .success = checked else { return checked.map { _ in [] } }
            // One UPDATE per run of pages whose user addresses follow each other.
            var messages: [IOTLBMessageToSend] = []
            var runStart = 0
            for index in 1...pages.count {
                if index < pages.count, UInt128(pages[index - 1]) + UInt128(pageSize) == UInt128(pages[index]) { continue }
                let first = iova + UInt64(runStart) * pageSize
                let runSize = UInt64(index - runStart) * pageSize
                links.store(first...(first + (runSize - 1)), IOTLBEntry(userAddress: pages[runStart], permission: permission))
                messages.append(.update(iova: first, size: runSize, userAddress: pages[runStart], permission: permission))
                runStart = index
            }
            return .success(messages)
        }

        mutating func unlink(iova: UInt64, size: UInt64) -> Result<[IOTLBMessageToSend], TwoStepMappingError> {
            checkedRange(iova: iova, size: size).map { unlinkPages(in: $0) }
        }

        mutating func replace(iova: UInt64, userAddress: UInt64, permission: IOMMUPermission) -> Result<[IOTLBMessageToSend], TwoStepMappingError> {
            if userAddress % pageSize != 0 { return .failure(.unaligned(userAddress)) }
            if UInt128(userAddress) + UInt128(pageSize) - 1 > UInt128(UInt64.max) {
                return .failure(.wrapsAddressSpace(start: userAddress, size: pageSize))
            }
            if permission.isEmpty || permission.rawValue > 3 { return .failure(.invalidPermission(rawValue: permission.rawValue)) }
            let checked = checkedRange(iova: iova, size: pageSize)
            guard case .success(let page) = checked else { return checked.map { _ in [] } }
            guard links.lookup(iova) != nil else { return .failure(.notLinked(iova: iova)) }
            links.store(page, IOTLBEntry(userAddress: userAddress, permission: permission))
            return .success([.invalidate(iova: iova, size: pageSize),
                             .update(iova: iova, size: pageSize, userAddress: userAddress, permission: permission)])
        }

        /// Unlinks what is linked inside `range`: one INVALIDATE per run of touching linked pieces.
        private mutating func unlinkPages(in range: ClosedRange<UInt64>) -> [IOTLBMessageToSend] {
            var runs: [ClosedRange<UInt64>] = []
            for piece in links.entries(intersecting: range).map({ $0.range.clamped(to: range) }) {
                if let last = runs.last, UInt128(last.upperBound) + 1 == UInt128(piece.lowerBound) {
                    runs[runs.count - 1] = last.lowerBound...piece.upperBound
                } else {
                    runs.append(piece)
                }
            }
            links.erase(range)
            return runs.map { .invalidate(iova: $0.lowerBound, size: $0.upperBound - $0.lowerBound + 1) }
        }

        /// The pages of the granule starting at `start` that are linked.
        func linkedPages(inGranuleAt start: UInt64) -> UInt64 {
            let granule = start...(start + (granuleSize - 1))
            var bytes: UInt64 = 0
            for entry in links.entries(intersecting: granule) {
                let piece = entry.range.clamped(to: granule)
                bytes += piece.upperBound - piece.lowerBound + 1
            }
            return bytes / pageSize
        }
    }
}
