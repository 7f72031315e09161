import PropertyBased
import Testing

@testable import IOMMUModel

/// Random reserve / link / unlink / replace / release sequences against a page-by-page
/// dictionary, compared after every step; the messages are replayed into an IOTLB, which must
/// then translate every page as the model says.
@Suite("TwoStepMapper against a page dictionary")
struct TwoStepMapperPropertyTests {
    typealias Operation = (kind: UInt8, a: UInt64, b: UInt64, c: UInt64)

    static let page: UInt64 = 4096
    static let granule: UInt64 = 64 << 10  // 16 pages: small enough to cross granules often
    static let granules: UInt64 = 24

    /// The model: reservations as a list, linked pages one by one.
    struct Model {
        let window: ClosedRange<UInt64>
        var reservations: [IOVAReservation] = []
        var pages: [UInt64: IOTLBEntry] = [:]
        var lastID: UInt64 = 0

        func reservation(containing iova: UInt64) -> IOVAReservation? {
            reservations.first { $0.range.contains(iova) }
        }

        /// The lowest granule-aligned run of `count` free granules in the window.
        mutating func reserve(granules count: UInt64) -> IOVAReservation? {
            let aligned = (UInt128(window.lowerBound) + UInt128(granule) - 1) / UInt128(granule) * UInt128(granule)
            guard aligned <= UInt128(UInt64.max) else { return nil }
            var start = UInt64(aligned)
            while UInt128(start) + UInt128(count * granule) - 1 <= UInt128(window.upperBound) {
                let range = start...(start + (count * granule - 1))
                if !reservations.contains(where: { $0.range.overlaps(range) }) {
                    lastID += 1
                    let reservation = IOVAReservation(id: lastID, range: range)
                    reservations.append(reservation)
                    return reservation
                }
                guard start <= UInt64.max - granule else { return nil }
                start += granule
            }
            return nil
        }

        /// The checks every range goes through, in the mapper's order.
        func check(iova: UInt64, size: UInt64) -> TwoStepMappingError? {
            if size == 0 { return .emptySize }
            if iova % page != 0 { return .unaligned(iova) }
            if size % page != 0 { return .unaligned(size) }
            if iova.addingReportingOverflow(size - 1).overflow { return .wrapsAddressSpace(start: iova, size: size) }
            guard let reservation = reservation(containing: iova) else { return .notReserved(iova: iova) }
            if iova + (size - 1) > reservation.range.upperBound { return .notReserved(iova: reservation.range.upperBound + 1) }
            return nil
        }

        func firstLinked(iova: UInt64, size: UInt64) -> UInt64? {
            stride(from: iova, through: iova + (size - 1), by: Int(page)).first { pages[$0] != nil }
        }
    }

    static let operations = zip(Gen.uint8(), Gen.uint64(), Gen.uint64(), Gen.uint64())
        .map { Operation($0, $1, $2, $3) }
        .array(of: 1...1500)

    @Test func randomSequencesMatchThePageDictionary() async {
        var tally: [String: Int] = [:]
        await propertyCheck(count: 16, input: zip(Gen.bool(), Self.operations)) { atTheTop, operations in
            // Half the runs use a window ending at UInt64.max.
            let size = Self.granules * Self.granule
            let window = atTheTop ? (UInt64.max - size + 1)...UInt64.max : (3 * Self.granule + 5)...(3 * Self.granule + size + 4)
            var mapper = try! TwoStepMapper(window: window, granuleSize: Self.granule, pageSize: Self.page)
            var model = Model(window: window)
            var iotlb = IOTLB()
            var released: [IOVAReservation] = []
            for (step, operation) in operations.enumerated() {
                let result = Self.apply(operation, to: &mapper, &model, released: &released)
                tally[result.label, default: 0] += 1
                guard result.agrees else {
                    Issue.record("step \(step) \(operation): \(result.label) disagrees: \(result.detail)")
                    return
                }
                for message in result.messages {
                    do { try iotlb.apply(message) } catch { Issue.record("message \(message) refused: \(error)") }
                }
                guard let problem = Self.difference(mapper, model, iotlb) else { continue }
                Issue.record("step \(step) \(operation) (\(result.label)): \(problem)")
                return
            }
        }
        for label in ["reserve", "release", "link", "link pages", "unlink", "replace", "refused"] {
            #expect(tally[label, default: 0] >= 100, "\(label): \(tally)")
        }
    }

