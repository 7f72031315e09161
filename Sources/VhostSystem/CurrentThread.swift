import CVhostBridge

/// The calling thread.
public enum CurrentThread {
    /// Names the thread for ps, top and gdb (the kernel keeps 15 bytes).
    public static func setName(_ name: String) {
        cvb_set_thread_name(name)
    }
}
