import Glibc

/// What the figures were measured on.
struct Machine {
    var cpu: String
    var onlineCPUs: Int
    var kernel: String
    var loadAverage: String

    static func current() -> Machine {
        let cpuinfo = readText("/proc/cpuinfo") ?? ""
        let model = cpuinfo.split(separator: "\n").first { $0.hasPrefix("model name") }
            .flatMap { $0.split(separator: ":", maxSplits: 1).last }
            .map { String($0.drop { $0 == " " }) } ?? "unknown"
        var name = utsname()
        uname(&name)
        let kernel = [field(&name.sysname), field(&name.release), field(&name.machine)].joined(separator: " ")
        let load = (readText("/proc/loadavg") ?? "").split(separator: " ").prefix(3).joined(separator: " ")
        return Machine(cpu: model, onlineCPUs: Int(sysconf(Int32(_SC_NPROCESSORS_ONLN))), kernel: kernel,
                       loadAverage: load)
    }

    private static func field<T>(_ value: inout T) -> String {
        withUnsafeBytes(of: &value) { bytes in
            String(decoding: bytes.prefix { $0 != 0 }, as: UTF8.self)
        }
    }

    static func readText(_ path: String) -> String? {
        guard let file = fopen(path, "r") else { return nil }
        defer { fclose(file) }
        var bytes: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 4096)
        while true {
            let count = fread(&chunk, 1, chunk.count, file)
            if count <= 0 { break }
            bytes += chunk.prefix(count)
        }
        return String(decoding: bytes, as: UTF8.self)
    }
}
