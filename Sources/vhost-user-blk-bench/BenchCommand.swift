import ArgumentParser

@main
struct BenchCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "vhost-user-blk-bench",
        abstract: "A vhost-user-blk front end in Swift: workloads and benchmarks against any back end's socket.",
        subcommands: [RunCommand.self, CompareCommand.self],
        defaultSubcommand: RunCommand.self)
}
