#if canImport(Glibc)
import Glibc
#endif
import CVhostBridge

/// A private mount namespace whose whole file system is one empty, read-only tmpfs: after it,
/// no path the process names reaches a file (descriptors opened before keep working).
public enum MountNamespace {
    /// The directory the empty root is mounted over before it becomes the root (it exists on any
    /// Linux system; only this namespace ever sees the mount).
    static let stagingDirectory = "/tmp"

    /// Enters a new mount namespace and pivots into an empty read-only root. Needs CAP_SYS_ADMIN
    /// and a single-threaded process (other threads would keep the old namespace).
    public static func enterEmptyRoot() throws(SystemError) {
        guard threadCount() == 1 else {
            throw SystemError(call: "unshare(CLONE_NEWNS): more than one thread is running", errno: EINVAL)
        }
        try check(cvb_unshare(CVB_CLONE_NEWNS), "unshare(CLONE_NEWNS)")
        // Nothing done here may propagate back to the parent namespace.
        try check(mount(nil, "/", nil, UInt(MS_REC | MS_PRIVATE), nil), "mount(/, MS_REC | MS_PRIVATE)")
        try check(mount("vhost-user-blk-root", stagingDirectory, "tmpfs", UInt(MS_NOSUID | MS_NODEV | MS_NOEXEC),
                        "size=4k,nr_inodes=2,mode=0555"), "mount(tmpfs)")
        try check(chdir(stagingDirectory), "chdir(\(stagingDirectory))")
        // pivot_root(".", "."): the old root ends up stacked under the new one, then is detached.
        try check(cvb_pivot_root(".", "."), "pivot_root")
        try check(umount2(".", Int32(MNT_DETACH)), "umount2(old root)")
        try check(chdir("/"), "chdir(/)")
        try check(mount(nil, "/", nil, UInt(MS_REMOUNT | MS_BIND | MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC), nil),
                  "mount(/, read-only)")
    }

    /// Threads in this process (/proc/self/task).
    public static func threadCount() -> Int {
        guard let directory = opendir("/proc/self/task") else { return -1 }
        defer { closedir(directory) }
        var count = 0
        while let entry = readdir(directory) {
            if entry.pointee.d_name.0 != UInt8(ascii: ".") { count += 1 }
        }
        return count
    }

    private static func check(_ result: Int32, _ call: String) throws(SystemError) {
        if result != 0 { throw SystemError(call: call, errno: errno) }
    }
}
