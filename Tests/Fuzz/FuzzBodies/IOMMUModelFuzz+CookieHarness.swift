@testable import IOMMUModel

extension IOMMUModelFuzz {
    /// An `MmapCookieTable` (page size and window from the input, an invalid page size now and
    /// then): dynamic and fixed exports of four objects with various attributes, fixed areas,
    /// lookups, revocations (one cookie, all of an object, forged cookies) and ends of
    /// quarantine.
    ///
    /// Checked against a `CookieReference` after every request: the same cookie or error, the
    /// same lookup answer, the same revoked cookies; the same number of live exports, the same
    /// quarantine, and the same cookie for the request's object and attributes.
    struct CookieHarness {
        private var table: MmapCookieTable
        private var reference: CookieReference
        /// Every cookie handed out, to revoke and end quarantines with.
        private var seen: [MmapCookie] = []

        /// Configuration: a page-size byte (1 B...64 KiB, or with the top bit its low bits as a
        /// raw size, often invalid), the window's start (an address) and its size (1...64 pages
        /// and up to 255 bytes more). Nil when the page size is invalid, after checking that
        /// the table refused it.
        init?(_ operands: inout Operands) {
            let shape = operands.byte()
            let pageSize = shape & 0x80 == 0 ? UInt64(1) << UInt64(shape % 17) : UInt64(shape & 0x7F)
            let start = operands.address()
            let length = UInt128(operands.byte() % 64 + 1) * UInt128(pageSize) + UInt128(operands.byte())
            let window = start...UInt64(min(UInt128(start) + max(length, 1) - 1, UInt128(UInt64.max)))
            do throws(MmapCookieError) {
                table = try MmapCookieTable(pageSize: pageSize, window: window)
                require(pageSize.nonzeroBitCount == 1, "a table with page size \(pageSize) made")
            } catch {
                require(pageSize.nonzeroBitCount != 1 && error == .invalidPageSize(pageSize), "page size \(pageSize) refused: \(error)")
                return nil
            }
            reference = CookieReference(pageSize: pageSize, window: window)
        }

        var pageSize: UInt64 { reference.pageSize }

        mutating func export(_ operands: inout Operands) {
            let key = exportKey(&operands)
            let expected = reference.export(key)
            let actual = Result { () throws(MmapCookieError) in try table.export(key.object, key.attributes) }
            require(actual == expected, "export(\(key)) gave \(actual), the reference \(expected)")
            if case .success(let cookie) = actual { seen.append(cookie) }
            check(key, "export(\(key))")
        }

        mutating func exportAtFixedOffset(_ operands: inout Operands) {
            let key = exportKey(&operands)
            let offset = offset(&operands)
            let expected = reference.export(key, at: offset)
            let actual = Result { () throws(MmapCookieError) in try table.export(key.object, key.attributes, atFixedOffset: offset) }
            require(actual == expected, "export(\(key), atFixedOffset: \(hex(offset))) gave \(actual), the reference \(expected)")
            if case .success(let cookie) = actual { seen.append(cookie) }
            check(key, "export(\(key), atFixedOffset: \(hex(offset)))")
        }

        /// A fixed area of 1...8 pages, its end sometimes a byte short of a page boundary.
        mutating func reserveFixedArea(_ operands: inout Operands) {
            let start = offset(&operands)
            let shape = operands.byte()
            let end = start &+ UInt64(shape % 8 + 1) &* pageSize &- (shape & 0x80 == 0 ? 1 : 0)
            let range = min(start, end)...max(start, end)
            let expected = reference.reserveFixedArea(range)
            var error: MmapCookieError?
            do throws(MmapCookieError) { try table.reserveFixedArea(range) } catch let refusal { error = refusal }
            require(error == expected, "reserveFixedArea(\(describe(range))) threw \(String(describing: error)), the reference \(String(describing: expected))")
            check(nil, "reserveFixedArea(\(describe(range)))")
        }

        mutating func lookup(_ operands: inout Operands) {
            let offset = offset(&operands)
            let length = operands.size(from: offset)
            let found = table.lookup(offset: offset, length: length)
            let expected = reference.lookup(offset: offset, length: length)
            require(found == expected, "lookup(offset: \(hex(offset)), length: \(hex(length))) found \(String(describing: found)), the reference \(String(describing: expected))")
        }

