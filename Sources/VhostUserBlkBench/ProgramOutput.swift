import Foundation

/// Runs a program to its end and returns its exit status and its output (stdout and stderr
/// together): the external tools the bench drives (qemu-img bench, fio).
func runCapturingOutput(_ executable: String, _ arguments: [String]) throws(BenchError) -> (status: Int32, output: Data) {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: executable)
    process.arguments = arguments
    let pipe = Pipe()
    process.standardOutput = pipe
    process.standardError = pipe
    do {
        try process.run()
    } catch {
        throw .deviceUnsuitable("cannot start \(executable): \(error)")
    }
    let output = pipe.fileHandleForReading.readDataToEndOfFile()
    process.waitUntilExit()
    return (process.terminationStatus, output)
}
