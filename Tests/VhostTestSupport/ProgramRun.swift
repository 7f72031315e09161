import Foundation

/// Runs `program` with `arguments` to its end: exit status and everything it printed (stdout and
/// stderr together). The one copy the test targets share (qemu-io, qemu-img, the daemon's
/// command line, losetup and mount).
public func runProgram(_ program: String, _ arguments: [String]) throws -> (status: Int32, output: String) {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: program)
    process.arguments = arguments
    let output = Pipe()
    process.standardOutput = output
    process.standardError = output
    try process.run()
    let data = output.fileHandleForReading.readDataToEndOfFile()
    process.waitUntilExit()
    return (process.terminationStatus, String(decoding: data, as: UTF8.self))
}
