/// Prints a finished benchmark as tables with ratios and the issue's targets, or as JSON.
struct Report {
    let benchmark: Benchmark
    let machine: Machine
    let command: String

    /// The command that reproduces the figures.
    static let canonicalCommand = "swift run -c release iommu-bench"

    func measurement(_ operation: String, _ structure: String, _ mappings: Int,
                     _ pattern: Workload.Pattern? = nil) -> Measurement? {
        benchmark.measurements.first {
            $0.operation == operation && $0.structure == structure && $0.mappings == mappings && $0.pattern == pattern
        }
    }

    /// Structure names in the order they were measured.
    var structures: [String] {
        var names: [String] = []
        for measurement in benchmark.measurements where !names.contains(measurement.structure) {
            names.append(measurement.structure)
        }
        return names
    }

    var mappingCounts: [Int] {
        var counts: [Int] = []
        for measurement in benchmark.measurements where measurement.operation != "build"
            && !counts.contains(measurement.mappings) {
            counts.append(measurement.mappings)
        }
        return counts
    }

    // MARK: Text

    func text() -> String {
        var lines: [String] = []
        let options = benchmark.options
        lines.append("iommu-bench: IOMMU model translate / update / invalidate / build costs")
        lines.append("command:  \(command)   (reproduce with: \(Self.canonicalCommand))")
        lines.append("machine:  \(machine.cpu), \(machine.onlineCPUs) online CPUs, \(machine.kernel)")
        lines.append("load:     \(machine.loadAverage) (1/5/15 min, at the start; the machine is shared)")
        #if DEBUG
        lines.append("WARNING:  debug build: figures are meaningless; use -c release")
        #endif
        lines.append("method:   median of \(options.repetitions) timed runs per figure [min–max], CLOCK_MONOTONIC;")
        lines.append("          each mapping is one 4 KiB page, IOVAs every 8 KiB, user pages shuffled;")
        lines.append("          translate = one 4 KiB read buffer starting at a mapping, \(benchmark.translations) per run")
        lines.append("")
        lines.append("translate, ns per 4 KiB buffer (median [min–max])")
        let names = structures
        var header = pad("mappings", 10) + pad("pattern", 12)
        for name in names { header += pad(name, 22) }
        lines.append(header + ratioHeader(names))
        for count in mappingCounts {
            for pattern in Workload.Pattern.allCases {
                var row = pad(String(count), 10) + pad(pattern.rawValue, 12)
                for name in names {
                    row += pad(measurement("translate", name, count, pattern).map(cell) ?? "-", 22)
                }
                lines.append(row + ratios(count, pattern, names))
            }
        }
        for operation in ["invalidate", "update"] {
            lines.append("")
            lines.append("\(operation), ns per 4 KiB mapping (median [min–max])")
            var header = pad("mappings", 10)
            for name in names { header += pad(name, 22) }
            lines.append(header)
            for count in mappingCounts {
                var row = pad(String(count), 10)
                for name in names { row += pad(measurement(operation, name, count).map(cell) ?? "-", 22) }
                lines.append(row)
            }
        }
        let builds = benchmark.measurements.filter { $0.operation == "build" }
        if !builds.isEmpty {
            lines.append("")
            lines.append("build \(Benchmark.buildSize) mappings from empty, ms (median [min–max])")
            for build in builds { lines.append(pad(build.structure, 22) + cell(build)) }
        }
        lines.append("")
        lines.append(contentsOf: summary())
        lines.append("checksum \(benchmark.checksum), unexpected results \(benchmark.failures)")
        return lines.joined(separator: "\n")
    }

    /// Like-with-like ratios: the two uncached structures, and the two cached data paths.
    static let ratioPairs = [(RangeStoreStructure.name, PageTableStructure.name),
                             (CachedRangeStoreStructure.name, CachedMirrorStructure.name)]

    func ratioHeader(_ names: [String]) -> String {
        Self.ratioPairs.map { pad("\($0.0) / \($0.1)", 38) }.joined()
    }

    func ratios(_ count: Int, _ pattern: Workload.Pattern, _ names: [String]) -> String {
        Self.ratioPairs.map { pair in
            guard let numerator = measurement("translate", pair.0, count, pattern),
                  let denominator = measurement("translate", pair.1, count, pattern) else { return pad("-", 38) }
            return pad(fixed(numerator.statistics.median / denominator.statistics.median, 2) + "x", 38)
        }.joined()
    }

