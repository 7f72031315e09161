import Foundation

/// Renders a comparison for docs/benchmarks.md: a markdown section (between markers, so the
/// rest of the file stays) and an SVG bar chart of the ratios.
public struct ComparisonDocument: Sendable {
    public static let beginMarker = "<!-- compare:begin (written by vhost-user-blk-bench compare) -->"
    public static let endMarker = "<!-- compare:end -->"

    public var result: BackEndComparison
    /// The SVG's file name, as the markdown links it.
    public var plotName: String

    public init(result: BackEndComparison, plotName: String) {
        self.result = result
        self.plotName = plotName
    }

    public var markdown: String {
        func thousands(_ value: Double) -> String { String(format: "%.1fk", value / 1000) }
        func micro(_ value: Double) -> String { String(format: "%.0f", value) }
        func microsPerRequest(_ seconds: Double) -> String { seconds > 0 ? String(format: "%.1f", seconds * 1e6) : "–" }
        var lines = [
            Self.beginMarker,
            "## Against qemu-storage-daemon",
            "",
            "Measured on: \(result.machine).",
            "",
            "Rerun: `\(result.command)`",
            "",
            "Same front end for both: `vhost-user-blk-bench` (eventfd completions, EVENT_IDX, ring size 128), or for the "
                + "`libblkio:` rows `qemu-img bench` through QEMU's libblkio driver (its defaults: one queue of 256 entries; "
                + "sequential requests, 100 000 per second of run time; it reports wall time only, hence no p99);",
            "each run on a freshly started back end with 4 queues; the two back ends alternate, "
                + "\(result.repetitions) runs of \(String(format: "%g", result.seconds)) s each; figures are medians. "
                + "The image is \("\(result.imageBytes >> 20) MiB") on tmpfs "
                + "(page cache), filled with non-zero bytes; the null disk is ours `--null-size`, "
                + "q-s-d `null-co,read-zeroes=off`.",
            "",
            "| case | ours IOPS | q-s-d IOPS | ours ÷ q-s-d | ours p99 µs | q-s-d p99 µs | ours CPU µs/req | q-s-d CPU µs/req |",
            "|---|---:|---:|---:|---:|---:|---:|---:|",
        ]
        for row in result.rows where !row.comparisonCase.onDisk {
            let latencies = row.comparisonCase.frontEnd == .bench
            lines.append("| \(row.comparisonCase.name) | \(thousands(row.medianIOPS(.ours))) | \(thousands(row.medianIOPS(.qemuStorageDaemon)))"
                + " | **\(String(format: "%.2f", row.ratio))×**"
                + " | \(latencies ? micro(row.medianP99(.ours)) : "–") | \(latencies ? micro(row.medianP99(.qemuStorageDaemon)) : "–")"
                + " | \(microsPerRequest(row.medianCPUPerRequest(.ours))) | \(microsPerRequest(row.medianCPUPerRequest(.qemuStorageDaemon))) |")
        }
        // qcow2 against raw, both ours: what the format costs on allocated clusters.
        let formatCost = result.rows.compactMap { row -> String? in
            guard row.comparisonCase.image == .qcow2Allocated,
                  let raw = result.rows.first(where: { $0.comparisonCase.image == .raw && !$0.comparisonCase.onDisk
                      && !$0.comparisonCase.nullDisk && $0.comparisonCase.frontEnd == .bench
                      && $0.comparisonCase.workload == row.comparisonCase.workload }),
                  raw.medianIOPS(.ours) > 0 else { return nil }
            return "\(row.comparisonCase.name) \(String(format: "%.2f", row.medianIOPS(.ours) / raw.medianIOPS(.ours)))×"
        }
        if !formatCost.isEmpty {
            lines += [
                "",
                "The `qcow2:` rows serve the same bytes as a qcow2 image (`qemu-img convert -O qcow2`, 64 KiB clusters, every "
                    + "cluster allocated), ours `--format=qcow2`, q-s-d its qcow2 driver over a file node, both with their "
                    + "default caches; the `qcow2 allocating:` rows write a fixed number of requests into a fresh 64 GiB "
                    + "image (`qemu-img create`), so nearly every write allocates a cluster. Ours on qcow2 against ours on "
                    + "the raw image, same workload: " + formatCost.joined(separator: ", ") + ".",
            ]
        }
        let diskRows = result.rows.filter(\.comparisonCase.onDisk)
        if !diskRows.isEmpty {
            lines += [
                "",
                "### On the machine's disk, O_DIRECT",
                "",
                "The `disk:` rows: a \(result.diskImageBytes >> 30) GiB image on the machine's disk (not tmpfs), filled with "
                    + "non-zero bytes; ours `--cache=none` (io_uring, its default), q-s-d `cache.direct=on,aio=io_uring`, "
                    + "and fio on the same file (`--ioengine=io_uring --direct=1`, the same block size, the depth per job, "
                    + "one job per queue) as the storage's own figure. The page cache is dropped before every run; "
                    + "the three alternate as above. The `disk qcow2 allocating:` row writes a fixed number of requests "
                    + "into a fresh 64 GiB qcow2 image there (ours `--format=qcow2 --cache=none`, q-s-d its qcow2 driver "
                    + "over that file node); fio has no qcow2.",
                "",
                "| case | ours IOPS | q-s-d IOPS | fio IOPS | ours ÷ q-s-d | ours ÷ fio | ours p50 / p99 µs | q-s-d p50 / p99 µs | fio p50 / p99 µs |",
                "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
            ]
            for row in diskRows {
                let hasFio = !row.referenceReports.isEmpty
                lines.append("| \(row.comparisonCase.name) | \(thousands(row.medianIOPS(.ours))) | \(thousands(row.medianIOPS(.qemuStorageDaemon)))"
                    + " | \(hasFio ? thousands(row.medianReferenceIOPS) : "–") | **\(String(format: "%.2f", row.ratio))×**"
                    + " | \(hasFio ? "**\(String(format: "%.2f", row.referenceRatio))×**" : "–")"
                    + " | \(micro(row.medianP50(.ours))) / \(micro(row.medianP99(.ours)))"
                    + " | \(micro(row.medianP50(.qemuStorageDaemon))) / \(micro(row.medianP99(.qemuStorageDaemon)))"
                    + " | \(hasFio ? "\(micro(row.medianReferenceP50)) / \(micro(row.medianReferenceP99))" : "–") |")
            }
        }
        let ours = result.medianIdleResidentBytes(.ours) / 1_048_576
        let theirs = result.medianIdleResidentBytes(.qemuStorageDaemon) / 1_048_576
        lines += [
            "",
            String(format: "Idle RSS (VmRSS 0.2 s after the socket appears, median of every start): ours %.1f MiB, "
                   + "qemu-storage-daemon %.1f MiB.", ours, theirs),
            "",
            "Every sample (IOPS per run, in run order):",
            "",
        ]
        for row in result.rows {
            for backEnd in ComparedBackEnd.allCases {
                let samples = row.reports(backEnd).map { thousands($0.iops) }.joined(separator: ", ")
                lines.append("- \(row.comparisonCase.name), \(backEnd.rawValue): \(samples)")
            }
            if !row.referenceReports.isEmpty {
                lines.append("- \(row.comparisonCase.name), fio: " + row.referenceReports.map { thousands($0.iops) }.joined(separator: ", "))
            }
        }
        lines += ["", "![ours ÷ qemu-storage-daemon, median IOPS per case](\(plotName))", Self.endMarker]
        return lines.joined(separator: "\n")
    }

