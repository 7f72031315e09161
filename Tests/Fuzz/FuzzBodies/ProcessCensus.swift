#if canImport(Glibc)
import Glibc
#endif
import VhostSystem

/// What the process holds that a connection could leak: open descriptors, mappings of memfds
/// (guest RAM, inflight areas) and threads (queue workers).
struct ProcessCensus: Equatable, CustomStringConvertible {
    let descriptors: Int
    let memfdMappings: Int
    let threads: Int

    static func take() -> ProcessCensus {
        ProcessCensus(descriptors: OwnedFileDescriptor.openDescriptorCount(),
                      memfdMappings: countLines(of: "/proc/self/maps", containing: "/memfd:"),
                      threads: countEntries(of: "/proc/self/task"))
    }

    var description: String { "\(descriptors) fds, \(memfdMappings) memfd mappings, \(threads) threads" }

    private static func countEntries(of path: String) -> Int {
        guard let directory = opendir(path) else { return -1 }
        defer { closedir(directory) }
        var count = 0
        while let entry = readdir(directory) {
            if entry.pointee.d_name.0 != UInt8(ascii: ".") { count += 1 }
        }
        return count
    }

    private static func countLines(of path: String, containing needle: String) -> Int {
        guard let file = fopen(path, "r") else { return -1 }
        defer { fclose(file) }
        var line: UnsafeMutablePointer<CChar>?
        var capacity = 0
        defer { free(line) }
        var count = 0
        while getline(&line, &capacity, file) >= 0 {
            if let line, strstr(line, needle) != nil { count += 1 }
        }
        return count
    }
}