    struct StepResult {
        var label: String
        var agrees: Bool
        var detail: String
        var messages: [IOTLBMessageToSend] = []
    }

    /// Compares a mapper call with the model's expectation; a refusal must carry the model's error.
    static func compare<T>(_ label: String, _ actual: Result<T, TwoStepMappingError>, expected: TwoStepMappingError?,
                           messages: (T) -> [IOTLBMessageToSend]) -> StepResult {
        switch (actual, expected) {
        case (.success(let value), nil): StepResult(label: label, agrees: true, detail: "", messages: messages(value))
        case (.failure(let error), let expected?) where error == expected: StepResult(label: "refused", agrees: true, detail: "")
        default: StepResult(label: label, agrees: false, detail: "\(actual) vs expected \(String(describing: expected))")
        }
    }

    static func apply(_ operation: Operation, to mapper: inout TwoStepMapper, _ model: inout Model,
                      released: inout [IOVAReservation]) -> StepResult {
        let permissions: [IOMMUPermission] = [.read, .write, .readWrite, .read, .write, .readWrite, .readWrite, []]
        let permission = permissions[Int(operation.c % 8)]
        // Mostly IOVAs inside some reservation, now and then anywhere near the window.
        let target = model.reservations.isEmpty ? nil : model.reservations[Int(operation.a % UInt64(model.reservations.count))]
        let base = target?.range.lowerBound ?? model.window.lowerBound
        let offsetPages = (operation.a >> 8) % (target.map { ($0.range.upperBound - $0.range.lowerBound + 1) / page + 2 } ?? 40)
        let iova = base &+ offsetPages &* page &+ (operation.b & 0xFF == 0 ? 1 : 0)
        let pageCount = (operation.b >> 8) % 20 + (operation.b & 0x3F00 == 0 ? 0 : 1)
        let userAddress = operation.c >> 16 & ~(page - 1) | (operation.c & 0xF0 == 0 ? 8 : 0)
        switch operation.kind % 8 {
        case 0:
            let granules = operation.a % 4 + 1
            let expected = model.reserve(granules: granules)
            let actual = Result { () throws(TwoStepMappingError) in try mapper.reserve(size: granules * granule - (operation.b % granule)) }
            switch (actual, expected) {
            case (.success(let reservation), let expected?) where reservation.range == expected.range:
                return StepResult(label: "reserve", agrees: true, detail: "")
            case (.failure(.outOfSpace), nil):
                return StepResult(label: "refused", agrees: true, detail: "")
            default:
                return StepResult(label: "reserve", agrees: false, detail: "\(actual) vs \(String(describing: expected))")
            }
        case 1:
            // Sometimes a reservation released before: it must be refused.
            let stale = operation.b % 5 == 0 && !released.isEmpty
            guard let reservation = stale ? released[Int(operation.c % UInt64(released.count))] : target else {
                return StepResult(label: "skip", agrees: true, detail: "")
            }
            let live = model.reservations.contains(reservation)
            let actual = Result { () throws(TwoStepMappingError) in try mapper.release(reservation) }
            if live {
                model.reservations.removeAll { $0 == reservation }
                model.pages = model.pages.filter { !reservation.range.contains($0.key) }
                released.append(reservation)
            }
            return compare("release", actual, expected: live ? nil : .unknownReservation(reservation)) { $0 }
        case 2, 3:
            let size = pageCount * page
            var expected = permission.isEmpty ? .invalidPermission(rawValue: 0) : model.check(iova: iova, size: size)
            if expected == nil, let linked = model.firstLinked(iova: iova, size: size) { expected = .alreadyLinked(iova: linked) }
            if expected == nil, userAddress % page != 0 { expected = .unaligned(userAddress) }
            let actual = Result { () throws(TwoStepMappingError) in
                try mapper.link(iova: iova, size: size, userAddress: userAddress, permission: permission)
            }
            if expected == nil {
                for index in 0..<pageCount {
                    model.pages[iova + index * page] = IOTLBEntry(userAddress: userAddress + index * page, permission: permission)
                }
            }
            return compare("link", actual, expected: expected) { $0 }
        case 4:
            // Pages with user addresses that sometimes continue each other.
            let pages = (0..<pageCount).map { index in (operation.c >> 20 & ~(page - 1)) + (index % 3 == 0 ? index * 2 : index) * page }
            let size = pageCount * page
            var expected = permission.isEmpty ? .invalidPermission(rawValue: 0) : model.check(iova: iova, size: size)
            if expected == nil, let linked = model.firstLinked(iova: iova, size: size) { expected = .alreadyLinked(iova: linked) }
            let actual = Result { () throws(TwoStepMappingError) in try mapper.link(iova: iova, pages: pages, permission: permission) }
            if expected == nil {
                for (index, user) in pages.enumerated() {
                    model.pages[iova + UInt64(index) * page] = IOTLBEntry(userAddress: user, permission: permission)
                }
            }
            return compare("link pages", actual, expected: expected) { $0 }
        case 5, 6:
            let size = pageCount * page
            let expected = model.check(iova: iova, size: size)
            let actual = Result { () throws(TwoStepMappingError) in try mapper.unlink(iova: iova, size: size) }
            if expected == nil {
                for index in 0..<pageCount { model.pages[iova + index * page] = nil }
            }
            return compare("unlink", actual, expected: expected) { $0 }
        default:
            var expected: TwoStepMappingError? = permission.isEmpty ? .invalidPermission(rawValue: 0) : nil
            if userAddress % page != 0 { expected = .unaligned(userAddress) }
            if expected == nil { expected = model.check(iova: iova, size: page) }
            if expected == nil, model.pages[iova] == nil { expected = .notLinked(iova: iova) }
            let actual = Result { () throws(TwoStepMappingError) in
                try mapper.replace(iova: iova, userAddress: userAddress, permission: permission)
            }
            if expected == nil { model.pages[iova] = IOTLBEntry(userAddress: userAddress, permission: permission) }
            return compare("replace", actual, expected: expected) { $0 }
        }
    }

