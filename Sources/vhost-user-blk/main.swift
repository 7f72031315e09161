#if canImport(Glibc)
import Glibc
#endif

/// EX_USAGE from sysexits.h, what swift-argument-parser used for a refused command line.
let usageExitStatus: Int32 = 64

do {
    let options = try DaemonOptions.parse(Array(CommandLine.arguments.dropFirst()))
    if options.help {
        print(DaemonOptions.usage)
        exit(0)
    }
    exit(VhostUserBlkDaemon(options: options).run())
} catch {
    let text = Array("Error: \(error.message)\n\(DaemonOptions.usage)\n".utf8)
    _ = text.withUnsafeBytes { write(STDERR_FILENO, $0.baseAddress, $0.count) }
    exit(usageExitStatus)
}