    /// The issue's targets, checked against the medians, and the data path's choice.
    func summary() -> [String] {
        var lines = ["targets (issue 3), medians at 100k mappings unless said otherwise:"]
        let count = 100_000
        func median(_ name: String, _ pattern: Workload.Pattern) -> Double? {
            measurement("translate", name, count, pattern)?.statistics.median
        }
        func verdict(_ value: Double, _ limit: Double) -> String { value <= limit ? "met" : "NOT met" }
        for name in [PageTableStructure.name, CachedMirrorStructure.name, RangeStoreStructure.name,
                     CachedRangeStoreStructure.name] {
            guard let random = median(name, .random), let sequential = median(name, .sequential) else { continue }
            lines.append("  translate <= 20 ns, \(pad(name + ":", 21)) random \(fixed(random, 1)) ns (\(verdict(random, 20))), "
                         + "sequential \(fixed(sequential, 1)) ns (\(verdict(sequential, 20)))")
        }
        for name in [CachedRangeStoreStructure.name, CachedMirrorStructure.name] {
            guard let hit = median(name, .repeated) else { continue }
            lines.append("  translate <= 5 ns on a cache hit, \(pad(name + ":", 21)) \(fixed(hit, 1)) ns (\(verdict(hit, 5)))")
        }
        for build in benchmark.measurements where build.operation == "build" {
            let value = build.statistics.median
            lines.append("  1M mappings built in < 1 s, \(pad(build.structure + ":", 21)) \(fixed(value, 0)) ms "
                         + "(\(value < 1000 ? "met" : "NOT met"))")
        }
        // The data path: of the complete paths (the page table alone lacks unaligned entries),
        // the one with the lowest mean of the three patterns' medians at 100k mappings.
        let paths = [RangeStoreStructure.name, CachedRangeStoreStructure.name, MirrorStructure.name,
                     CachedMirrorStructure.name]
        let ranked = paths.compactMap { name -> (name: String, mean: Double, worst: Double)? in
            let medians = Workload.Pattern.allCases.compactMap { median(name, $0) }
            guard medians.count == Workload.Pattern.allCases.count else { return nil }
            return (name, medians.reduce(0, +) / Double(medians.count), medians.max() ?? 0)
        }.sorted { $0.mean < $1.mean }
        if let best = ranked.first {
            lines.append("data path: \(best.name) (mean of the random / sequential / repeated medians at 100k, ns: "
                         + ranked.map { "\($0.name) \(fixed($0.mean, 1)), worst \(fixed($0.worst, 1))" }
                             .joined(separator: "; ") + ")")
        }
        return lines
    }

    func cell(_ measurement: Measurement) -> String {
        let statistics = measurement.statistics
        let digits = measurement.unit == "ms" ? 0 : 1
        return "\(fixed(statistics.median, digits)) [\(fixed(statistics.minimum, digits))–\(fixed(statistics.maximum, digits))]"
    }

    // MARK: JSON

    func json() -> String {
        var items: [String] = []
        for measurement in benchmark.measurements {
            var fields = ["\"operation\": \(quoted(measurement.operation))",
                          "\"structure\": \(quoted(measurement.structure))",
                          "\"mappings\": \(measurement.mappings)"]
            if let pattern = measurement.pattern { fields.append("\"pattern\": \(quoted(pattern.rawValue))") }
            fields.append("\"unit\": \(quoted(measurement.unit))")
            fields.append("\"median\": \(fixed(measurement.statistics.median, 2))")
            fields.append("\"min\": \(fixed(measurement.statistics.minimum, 2))")
            fields.append("\"max\": \(fixed(measurement.statistics.maximum, 2))")
            items.append("    {" + fields.joined(separator: ", ") + "}")
        }
        let debug: Bool
        #if DEBUG
        debug = true
        #else
        debug = false
        #endif
        return """
            {
              "command": \(quoted(command)),
              "reproduce": \(quoted(Self.canonicalCommand)),
              "machine": {"cpu": \(quoted(machine.cpu)), "onlineCPUs": \(machine.onlineCPUs), \
            "kernel": \(quoted(machine.kernel)), "loadAverage": \(quoted(machine.loadAverage))},
              "debugBuild": \(debug),
              "repetitions": \(benchmark.options.repetitions),
              "translationsPerRun": \(benchmark.translations),
              "checksum": \(benchmark.checksum),
              "unexpectedResults": \(benchmark.failures),
              "measurements": [
            \(items.joined(separator: ",\n"))
              ]
            }
            """
    }

    func quoted(_ text: String) -> String {
        var result = "\""
        for scalar in text.unicodeScalars {
            switch scalar {
            case "\"": result += "\\\""
            case "\\": result += "\\\\"
            case _ where scalar.value < 0x20: result += "\\u" + String(repeating: "0", count: 4 - String(scalar.value, radix: 16).count) + String(scalar.value, radix: 16)
            default: result.unicodeScalars.append(scalar)
            }
        }
        return result + "\""
    }
}

/// `value` with `digits` decimals (0–3), without Foundation.
func fixed(_ value: Double, _ digits: Int) -> String {
    guard value.isFinite else { return "\(value)" }
    var scale = 1.0
    for _ in 0..<digits { scale *= 10 }
    let scaled = (abs(value) * scale).rounded()
    guard scaled < 9e18 else { return "\(value)" }
    let whole = UInt64(scaled)
    let sign = value < 0 && whole != 0 ? "-" : ""
    guard digits > 0 else { return sign + String(whole) }
    let divisor = UInt64(scale)
    let fraction = String(whole % divisor)
    return sign + String(whole / divisor) + "." + String(repeating: "0", count: digits - fraction.count) + fraction
}

/// `text` padded with spaces to `width` characters.
func pad(_ text: String, _ width: Int) -> String {
    text.count >= width ? text + " " : text + String(repeating: " ", count: width - text.count)
}