        mutating func revoke(_ operands: inout Operands) {
            guard let cookie = cookie(&operands) else { return }
            let expected = reference.revoke(cookie)
            var error: MmapCookieError?
            do throws(MmapCookieError) { try table.revoke(cookie) } catch let refusal { error = refusal }
            require(error == expected, "revoke(\(cookie)) threw \(String(describing: error)), the reference \(String(describing: expected))")
            check(nil, "revoke(\(cookie))")
        }

        mutating func revokeAll(_ operands: inout Operands) {
            let object = ExportedObjectID(rawValue: UInt64(operands.byte() % 4))
            let revoked = table.revokeAll(of: object)
            let expected = reference.revokeAll(of: object)
            require(revoked == expected, "revokeAll(of: \(object)) revoked \(revoked), the reference \(expected)")
            check(nil, "revokeAll(of: \(object))")
        }

        mutating func endQuarantine(_ operands: inout Operands) {
            guard let cookie = cookie(&operands) else { return }
            let expected = reference.endQuarantine(cookie)
            var error: MmapCookieError?
            do throws(MmapCookieError) { try table.endQuarantine(cookie) } catch let refusal { error = refusal }
            require(error == expected, "endQuarantine(\(cookie)) threw \(String(describing: error)), the reference \(String(describing: expected))")
            check(nil, "endQuarantine(\(cookie))")
        }

        // MARK: Operands

        /// One of four objects with a size (0, 1, about a page, three pages, the largest that
        /// rounds, `UInt64.max`, or any), read-only or not, one of the caching hints.
        private func exportKey(_ operands: inout Operands) -> ExportKey {
            let shape = operands.byte()
            let size: UInt64 = switch shape >> 3 & 7 {
            case 0: 0
            case 1: 1
            case 2: pageSize
            case 3: pageSize + 1
            case 4: 3 * pageSize
            case 5: .max
            case 6: UInt64.max - (pageSize - 1)
            default: operands.size(from: 0)
            }
            let caching: CachingHint = [.cached, .writeCombining, .uncached][Int(shape >> 6) % 3]
            return ExportKey(object: ExportedObjectID(rawValue: UInt64(shape % 4)),
                             attributes: ExportAttributes(size: size, readOnly: shape & 4 != 0, caching: caching))
        }

        /// Mostly some pages into the window (sometimes a byte off); otherwise any address.
        private func offset(_ operands: inout Operands) -> UInt64 {
            let selector = operands.byte()
            guard selector & 3 != 0 else { return operands.address() }
            let base = reference.window.lowerBound & ~(pageSize - 1)
            return base &+ UInt64(operands.byte() % 72) &* pageSize &+ (selector & 0x10 != 0 ? 1 : 0)
        }

        /// A cookie handed out before, sometimes forged (another serial or offset); nil when
        /// none was.
        private func cookie(_ operands: inout Operands) -> MmapCookie? {
            let selector = operands.byte()
            let index = Int(operands.byte())
            guard !seen.isEmpty else { return nil }
            let original = seen[index % seen.count]
            switch selector % 8 {
            case 0: return MmapCookie(offset: original.offset, length: original.length, serial: original.serial &+ 1)
            case 1: return MmapCookie(offset: original.offset &+ pageSize, length: original.length, serial: original.serial)
            default: return original
            }
        }

        // MARK: Checks

        private func check(_ key: ExportKey?, _ what: @autoclosure () -> String) {
            require(table.exportCount == reference.liveCount, "\(what()): \(table.exportCount) exports, the reference \(reference.liveCount)")
            require(table.quarantined == reference.quarantined,
                    "\(what()): quarantined \(table.quarantined), the reference \(reference.quarantined)")
            if let key {
                require(table.cookie(for: key.object, key.attributes) == reference.live(key),
                        "\(what()): the cookie of the key is \(String(describing: table.cookie(for: key.object, key.attributes))), "
                            + "the reference's \(String(describing: reference.live(key)))")
            }
        }
    }
}
