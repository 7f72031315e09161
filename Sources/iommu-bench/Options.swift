/// The command line: `iommu-bench [--json] [--repetitions N] [--quick]`.
struct Options {
    /// Print JSON instead of tables.
    var json = false
    /// Timed runs per figure; the median is reported.
    var repetitions = 7
    /// 10 and 1k mappings, fewer translations: a smoke run, not figures to quote.
    var quick = false

    static let usage = """
        usage: iommu-bench [--json] [--repetitions N] [--quick]
          Build with optimizations: swift run -c release iommu-bench
          --json           print the figures as JSON
          --repetitions N  timed runs per figure, median reported (default 7)
          --quick          10 and 1k mappings only, fewer operations (smoke test)
        """

    /// Parses `arguments` (without the program name); nil with a message if they are wrong.
    static func parse(_ arguments: [String]) -> Result<Options, OptionsError> {
        var options = Options()
        var remaining = arguments[...]
        while let argument = remaining.popFirst() {
            switch argument {
            case "--json": options.json = true
            case "--quick": options.quick = true
            case "--repetitions":
                guard let value = remaining.popFirst().flatMap({ Int($0) }), (1...1000).contains(value) else {
                    return .failure(OptionsError(message: "--repetitions needs a number from 1 to 1000"))
                }
                options.repetitions = value
            case "--help", "-h": return .failure(OptionsError(message: ""))
            default: return .failure(OptionsError(message: "unknown argument \(argument)"))
            }
        }
        return .success(options)
    }
}
