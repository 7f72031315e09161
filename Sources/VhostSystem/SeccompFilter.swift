#if canImport(Glibc)
import Glibc
#endif
import CVhostBridge

/// A seccomp allow-list (classic BPF, SECCOMP_SET_MODE_FILTER): a system call on the list runs
/// (or fails with its errno, for the calls listed as failing), any other kills the whole process
/// (SECCOMP_RET_KILL_PROCESS), as do calls made through another
/// architecture's ABI (x86-64's x32 or i386 entry points), which would otherwise bypass the list.
///
/// Once installed it cannot be removed, and it applies to every thread of the process (TSYNC)
/// and every thread created afterwards.
public struct SeccompFilter: Sendable {
    /// One system call the filter lets through — optionally only when its first argument has
    /// one value (e.g. `unlinkat` only relative to one directory descriptor) — or makes fail
    /// with an errno instead of killing (for calls libraries make on rare paths and cope with
    /// failing, such as glibc's malloc reading /sys and /proc).
    public struct Rule: Sendable, Equatable {
        public let name: String
        public let requiredFirstArgument: UInt64?
        /// When set, the call does not run and fails with this errno.
        public let failure: UInt16?

        public static func allow(_ name: String) -> Rule {
            Rule(name: name, requiredFirstArgument: nil, failure: nil)
        }

        public static func allow(_ name: String, whenFirstArgumentIs value: UInt64) -> Rule {
            Rule(name: name, requiredFirstArgument: value, failure: nil)
        }

        public static func fail(_ name: String, errno: UInt16) -> Rule {
            Rule(name: name, requiredFirstArgument: nil, failure: errno)
        }
    }

    public let rules: [Rule]
    /// The program as the kernel will run it.
    public let program: [cvb_bpf_instruction]

    /// Builds the program. Throws (ENOSYS) for a name the bridge's system call table lacks, or on
    /// an architecture the bridge has no audit number for; (E2BIG) if the list is too long for
    /// BPF's 8-bit jumps.
    public init(allowing rules: [Rule]) throws(SystemError) {
        guard CVB_AUDIT_ARCH_NATIVE != 0 else {
            throw SystemError(call: "seccomp: unknown architecture", errno: ENOSYS)
        }
        var numbered: [(number: UInt32, rule: Rule)] = []
        for rule in rules {
            let number = cvb_syscall_number(rule.name)
            guard number >= 0, let value = UInt32(exactly: number) else {
                throw SystemError(call: "seccomp: no system call named \(rule.name)", errno: ENOSYS)
            }
            numbered.append((value, rule))
        }
        self.rules = rules
        program = try Self.assemble(numbered)
    }

    /// Whether a sanitizer runtime (ASan, TSan) is linked in: its leak check and reports need
    /// calls (ptrace, clone, exec) no allow-list of ours should contain.
    public static var sanitizerRuntimeLinked: Bool { cvb_sanitizer_runtime_linked() != 0 }

    /// Whether the bridge's table has a system call of this name on this architecture.
    public static func knows(_ name: String) -> Bool {
        cvb_syscall_number(name) >= 0
    }

    /// Sets no_new_privs (so the filter needs no privilege) and installs the filter on every
    /// thread of the process.
    public func install() throws(SystemError) {
        guard cvb_set_no_new_privs() == 0 else {
            throw SystemError(call: "prctl(PR_SET_NO_NEW_PRIVS)", errno: errno)
        }
        guard let count = UInt16(exactly: program.count) else {
            throw SystemError(call: "seccomp: program too long", errno: E2BIG)
        }
        let result = program.withUnsafeBufferPointer { cvb_seccomp_set_filter($0.baseAddress, count, CVB_SECCOMP_FILTER_FLAG_TSYNC) }
        // With TSYNC, a positive result names a thread that could not take the filter.
        guard result == 0 else {
            throw SystemError(call: "seccomp(SECCOMP_SET_MODE_FILTER)", errno: result < 0 ? errno : ESRCH)
        }
    }

