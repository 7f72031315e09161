#if canImport(Glibc)
import Glibc
#endif
import Foundation
import VhostSystem

/// Leak checks that only look at what a test can own, so they hold while other suites of the
/// test process open and close descriptors in parallel.
///
/// A descriptor the front end sends is a new reference to the *same open file* as the sender's
/// copy. `/proc/self/fdinfo` names that file: `mnt_id` and `ino` (unique for memfds and
/// sockets), plus `eventfd-id` for eventfds, which all share one anonymous inode, and the
/// access mode for the two ends of a pipe, which share one inode. After a
/// connection is gone, each file the test sent must be held by exactly one descriptor (the
/// test's own) and mapped only by the test's own mappings; no socket bound to the test's path
/// may be open besides the listener; no queue worker thread ("vq<N>") may be left.
enum DescriptorCensus {
    /// Which open file a descriptor refers to.
    struct FileIdentity: Hashable, CustomStringConvertible {
        var mountID: String
        var inode: String
        var eventfdID: String?
        /// O_RDONLY / O_WRONLY / O_RDWR: tells the two ends of a pipe (one inode) apart.
        var accessMode: Int
        var description: String { "mnt \(mountID) ino \(inode)" + (eventfdID.map { " eventfd \($0)" } ?? "") }
    }

    static func identity(of fd: Int32, process: String = "self") -> FileIdentity? {
        guard let text = readWholeFile("/proc/\(process)/fdinfo/\(fd)") else { return nil }
        var fields: [String: String] = [:]
        for line in text.split(separator: "\n") {
            guard let colon = line.firstIndex(of: ":") else { continue }
            fields[String(line[..<colon])] = line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces)
        }
        guard let mount = fields["mnt_id"], let inode = fields["ino"],
              let flags = fields["flags"].flatMap({ Int($0, radix: 8) }) else { return nil }
        return FileIdentity(mountID: mount, inode: inode, eventfdID: fields["eventfd-id"], accessMode: flags & 3)
    }

    /// Every open descriptor number of `process`.
    static func descriptors(process: String = "self") -> [Int32] {
        guard let names = try? FileManager.default.contentsOfDirectory(atPath: "/proc/\(process)/fd") else { return [] }
        return names.compactMap { Int32($0) }
    }

    /// How many descriptors of `process` refer to the file `identity`.
    static func holders(of identity: FileIdentity, process: String = "self") -> Int {
        descriptors(process: process).filter { self.identity(of: $0, process: process) == identity }.count
    }

    /// How many mappings of `process` map the memfd with this inode.
    static func memfdMappings(ofInode inode: String, process: String = "self") -> Int {
        guard let maps = readWholeFile("/proc/\(process)/maps") else { return 0 }
        return maps.split(separator: "\n").filter { line in
            let columns = line.split(separator: " ", omittingEmptySubsequences: true)
            return columns.count >= 6 && columns[4] == inode && columns[5].hasPrefix("/memfd:")
        }.count
    }

    /// Whether the descriptor is a memfd.
    static func isMemfd(_ fd: Int32) -> Bool {
        let target = try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/fd/\(fd)")
        return target?.hasPrefix("/memfd:") ?? false
    }

    /// Inodes of the Unix sockets bound to `path`: the listener and every connection it
    /// accepted (accepted sockets show their listener's path in /proc/net/unix).
    static func socketInodes(boundTo path: String) -> Set<String> {
        guard let table = readWholeFile("/proc/net/unix") else { return [] }
        var inodes: Set<String> = []
        for line in table.split(separator: "\n").dropFirst() {
            let columns = line.split(separator: " ", omittingEmptySubsequences: true)
            if columns.count >= 8, columns[7] == path { inodes.insert(String(columns[6])) }
        }
        return inodes
    }

    /// How many descriptors of `process` are sockets bound to `path`.
    static func openSockets(boundTo path: String, process: String = "self") -> Int {
        let inodes = socketInodes(boundTo: path)
        return descriptors(process: process).filter { fd in
            guard let target = try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/\(process)/fd/\(fd)"),
                  target.hasPrefix("socket:[") else { return false }
            return inodes.contains(String(target.dropFirst(8).dropLast()))
        }.count
    }

    /// Threads of this process named like queue workers ("vq0", "vq1", ...).
    static func queueWorkerThreads(process: String = "self") -> [String] {
        guard let tasks = try? FileManager.default.contentsOfDirectory(atPath: "/proc/\(process)/task") else { return [] }
        return tasks.compactMap { task in
            let name = readWholeFile("/proc/\(process)/task/\(task)/comm")?
                .trimmingCharacters(in: .whitespacesAndNewlines)
            guard let name, name.hasPrefix("vq"), name.dropFirst(2).allSatisfy(\.isNumber) else { return nil }
            return name
        }
    }
}