    /// The first way the mapper, the model and the IOTLB fed with the messages disagree.
    static func difference(_ mapper: TwoStepMapper, _ model: Model, _ iotlb: IOTLB) -> String? {
        var linkedPages: [UInt64: IOTLBEntry] = [:]
        mapper.links.forEach(intersecting: 0...UInt64.max) { range, entry in
            for offset in stride(from: UInt64(0), through: range.upperBound - range.lowerBound, by: Int(page)) {
                linkedPages[range.lowerBound + offset] = entry.sliced(from: offset)
            }
        }
        if linkedPages != model.pages { return "links \(linkedPages.count) pages, model \(model.pages.count)" }
        var translatedPages: [UInt64: IOTLBEntry] = [:]
        iotlb.entries.forEach(intersecting: 0...UInt64.max) { range, entry in
            for offset in stride(from: UInt64(0), through: range.upperBound - range.lowerBound, by: Int(page)) {
                translatedPages[range.lowerBound + offset] = entry.sliced(from: offset)
            }
        }
        if translatedPages != model.pages { return "the IOTLB fed with the messages differs from the model" }
        for reservation in model.reservations {
            guard mapper.reservation(containing: reservation.range.lowerBound) == reservation else { return "reservation \(reservation)" }
            for granuleStart in stride(from: reservation.range.lowerBound, through: reservation.range.upperBound, by: Int(granule)) {
                let expected = (0..<Int(granule / page)).filter { model.pages[granuleStart + UInt64($0) * page] != nil }
                let bitmap = mapper.bitmap(ofGranuleContaining: granuleStart)
                if (bitmap?.linkedPages ?? []) != expected || (bitmap != nil && expected.isEmpty) {
                    return "bitmap of granule \(granuleStart): \(String(describing: bitmap?.linkedPages)) vs \(expected)"
                }
            }
        }
        if mapper.reservationCount != model.reservations.count { return "\(mapper.reservationCount) reservations" }
        return nil
    }
}