    /// `document` with the section between the markers replaced (or appended when absent).
    public func merged(into document: String) -> String {
        if let begin = document.range(of: Self.beginMarker), let end = document.range(of: Self.endMarker),
           begin.lowerBound < end.upperBound {
            return String(document[..<begin.lowerBound]) + markdown + String(document[end.upperBound...])
        }
        return document + (document.hasSuffix("\n") ? "\n" : "\n\n") + markdown + "\n"
    }

    /// Horizontal bars, one per case: our median IOPS over qemu-storage-daemon's, with a line
    /// at 1× and the absolute medians beside each bar.
    public var svg: String {
        let rowHeight = 34
        let left = 250
        let barWidth = 380
        let width = left + barWidth + 230
        let top = 48
        let height = top + rowHeight * result.rows.count + 40
        let scaleMaximum = max(result.rows.map(\.ratio).filter(\.isFinite).max() ?? 1, 1.5) * 1.1
        // A ratio from a failed run (0, or not finite) draws as an empty bar instead of trapping.
        func x(_ ratio: Double) -> Int {
            let width = Double(barWidth) * ratio / scaleMaximum
            return left + (width.isFinite ? Int(max(0, min(width, Double(barWidth)))) : 0)
        }
        func escaped(_ text: String) -> String {
            text.replacingOccurrences(of: "&", with: "&amp;").replacingOccurrences(of: "<", with: "&lt;")
        }
        var parts = [
            "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"\(width)\" height=\"\(height)\" font-family=\"sans-serif\" font-size=\"13\">",
            "<rect width=\"100%\" height=\"100%\" fill=\"white\"/>",
            "<text x=\"10\" y=\"22\" font-size=\"15\" font-weight=\"bold\">Swift vhost-user-blk ÷ qemu-storage-daemon: median IOPS (higher is better)</text>",
        ]
        for (index, row) in result.rows.enumerated() {
            let y = top + index * rowHeight
            let ratio = row.ratio
            let color = ratio >= 1 ? "#2e8b57" : "#d2691e"
            parts.append("<text x=\"\(left - 8)\" y=\"\(y + 20)\" text-anchor=\"end\">\(escaped(row.comparisonCase.name))</text>")
            parts.append("<rect x=\"\(left)\" y=\"\(y + 6)\" width=\"\(max(x(ratio) - left, 1))\" height=\"20\" fill=\"\(color)\"/>")
            parts.append("<text x=\"\(x(ratio) + 6)\" y=\"\(y + 20)\">"
                + String(format: "%.2f× (%.0fk vs %.0fk)", ratio, row.medianIOPS(.ours) / 1000, row.medianIOPS(.qemuStorageDaemon) / 1000)
                + "</text>")
        }
        let one = x(1)
        parts.append("<line x1=\"\(one)\" y1=\"\(top)\" x2=\"\(one)\" y2=\"\(top + rowHeight * result.rows.count)\" stroke=\"black\" stroke-dasharray=\"4,3\"/>")
        parts.append("<text x=\"\(one)\" y=\"\(top + rowHeight * result.rows.count + 16)\" text-anchor=\"middle\">1× (equal)</text>")
        parts.append("</svg>")
        return parts.joined(separator: "\n") + "\n"
    }
}