/// The files a test hands to a back end, with what the test itself holds of them, checked
/// after the connection is gone.
final class SentFiles {
    private struct Entry {
        let descriptor: OwnedFileDescriptor
        let identity: DescriptorCensus.FileIdentity
        /// Mappings of the file the test itself keeps (GuestRAM maps each memfd once).
        let ownMappings: Int
        let isMemfd: Bool
        let label: String
    }

    private var entries: [Entry] = []
    private var kept: [AnyObject] = []

    /// Keeps `object` (the guest whose RAM the test maps) alive until the check.
    func keepAlive(_ object: AnyObject) {
        kept.append(object)
    }

    /// Remembers `descriptor` (kept open here until the check) and the mappings the test owns.
    func track(_ descriptor: OwnedFileDescriptor, ownMappings: Int = 0, label: String) {
        guard let identity = DescriptorCensus.identity(of: descriptor.rawValue) else { return }
        entries.append(Entry(descriptor: descriptor, identity: identity, ownMappings: ownMappings,
                             isMemfd: DescriptorCensus.isMemfd(descriptor.rawValue), label: label))
    }

    /// Problems found: files held or mapped by someone besides the test (in this process, and
    /// in `daemonProcess` if the back end is a child). Waits up to `milliseconds` for the back
    /// end to finish closing.
    func leaks(socketPath: String?, daemonProcess: Int32? = nil, waitingUpTo milliseconds: Int = 5_000) -> [String] {
        let deadline = ContinuousClock.now + .milliseconds(milliseconds)
        while true {
            var problems: [String] = []
            for entry in entries {
                let holders = DescriptorCensus.holders(of: entry.identity)
                if holders != 1 {
                    problems.append("\(entry.label) (\(entry.identity)) is held by \(holders) descriptors, expected 1")
                }
                let mapped = entry.isMemfd ? DescriptorCensus.memfdMappings(ofInode: entry.identity.inode) : 0
                if mapped != entry.ownMappings {
                    problems.append("\(entry.label) is mapped \(mapped) times, expected \(entry.ownMappings)")
                }
                if let daemonProcess {
                    let daemonHolders = DescriptorCensus.holders(of: entry.identity, process: "\(daemonProcess)")
                    let daemonMappings = entry.isMemfd
                        ? DescriptorCensus.memfdMappings(ofInode: entry.identity.inode, process: "\(daemonProcess)") : 0
                    if daemonHolders != 0 || daemonMappings != 0 {
                        problems.append("the daemon holds \(entry.label) \(daemonHolders) times and maps it \(daemonMappings) times")
                    }
                }
            }
            if let socketPath {
                let sockets = DescriptorCensus.openSockets(boundTo: socketPath)
                if sockets != 1 { problems.append("\(sockets) sockets bound to \(socketPath) are open, expected 1 (the listener)") }
            }
            // An in-process back end's workers are this process's threads; a child daemon's are
            // its own (its footprint check counts them), and this process's may then belong to
            // in-process tests running beside.
            if daemonProcess == nil {
                let workers = DescriptorCensus.queueWorkerThreads()
                if !workers.isEmpty { problems.append("queue worker threads still running: \(workers)") }
            }
            if problems.isEmpty || ContinuousClock.now >= deadline { return problems }
            usleepMilliseconds(10)
        }
    }
}

/// The whole of a file (a /proc file has no size to go by), decoded leniently: /proc/net/unix
/// lists the abstract socket names of every process, which may be any bytes, and a strict UTF-8
/// decode fails on the whole file (a leak check then saw no listener for as long as some other
/// process held such a socket).
func readWholeFile(_ path: String) -> String? {
    let fd = open(path, O_RDONLY | O_CLOEXEC)
    guard fd >= 0 else { return nil }
    defer { close(fd) }
    var bytes: [UInt8] = []
    var chunk = [UInt8](repeating: 0, count: 16384)
    while true {
        let count = chunk.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
        if count < 0 && errno == EINTR { continue }
        guard count > 0 else { break }
        bytes.append(contentsOf: chunk[0..<count])
    }
    return String(decoding: bytes, as: UTF8.self)
}
