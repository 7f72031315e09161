import Glibc

// iommu-bench: what translating, updating, invalidating and building cost in the IOMMU model's
// structures. Build with optimizations: swift run -c release iommu-bench [--json]

let arguments = Array(CommandLine.arguments.dropFirst())
switch Options.parse(arguments) {
case .failure(let error):
    if !error.message.isEmpty { print("iommu-bench: \(error.message)") }
    print(Options.usage)
    exit(error.message.isEmpty ? 0 : 2)
case .success(let options):
    let machine = Machine.current()
    var benchmark = Benchmark(options: options)
    benchmark.run()
    let command = (["iommu-bench"] + arguments).joined(separator: " ")
    let report = Report(benchmark: benchmark, machine: machine, command: command)
    print(options.json ? report.json() : report.text())
    exit(benchmark.failures == 0 ? 0 : 1)
}