    /// Layout (BPF jumps only forward): check the architecture, load the call number, refuse
    /// x32 numbers, one comparison per rule (plain rules jump to ALLOW, failing rules to their
    /// ERRNO return, argument rules to their argument check), KILL, the ERRNO returns, the
    /// argument checks, KILL, ALLOW.
    private static func assemble(_ rules: [(number: UInt32, rule: Rule)]) throws(SystemError) -> [cvb_bpf_instruction] {
        let plain = rules.filter { $0.rule.requiredFirstArgument == nil && $0.rule.failure == nil }
        let failing = rules.filter { $0.rule.failure != nil }
        let checked = rules.filter { $0.rule.requiredFirstArgument != nil && $0.rule.failure == nil }
        let checkLength = 4
        let header = CVB_X32_SYSCALL_BIT != 0 ? 4 : 3
        let comparisons = plain.count + failing.count + checked.count
        let firstFailure = header + comparisons + 1
        let firstCheck = firstFailure + failing.count
        let kill = firstCheck + checked.count * checkLength
        let allow = kill + 1
        var program: [cvb_bpf_instruction] = []

        func jump(to target: Int) throws(SystemError) -> UInt8 {
            guard let offset = UInt8(exactly: target - program.count - 1) else {
                throw SystemError(call: "seccomp: allow-list too long", errno: E2BIG)
            }
            return offset
        }
        func load(_ offset: UInt32) {
            program.append(cvb_bpf_instruction(code: CVB_BPF_LD_W_ABS, jump_if_true: 0, jump_if_false: 0, value: offset))
        }
        func compare(_ value: UInt32, ifEqual: Int, otherwise: Int, code: UInt16 = CVB_BPF_JEQ_K) throws(SystemError) {
            program.append(cvb_bpf_instruction(code: code, jump_if_true: try jump(to: ifEqual),
                                               jump_if_false: try jump(to: otherwise), value: value))
        }
        func ret(_ action: UInt32) {
            program.append(cvb_bpf_instruction(code: CVB_BPF_RET_K, jump_if_true: 0, jump_if_false: 0, value: action))
        }

        load(CVB_SECCOMP_DATA_ARCH_OFFSET)
        try compare(CVB_AUDIT_ARCH_NATIVE, ifEqual: program.count + 1, otherwise: kill)
        load(CVB_SECCOMP_DATA_NR_OFFSET)
        if CVB_X32_SYSCALL_BIT != 0 {
            try compare(CVB_X32_SYSCALL_BIT, ifEqual: kill, otherwise: program.count + 1, code: CVB_BPF_JGE_K)
        }
        for entry in plain {
            try compare(entry.number, ifEqual: allow, otherwise: program.count + 1)
        }
        for (index, entry) in failing.enumerated() {
            try compare(entry.number, ifEqual: firstFailure + index, otherwise: program.count + 1)
        }
        for (index, entry) in checked.enumerated() {
            try compare(entry.number, ifEqual: firstCheck + index * checkLength, otherwise: program.count + 1)
        }
        ret(CVB_SECCOMP_RET_KILL_PROCESS)
        for entry in failing {
            ret(CVB_SECCOMP_RET_ERRNO | UInt32(entry.rule.failure ?? UInt16(EPERM)))
        }
        // Arguments are 64-bit, stored little-endian: the low word first, then the high word.
        for entry in checked {
            let value = entry.rule.requiredFirstArgument ?? 0
            load(CVB_SECCOMP_DATA_ARGS_OFFSET)
            try compare(UInt32(truncatingIfNeeded: value), ifEqual: program.count + 1, otherwise: kill)
            load(CVB_SECCOMP_DATA_ARGS_OFFSET + 4)
            try compare(UInt32(truncatingIfNeeded: value >> 32), ifEqual: allow, otherwise: kill)
        }
        ret(CVB_SECCOMP_RET_KILL_PROCESS)
        ret(CVB_SECCOMP_RET_ALLOW)
        return program
    }
}
